"""The subsample stage as plain functions: parameters -> sources -> scores -> manifests -> report.

Kedro nodes (``transfertune.pipelines.subsample``) only call these. Parameters (see
``conf/base/parameters_subsample.yml``)::

    seed, root, download, device, progress,
    sources: {tag: {name, options, [class_subsets|random_proxy|adversarial_proxy overrides]}},
    class_subsets: {enabled, n_subsets, n_classes, n_per_class, distinct_classes},
    random_proxy: {enabled, n_subsets, ratio},
    adversarial_proxy: {enabled, n_subsets, ratio, adversarial_fraction, pool_factor,
                        classifier: {...ClassifierConfig}, attack: {...AttackConfig}}

A source entry may override any strategy section (deep merge), e.g. turn class subsets off for a
regression set. Unknown keys are errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from transfertune.data.adversarial import AttackConfig, AttackResult, ClassifierConfig, score_source
from transfertune.data.manifest import SubsetManifest
from transfertune.data.samplers import adversarial_proxy_subsets, class_subsets, random_proxy_subsets
from transfertune.data.sources import ArraySource, load_source
from transfertune.errors import ConfigurationError

STRATEGY_SECTIONS = ("class_subsets", "random_proxy", "adversarial_proxy")
_TOP_KEYS = {"seed", "root", "download", "device", "progress", "sources", *STRATEGY_SECTIONS}
_SECTION_KEYS = {
    "class_subsets": {"enabled", "n_subsets", "n_classes", "n_per_class", "distinct_classes"},
    "random_proxy": {"enabled", "n_subsets", "ratio"},
    "adversarial_proxy": {"enabled", "n_subsets", "ratio", "adversarial_fraction", "pool_factor", "classifier", "attack"},
}
SCORE_COLUMNS = [
    "tag", "source", "index", "label", "success", "perturbation_norm", "l2_norm",
    "clean_prediction", "adversarial_prediction", "lambda1",
]  # fmt: skip


SUMMARY_COLUMNS = [
    "subset_id", "source", "strategy", "seed", "size", "classes",
    "median_norm", "median_norm_successful", "share_failed", "share_not_scored",
]  # fmt: skip


def _unknown(where: str, given: Mapping[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(given) - allowed)
    if extra:
        raise ConfigurationError(f"{where}: unknown key(s) {extra}; allowed: {sorted(allowed)}")


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) else copy.deepcopy(value)
    return out


def _dataclass_from(cls: type, values: Mapping[str, Any] | None, where: str) -> Any:
    values = dict(values or {})
    _unknown(where, values, {f.name for f in fields(cls)})
    if "fixed_lambda" in values:
        values["fixed_lambda"] = tuple(values["fixed_lambda"])
    return cls(**values)


@dataclass
class SourcePlan:
    """Everything one source entry asks for, with its strategy sections merged and validated."""

    tag: str
    name: str
    options: dict[str, Any]
    class_subsets: dict[str, Any]
    random_proxy: dict[str, Any]
    adversarial_proxy: dict[str, Any]
    classifier: ClassifierConfig
    attack: AttackConfig

    @property
    def needs_scores(self) -> bool:
        return bool(self.adversarial_proxy.get("enabled", False))


def plan_sources(params: Mapping[str, Any]) -> list[SourcePlan]:
    """Validate the ``subsample`` parameters and expand them per source.

    Raises:
        ConfigurationError: unknown keys, no source, or a malformed section.
    """
    if not isinstance(params, Mapping):
        raise ConfigurationError("parameters 'subsample' must be a mapping")
    _unknown("subsample", params, _TOP_KEYS)
    sources = params.get("sources") or {}
    if not isinstance(sources, Mapping) or not sources:
        raise ConfigurationError("subsample.sources is empty: name at least one source, e.g. {digits: {name: digits}}")
    plans = []
    for tag, entry in sources.items():
        entry = dict(entry or {})
        _unknown(f"subsample.sources.{tag}", entry, {"name", "options", *STRATEGY_SECTIONS})
        sections = {}
        for section in STRATEGY_SECTIONS:
            merged = _merge(params.get(section) or {}, entry.get(section) or {})
            _unknown(f"subsample.{section} (source {tag})", merged, _SECTION_KEYS[section])
            sections[section] = merged
        adv = sections["adversarial_proxy"]
        seed = int(params.get("seed", 0))
        attack_values = {"seed": seed, **(adv.get("attack") or {})}
        plans.append(
            SourcePlan(
                tag=str(tag),
                name=str(entry.get("name", tag)),
                options=dict(entry.get("options") or {}),
                class_subsets=sections["class_subsets"],
                random_proxy=sections["random_proxy"],
                adversarial_proxy=adv,
                classifier=_dataclass_from(ClassifierConfig, adv.get("classifier"), f"subsample.adversarial_proxy.classifier ({tag})"),
                attack=_dataclass_from(AttackConfig, attack_values, f"subsample.adversarial_proxy.attack ({tag})"),
            )
        )
    return plans


def load_sources(params: Mapping[str, Any]) -> dict[str, ArraySource]:
    """Load every configured source once, keyed by its tag, and check every sampler setting
    against it, so bad input fails before the (slow) probe training and scoring."""
    out = {}
    for plan in plan_sources(params):
        source = load_source(plan.name, root=params.get("root"), download=bool(params.get("download", False)), **plan.options)
        check_plan(plan, source, int(params.get("seed", 0)))
        out[plan.tag] = source
    return out


def check_plan(plan: SourcePlan, source: ArraySource, seed: int = 0) -> None:
    """Raise the sampler's own error now for any setting it would reject later."""
    cs, rp, ap = plan.class_subsets, plan.random_proxy, plan.adversarial_proxy
    if cs.get("enabled", False):  # cheap: index draws only
        class_subsets(source, cs.get("n_subsets", 20), cs.get("n_classes", 5), cs.get("n_per_class"), seed,
                      tag=plan.tag, distinct_classes=bool(cs.get("distinct_classes", True)))  # fmt: skip
    if rp.get("enabled", False):
        random_proxy_subsets(source, rp.get("n_subsets", 5), rp.get("ratio", 0.1), seed, tag=plan.tag)
    if ap.get("enabled", False):
        n = len(source)
        dummy = AttackResult(np.zeros(n, bool), np.full(n, np.inf), np.full(n, np.inf), np.zeros(n), np.zeros(n),
                             np.full(n, np.nan), np.zeros(0), np.zeros(0), np.zeros(0))  # fmt: skip
        adversarial_proxy_subsets(source, dummy, ap.get("n_subsets", 5), ap.get("ratio", 0.1), ap.get("adversarial_fraction", 0.5),
                                  seed, pool_factor=float(ap.get("pool_factor", 1.0)), tag=plan.tag)  # fmt: skip
        if source.task_type == "classification" and source.n_classes < 2:
            raise ConfigurationError(f"adversarial subsets of {plan.tag!r} need at least 2 classes, it has {source.n_classes}")


