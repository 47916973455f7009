"""Nodes shared by every pipeline that runs methods on a catalog and evaluates them.

``benchmark``, ``at2`` and later method pipelines are the same three steps with their own
parameters: load the database, run the configured methods on the pairs, summarise and plot.
The catalog entries ``{name}_results``, ``{name}_summary`` ... are dataset factories in
``conf/base/catalog.yml``, so a new pipeline gets its outputs by naming them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.pipeline import Pipeline, node

from transfertune.core import tracking
from transfertune.core.catalog import ObservationCatalog
from transfertune.core.metrics import curves, headline, plot_curves, summary, to_markdown, wide_markdown
from transfertune.errors import ConfigurationError, EpisodesFailed
from transfertune.methods.registry import installed_methods
from transfertune.methods.runner import FAILURE_COLUMNS, build_episodes, resolve_pairs, run_episodes

logger = logging.getLogger(__name__)
RUN_KEYS = {"methods", "pairs", "repetitions", "budget", "seed", "n_jobs", "summary_qs", "progress", "skip_missing_dependencies", "only"}


def load_database(database: Mapping[str, Any]) -> ObservationCatalog:
    """Load and validate the tuning database named by the ``database.*`` parameters."""
    missing = [k for k in ("path", "space", "metric") if not database.get(k)]
    if missing:
        raise ConfigurationError(f"parameters database.{', database.'.join(missing)} must be set")
    catalog = ObservationCatalog.load(Path(database["path"]), Path(database["space"]), str(database["metric"]))
    tracking.log_params({f"loaded_database.{k}": v for k, v in catalog.summary().items()})
    return catalog


def run_methods(catalog: ObservationCatalog, settings: Mapping[str, Any], database: Mapping[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run every configured method on every pair and repetition: one row per query, and one row
    per episode that raised (``FAILURE_COLUMNS``; the others run on; all failed: EpisodesFailed)."""
    unknown = set(settings) - RUN_KEYS
    if unknown:
        raise ConfigurationError(f"unknown setting(s) {sorted(unknown)}; known: {sorted(RUN_KEYS)}")
    methods = settings.get("methods") or {}
    if not isinstance(methods, Mapping):
        raise ConfigurationError("'methods' must map a label to its parameters, e.g. {zero_shot: {}}")
    only = settings.get("only")
    if only is not None:  # runtime parameters merge into the methods mapping; this narrows it
        only = only.split() if isinstance(only, str) else list(only)  # kedro's --params splits on commas
        if not all(label in methods for label in only):
            raise ConfigurationError(f"'only' must list labels of 'methods' ({', '.join(methods)}), got {only!r}")
        methods = {label: methods[label] for label in only}
    if settings.get("skip_missing_dependencies", False):
        methods, skipped = installed_methods(dict(methods))
        for line in skipped:
            logger.warning(line)
    episodes = build_episodes(
        catalog,
        methods,
        resolve_pairs(catalog, settings.get("pairs", "all")),
        repetitions=settings.get("repetitions", 1),
        budget=settings.get("budget", 100),
        seed=int(settings.get("seed", 0)),
        data_seed=int(database.get("data_seed", 0)),
    )
    failures: list[dict[str, Any]] = []
    results = run_episodes(episodes, n_jobs=int(settings.get("n_jobs", 1)), show_progress=bool(settings.get("progress", True)), failures=failures)
    failed = pd.DataFrame(failures, columns=FAILURE_COLUMNS)
    if results.empty:  # nothing to summarise
        raise EpisodesFailed(failures_line(failed, len(episodes), written=False))
    for row in failed.itertuples(index=False):
        logger.error("episode failed: %s on %s, repetition %s: %s", row.method, row.pair, row.repetition, row.error)
    _log_runs(results)
    return results, failed


def failures_line(failed: pd.DataFrame, n_episodes: int, written: bool = True, shown: int = 3) -> str:
    """One line: how many episodes failed, the first ``shown`` (method, pair, repetition, error)."""
    items = [f"{r.method} on {r.pair} (repetition {r.repetition}): {r.error}" for r in failed.head(shown).itertuples(index=False)]
    more = f"; and {len(failed) - shown} more" if len(failed) > shown else ""
    rest = "every other episode's rows are written" if written else "no episode finished"
    return f"{len(failed)} of {n_episodes} episodes failed ({rest}): {'; '.join(items)}{more}"


