"""Evaluation of seed 000 (Siamese meta-features, warm-started BO), printed as tables.

    python benchmarks/siamese_bench.py                          # conf/base/parameters_siamese.yml
    python benchmarks/siamese_bench.py --target-distances l1 zscore_l1 rank_l1 --skip-bo
                                                                # issue 29: Algorithm 1 and retrieval regret per target
                                                                # distance on one catalog, and the selection rule
    python benchmarks/siamese_bench.py --seeds 0 1 2 3 4 --repetitions 8
    python benchmarks/siamese_bench.py --figures /tmp/figs      # also the heat map and Figure 2 as PNG
    python benchmarks/siamese_bench.py --work /tmp/siamese      # keep the catalog and stores (a rerun trains no stored
                                                                # catalog or BO trial again)
    python benchmarks/siamese_bench.py --skip-bo --noise        # meta-features and the noise of one evaluation only

1. Meta-features: on the held-out datasets (never seen by Algorithm 1), the Spearman correlation
   between learned and target distances next to the hand-crafted baseline's, per seed of
   Algorithm 1 and as mean +- s.e. (target: learned ahead by >= 0.1).
2. Retrieval: the mean target distance from each held-out dataset to its k retrieved neighbours,
   by learned, hand-crafted and target (oracle) distances, and to all training datasets (a random pick);
   and the retrieval regret (issue 29): the k neighbours' best configs evaluated on the dataset's
   own catalog mapping, for learned (per seed), hand-crafted, random (exact expectation) and oracle
   neighbours, on held-out datasets and in leave-one-out over the training datasets, with the
   paired differences learned - hand-crafted and learned - random (mean +- s.e. over datasets x seeds).
   ``--target-distances`` repeats Algorithm 1 and this table for each target distance and applies
   the rule of docs/methods/siamese.md: the default is the distance of lowest learned regret in
   the training leave-one-out.
3. Figure 2: best-so-far validation error against evaluations of every BO variant, each
   evaluation trained for real, mean +- s.e. over repetitions (target: 3-nearest initialisation
   with the prior mean reaches random-initialised EI's 20-evaluation best within 10 evaluations),
   and each variant's gap to random-initialised EI paired by repetition.
4. (``--noise``) the training-seed spread of the tuned datasets' best configs: the noise of one
   evaluation, against which the gaps of table 3 are measured.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from transfertune.methods.siamese import experiment as ex
from transfertune.methods.siamese import report

PARAMS = Path(__file__).resolve().parents[1] / "conf" / "base" / "parameters_siamese.yml"


def load_params(work: Path) -> dict:
    """The pipeline's parameters with the data folders moved under ``work``."""
    text = re.sub(r"\$\{runtime_params:data_root,data\}", str(work), PARAMS.read_text())
    return yaml.safe_load(text)["siamese"]