# ---------------------------------------------------------------------------------- scores
def scores_to_frame(tag: str, source: ArraySource, result: AttackResult) -> pd.DataFrame:
    """One row per sample of the source: the attack's outcome (see :data:`SCORE_COLUMNS`)."""
    n = len(source)
    return pd.DataFrame(
        {
            "tag": [tag] * n,
            "source": [source.name] * n,
            "index": np.arange(n, dtype=np.int64),
            "label": source.y.astype(np.float64),
            "success": result.success.astype(bool),
            "perturbation_norm": result.norm.astype(np.float64),
            "l2_norm": result.l2.astype(np.float64),
            "clean_prediction": result.clean_prediction.astype(np.float64),
            "adversarial_prediction": result.adversarial_prediction.astype(np.float64),
            "lambda1": result.lambda1.astype(np.float64),
        }
    )


def scores_from_frame(frame: pd.DataFrame, tag: str) -> AttackResult | None:
    """The part of an :class:`AttackResult` the samplers need, for one tag (``None`` if absent)."""
    rows = frame[frame["tag"] == tag].sort_values("index")
    if rows.empty:
        return None
    empty = np.zeros(0, dtype=np.float32)
    return AttackResult(
        success=rows["success"].to_numpy(dtype=bool),
        norm=rows["perturbation_norm"].to_numpy(dtype=np.float64),
        l2=rows["l2_norm"].to_numpy(dtype=np.float64),
        clean_prediction=rows["clean_prediction"].to_numpy(),
        adversarial_prediction=rows["adversarial_prediction"].to_numpy(),
        lambda1=rows["lambda1"].to_numpy(dtype=np.float64),
        weights=empty,
        lower=empty,
        upper=empty,
    )