def summarise_results(results: pd.DataFrame, settings: Mapping[str, Any], database: Mapping[str, Any] | None = None) -> tuple[pd.DataFrame, str, pd.DataFrame, Any]:
    """Summary table at the configured q, its Markdown, the full curves and the figure.

    The Markdown opens with :func:`~transfertune.core.metrics.headline` (who has the lowest
    R_q at each q and AT2's place), which is also printed with the first table."""
    qs = settings.get("summary_qs", [25, 50, 100])
    qs = [int(q) for q in (qs.split() if isinstance(qs, str) else [qs] if isinstance(qs, int) else qs)]  # --params gives 100 or "25 50"
    table = summary(results, qs)
    curve_table = curves(results)
    n_pairs, n_reps = results["pair"].nunique(), results["repetition"].nunique()
    figure = plot_curves(curve_table, title=f"{n_pairs} pair(s) x {n_reps} repetition(s)")
    opening = "\n\n".join(headline(results, qs, metric=(database or {}).get("metric"))) + "\n\n"
    wide = wide_markdown(results, qs, order=list(dict.fromkeys(results["method"])))
    markdown = opening + wide + "\nMean ± standard error over pairs and repetitions:\n\n" + to_markdown(table)
    # printed, not logged: the log handler would wrap the table's rows into an 80-character column
    print("\n" + opening + wide, flush=True)
    tracking.log_table(table, "summary.csv")
    tracking.log_table(curve_table, "curves.csv")
    tracking.log_figure(figure, "regret_rank.png")
    for row in table.itertuples(index=False):
        tracking.log_metrics({f"{row.method}.regret_q{row.q}": row.regret_mean, f"{row.method}.rank_q{row.q}": row.rank_mean})
    return table, markdown, curve_table, figure


def _log_runs(results: pd.DataFrame) -> None:
    """One nested MLflow run per (method, pair) with per-query curves, averaged over repetitions."""
    if not tracking.active():
        return
    for (method, pair), group in results.groupby(["method", "pair"], sort=False):
        with tracking.nested_run(f"{method} | {pair}", tags={"method": method, "pair": pair}):
            tracking.log_params({"method": method, "pair": pair, "repetitions": group["repetition"].nunique()})
            mean = group.groupby("q")[["regret", "rank", "value"]].mean()
            tracking.log_metric_series("regret", mean["regret"].to_numpy())
            tracking.log_metric_series("rank", mean["rank"].to_numpy())
            tracking.log_metric_series("value", mean["value"].to_numpy())
            last = group[group["q"] == group["q"].max()]
            tracking.log_metrics({"final_regret": last["regret"].mean(), "final_rank": last["rank"].mean(), "wall_time_s": last["wall_time_s"].mean()})
    overall = results.groupby(["method", "q"])[["regret", "rank"]].mean().reset_index()
    for method, group in overall.groupby("method", sort=False):
        tracking.log_metric_series(f"{method}.regret_mean", group["regret"].to_numpy())
        tracking.log_metric_series(f"{method}.rank_mean", group["rank"].to_numpy())


def check_failures(failed: pd.DataFrame, results: pd.DataFrame, summary_table: pd.DataFrame) -> None:
    """The run's last node: after every output is written, fail the run with one line if an
    episode failed (the failures table names each: method, pair, repetition, error)."""
    if len(failed):
        n_episodes = len(failed) + len(results.groupby(["method", "pair", "repetition"]))
        raise EpisodesFailed(failures_line(failed, n_episodes))


def evaluation_pipeline(name: str, settings: str | None = None) -> Pipeline:
    """load database -> run methods -> summarise -> check failures, with outputs named ``{name}_*``."""
    settings = settings or f"params:{name}"
    return Pipeline(
        [
            node(load_database, "params:database", f"{name}_database", name=f"{name}_load_database"),
            node(run_methods, [f"{name}_database", settings, "params:database"], [f"{name}_results", f"{name}_failures"], name=f"{name}_run_methods"),
            node(
                summarise_results,
                [f"{name}_results", settings, "params:database"],
                [f"{name}_summary", f"{name}_summary_md", f"{name}_curves", f"{name}_figure"],
                name=f"{name}_summarise",
            ),
            # the summary as an input: this node runs after the summary is saved
            node(check_failures, [f"{name}_failures", f"{name}_results", f"{name}_summary"], None, name=f"{name}_check_failures"),
        ],
        tags=[name],
    )