def compare_target_distances(family, catalog, p, kinds, times: dict) -> pd.DataFrame:
    """Algorithm 1 (every seed) and the retrieval regret for each target distance on one catalog;
    the rule of docs/methods/siamese.md picks the one of lowest learned regret in the training
    leave-one-out (ties within 1e-12: the earlier in ``TARGET_DISTANCES``, l1 first)."""
    rows, done = [], {}
    for kind in kinds:
        start = time.perf_counter()
        targets = ex.target_matrix(family, catalog, p, kind)
        features = ex.learn_metafeatures(family, targets, p)
        done[kind] = features
        times[f"Algorithm 1 ({kind})"] = time.perf_counter() - start
        summary = ex.retrieval_summary(ex.retrieval_regret_table(family, targets, features, p.bo.k)).set_index(["split", "comparison"])
        spearman = ex.spearman_summary(ex.spearman_table(family, targets, features)).set_index("meta_features")
        cell = lambda split, c: f"{summary.loc[(split, c), 'regret_mean']:+.4f} +- {summary.loc[(split, c), 'regret_se']:.4f}"
        rows.append({"target_distance": kind, "loo_learned": summary.loc[("train_loo", "learned"), "regret_mean"],
                     "train_loo learned": cell("train_loo", "learned"), "train_loo learned - random": cell("train_loo", "learned - random"),
                     "held_out learned": cell("held_out", "learned"), "held_out handcrafted": cell("held_out", "handcrafted"),
                     "held_out random": cell("held_out", "random"), "held_out oracle": cell("held_out", "oracle"),
                     "held_out learned - handcrafted": cell("held_out", "learned - handcrafted"),
                     "held_out learned - random": cell("held_out", "learned - random"),
                     "spearman learned (held out)": f"{spearman.loc['learned', 'per_dataset_mean']:.3f}"})
    table = pd.DataFrame(rows)
    print(f"\n== 0. Target distances compared (issue 29): retrieval regret, k={p.bo.k}, seeds {p.network.seeds}, mean +- s.e. "
          "(learned: over datasets x seeds; differences paired) ==")
    print(table.drop(columns="loo_learned").to_string(index=False))
    order = {k: i for i, k in enumerate(ex.TARGET_DISTANCES)}
    best = min(rows, key=lambda r: (round(r["loo_learned"], 12), order[r["target_distance"]]))
    print(f"rule (lowest learned retrieval regret in the training leave-one-out): {best['target_distance']}")
    return done


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="Algorithm 1 seeds (default: the parameter file's)")
    parser.add_argument("--repetitions", type=int, default=None, help="BO repetitions (default: the parameter file's)")
    parser.add_argument("--evaluations", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=None, help="worker processes of the live BO runs (default: the parameter file's, -1 = one per core)")
    parser.add_argument("--iterations", type=int, default=None, help="Algorithm 1's T")
    parser.add_argument("--skip-bo", action="store_true", help="only the meta-feature tables")
    parser.add_argument("--family", default=None, help="family preset (default: the parameter file's)")
    parser.add_argument("--n-tasks", type=int, default=None)
    parser.add_argument("--n-heldout", type=int, default=None)
    parser.add_argument("--n-configs", type=int, default=None, help="catalog configs per dataset (default: the parameter file's)")
    parser.add_argument("--target-distances", nargs="+", default=None, choices=list(ex.TARGET_DISTANCES),
                        help="compare these target distances (Algorithm 1 + retrieval regret each); BO runs with the parameter file's")
    parser.add_argument("--draws", type=int, nargs="+", default=None,
                        help="also the held-out Spearman with these numbers of tau-samples averaged per embedding (1: the paper's single draw)")
    parser.add_argument("--noise", action="store_true", help="also the training-seed spread of the best configs of the tuned datasets")
    parser.add_argument("--work", type=Path, default=None, help="folder of the catalog and the BO stores (default: a temporary one)")
    parser.add_argument("--figures", type=Path, default=None)
    parser.add_argument("--results", type=Path, default=None, help="write the live BO rows (one per evaluation) to this Parquet file")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: fair on a shared machine)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        raw = load_params(work)
        raw["progress"] = False
        if args.seeds:
            raw["network"]["seeds"] = args.seeds
        if args.iterations:
            raw["network"]["iterations"] = args.iterations
        if args.repetitions:
            raw["bo"]["repetitions"] = args.repetitions
        if args.evaluations:
            raw["bo"]["evaluations"] = args.evaluations
        if args.jobs:
            raw["bo"]["n_jobs"] = args.jobs
        if args.family:
            raw["family"]["preset"] = args.family
        for key, value in (("n_tasks", args.n_tasks), ("n_heldout", args.n_heldout)):
            if value:
                raw["family"][key] = value
        if args.n_configs:
            raw["catalog"]["n_configs"] = args.n_configs
        p = ex.parse_params(raw)
        times: dict[str, float] = {}

        start = time.perf_counter()
        family = ex.make_family(p)
        catalog = ex.make_catalog(family, p)
        targets = ex.target_matrix(family, catalog, p)
        times["family + catalog"] = time.perf_counter() - start
        print(f"family {family.spec.name}: {len(family.members)} datasets ({len(family.train)} training, {len(family.held_out)} held out), "
              f"catalog {len(catalog.config_ids)} configs ({p.catalog.sampling}) x {catalog.max_epoch} epochs of {family.spec.model}; "
              f"target distances ({targets.kind}) {targets.long()['target_distance'].min():.3f}..{targets.long()['target_distance'].max():.3f}")
        pd.set_option("display.width", 200)
        compared = compare_target_distances(family, catalog, p, args.target_distances, times) if args.target_distances else {}

        start = time.perf_counter()
        features = compared.get(targets.kind) or ex.learn_metafeatures(family, targets, p)  # the same seeds: reuse a compared run
        times["Algorithm 1 (all seeds)"] = time.perf_counter() - start
        table = ex.spearman_table(family, targets, features)
        summary = ex.spearman_summary(table)

        print(f"\n== 1. Spearman of learned / hand-crafted vs target distances, held-out datasets (T={p.network.iterations}, "
              f"beta={p.network.beta}, tau={p.network.tau}) ==")
        print(table.round(3).to_string(index=False))
        print()
        print(summary.round(3).to_string(index=False))
        gap = float(summary.loc[summary["meta_features"] == "learned - handcrafted", "per_dataset_mean"].iloc[0])
        print(f"target (learned ahead by >= 0.1 per held-out dataset): {'MET' if gap >= 0.1 else 'NOT MET'} (gap {gap:.3f})")

        if args.draws:
            target = targets.block(family.held_out, family.train)
            rows = []
            for draws in args.draws:
                values = [float(ex.rowwise_spearman(ex.learned_distances(r.result.model, family, p.network.tau, draws, r.seed)[0], target).mean())
                          for r in features.runs]
                rows.append({"draws": draws, "per_dataset_mean": np.mean(values), "per_dataset_se": np.std(values, ddof=1) / np.sqrt(len(values))
                             if len(values) > 1 else float("nan"), "per_seed": " ".join(f"{v:.3f}" for v in values)})
            print("\nlearned Spearman per held-out dataset against the tau-samples averaged per embedding (same networks):")
            print(pd.DataFrame(rows).round(3).to_string(index=False))

        retrieved = ex.retrievals(family, targets, features, p.bo.k)
        target_block = targets.block(family.held_out, family.train)
        rows = [{"retrieval": kind, "mean target distance to the k neighbours": float(g["target_distance"].mean())}
                for kind, g in retrieved.groupby("retrieval", sort=False)]
        rows.append({"retrieval": "random (all training datasets)", "mean target distance to the k neighbours": float(target_block.mean())})
        print(f"\n== 2. Retrieval of the k={p.bo.k} nearest training datasets ==")
        print(pd.DataFrame(rows).round(4).to_string(index=False))
        regret = ex.retrieval_summary(ex.retrieval_regret_table(family, targets, features, p.bo.k))
        print(f"\nretrieval regret (target distance {targets.kind}): best of the k neighbours' best configs on the dataset's own mapping")
        print(regret.round(4).to_string(index=False))
        verdict = ex.retrieval_target(regret)
        print(f"target (learned below hand-crafted and below random on held-out datasets): {'MET' if verdict['met'] else 'NOT MET'} "
              f"(learned - handcrafted {verdict['learned_minus_handcrafted']:+.4f} +- {verdict['learned_minus_handcrafted_se']:.4f}, "
              f"learned - random {verdict['learned_minus_random']:+.4f} +- {verdict['learned_minus_random_se']:.4f})")

        if args.figures is not None:
            args.figures.mkdir(parents=True, exist_ok=True)
            report.plot_target_heatmap(targets.names, targets.matrix, family.table()).savefig(args.figures / "siamese_target_heatmap.png", dpi=120)
        if not args.skip_bo:
            start = time.perf_counter()
            results = ex.run_bo(family, catalog, features, p)
            times["Algorithm 2 + baselines (live)"] = time.perf_counter() - start
            if args.results is not None:
                results.to_parquet(args.results, index=False)
            curves = ex.bo_curves(results)
            at = int(results["evaluation"].max())
            target = ex.bo_target(curves, p.bo.method, p.bo.reference, at=at, within=p.bo.target_evaluations)
            print(f"\n== 3. Best-so-far validation error, {results['repetition'].nunique()} repetitions (held-out datasets "
                  f"{', '.join(dict.fromkeys(results['dataset']))}) ==")
            wide = curves.pivot(index="evaluation", columns="variant", values="best_error_mean")[list(dict.fromkeys(curves["variant"]))]
            print(wide.round(4).to_string())
            print()
            print(report.markdown_summary(summary, curves, target, gaps=ex.paired_gaps(results, p.bo.reference)).split("## Best-so-far", 1)[1].split("\n", 1)[1])
            if args.figures is not None:
                report.plot_bo_curves(curves).savefig(args.figures / "siamese_bo_best_so_far.png", dpi=120)
        if args.noise:
            datasets = list(dict.fromkeys((p.bo.datasets or family.held_out)[: p.bo.repetitions]))
            print("\n== 4. One evaluation's noise near the optimum: the 3 best grid configs retrained with 5 training seeds ==")
            print(ex.seed_spread(family, catalog, p, datasets).round(4).to_string(index=False))
        print("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()))


if __name__ == "__main__":
    main()