def score_sources(
    sources: Mapping[str, ArraySource], params: Mapping[str, Any], device: Any
) -> tuple[pd.DataFrame, dict[str, dict[str, float]]]:
    """Train the probe and attack every sample of each source whose adversarial subsets are on.

    Returns:
        the per-sample score table and, per tag, metrics (probe fit, success rate, seconds...).
    """
    frames, metrics = [], {}
    progress = bool(params.get("progress", True))
    for plan in plan_sources(params):
        if not plan.needs_scores:
            continue
        source = sources[plan.tag]
        model, result = score_source(source, plan.classifier, plan.attack, device, seed=plan.attack.seed, progress=progress)
        frames.append(scores_to_frame(plan.tag, source, result))
        finite = result.norm[np.isfinite(result.norm)]
        metrics[plan.tag] = {
            "probe_train_metric": model.train_metric,
            "probe_seconds": model.seconds,
            "attack_seconds": result.seconds,
            "attack_success_rate": result.success_rate,
            "median_norm_all": float(np.median(finite)) if finite.size else float("nan"),
        }
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in SCORE_COLUMNS}), metrics
    return pd.concat(frames, ignore_index=True), metrics


# ---------------------------------------------------------------------------------- subsets
def sample_subsets(sources: Mapping[str, ArraySource], scores: pd.DataFrame, params: Mapping[str, Any]) -> list[SubsetManifest]:
    """Every enabled strategy on every source, in source order then strategy order."""
    seed = int(params.get("seed", 0))
    out: list[SubsetManifest] = []
    for plan in plan_sources(params):
        source = sources[plan.tag]
        result = scores_from_frame(scores, plan.tag) if len(scores) else None
        if plan.needs_scores and result is None:
            raise ConfigurationError(f"adversarial subsets of {plan.tag!r} need its scores; run the score_sources node first")
        cs, rp, ap = plan.class_subsets, plan.random_proxy, plan.adversarial_proxy
        if cs.get("enabled", False):
            out += class_subsets(
                source, cs.get("n_subsets", 20), cs.get("n_classes", 5), cs.get("n_per_class"), seed,
                tag=plan.tag, distinct_classes=bool(cs.get("distinct_classes", True)),
            )  # fmt: skip
        if rp.get("enabled", False):
            out += random_proxy_subsets(source, rp.get("n_subsets", 5), rp.get("ratio", 0.1), seed, scores=result, tag=plan.tag)
        if ap.get("enabled", False):
            out += adversarial_proxy_subsets(
                source, result, ap.get("n_subsets", 5), ap.get("ratio", 0.1), ap.get("adversarial_fraction", 0.5), seed,
                pool_factor=float(ap.get("pool_factor", 1.0)), tag=plan.tag,
            )  # fmt: skip
    if not out:
        raise ConfigurationError("every strategy is disabled for every source: enable class_subsets, random_proxy or adversarial_proxy")
    return out


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per subset: source, strategy, size, classes, perturbation-norm statistics."""
    if frame.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)

    records = []
    for subset_id, rows in frame.groupby("subset_id", sort=False):
        norm = rows["perturbation_norm"].to_numpy()
        scored = ~np.isnan(norm)
        finite = norm[np.isfinite(norm)]
        records.append(
            {
                "subset_id": subset_id,
                "source": rows["source"].iloc[0],
                "strategy": rows["strategy"].iloc[0],
                "seed": int(rows["seed"].iloc[0]),
                "size": len(rows),
                "classes": rows["classes"].iloc[0] if "classes" in rows else "null",
                "median_norm": float(np.median(norm[scored])) if scored.any() else float("nan"),
                "median_norm_successful": float(np.median(finite)) if finite.size else float("nan"),
                "share_failed": float(np.isinf(norm).mean()),
                "share_not_scored": float((~scored).mean()),
            }
        )
    return pd.DataFrame(records)


def tag_of(subset_id: str) -> str:
    """The source tag of a sampler's ``subset_id`` (``<tag>-<strategy>-s<seed>-<i>``)."""
    return subset_id.rsplit("-", 3)[0]


def norm_comparison(frame: pd.DataFrame) -> pd.DataFrame:
    """Per source tag: median perturbation norm of adversarial vs random proxy subsets' samples.

    Failed attacks count as ``inf`` (farther than any success), so the median stays honest when
    attacks fail.
    """
    scored = frame[frame["strategy"].isin(["random_proxy", "adversarial_proxy"]) & frame["perturbation_norm"].notna()]
    scored = scored.assign(tag=scored["subset_id"].map(tag_of))
    rows = []
    for (tag, strategy), g in scored.groupby(["tag", "strategy"], sort=True):
        norm = g["perturbation_norm"].to_numpy()
        rows.append({"tag": tag, "strategy": strategy, "n_samples": len(norm), "median_norm": float(np.median(norm)),
                     "mean_finite_norm": float(np.mean(norm[np.isfinite(norm)])) if np.isfinite(norm).any() else float("nan"),
                     "share_failed": float(np.isinf(norm).mean())})  # fmt: skip
    return pd.DataFrame(rows, columns=["tag", "strategy", "n_samples", "median_norm", "mean_finite_norm", "share_failed"])


def plot_norms(frame: pd.DataFrame, scores: pd.DataFrame):
    """Figure: per scored source, histograms of the perturbation norms of the full set and of the
    samples in random and adversarial proxy subsets, with their medians."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tags = list(dict.fromkeys(scores["tag"])) if len(scores) else []
    fig, axes = plt.subplots(1, max(1, len(tags)), figsize=(6 * max(1, len(tags)), 4), squeeze=False)
    if not tags:
        axes[0, 0].text(0.5, 0.5, "no adversarial scoring in this run\n(adversarial_proxy.enabled: false)", ha="center", va="center")
        axes[0, 0].set_axis_off()
        return fig
    for ax, tag in zip(axes[0], tags):
        full = scores.loc[scores["tag"] == tag, "perturbation_norm"].to_numpy()
        finite_full = full[np.isfinite(full)]
        bins = np.linspace(0, np.quantile(finite_full, 0.99) if finite_full.size else 1, 40)
        mine = frame[frame["subset_id"].map(tag_of) == tag]
        series = [("full set", full, "grey")]
        for strategy, label, colour in (("random_proxy", "random subsets", "tab:blue"), ("adversarial_proxy", "adversarial subsets", "tab:red")):
            norm = mine.loc[mine["strategy"] == strategy, "perturbation_norm"].to_numpy()
            if norm.size:
                series.append((label, norm, colour))
        for label, norm, colour in series:
            finite = norm[np.isfinite(norm)]
            med = float(np.median(norm))
            ax.hist(np.clip(finite, 0, bins[-1]), bins=bins, density=True, histtype="step", lw=1.6, color=colour,
                    label=f"{label}: median {med:.3g}, failed {np.isinf(norm).mean():.0%}")  # fmt: skip
            if np.isfinite(med):
                ax.axvline(med, color=colour, ls="--", lw=1)
        ax.set_xlabel("weighted norm ||W . eps|| of the smallest successful perturbation")
        ax.set_ylabel("density")
        ax.set_title(f"{tag}: distance to the decision boundary")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
