"""Task identification: two families of tasks that rank configs in opposite ways (issue 19, item 4).

    python benchmarks/identifiability.py                         # every registered method, 10 pairs, curve seed 0
    python benchmarks/identifiability.py --methods at2 zero_shot # a subset (floor and known-family zero-shot are always printed)
    python benchmarks/identifiability.py --seeds 0 1 --out /tmp/ident.csv   # both curve seeds (twice the time)
    python benchmarks/identifiability.py --db /tmp/ident_db      # keep the generated database there
    python benchmarks/identifiability.py --design '{"seed": 1}'  # another draw of the same design
    python benchmarks/identifiability.py --describe              # its statistics next to HyperRec's, no methods run
    python benchmarks/identifiability.py --from /tmp/ident.csv   # the tables of a saved --out table, no methods run
    python benchmarks/identifiability.py --db /tmp/ident_val1 --design '{"seed": 1}' --candidates '{"ucb": {"method": "at2", "acquisition": "ucb"}}'
                                                                 # settings on a validation draw (docs/experiments/at2_online.md)

Generates the database of ``transfertune.core.synthetic`` (default design: 2 opposed families,
4 training-only and 5 test-only members each, 100 configs, 75 epochs, 2 curve seeds, 10 pairs of
2 + 2 training tasks testing alternately on a new member of A and of B) into a temporary folder
(or ``--db``), runs the methods with Q = 100 on every pair and the chosen curve seeds (default:
seed 0 only, so that every registered method fits in about 15 minutes on 2 CPU cores) through
``methods/runner.py``, and prints one table of R_25, R_50, R_100 and F_100 (mean ± s.e. over the
pair x curve-seed episodes) with the oracle floor (``transfertune.core.oracle``) as its first row
and, on a generated database, ``zero_shot_known_family`` (zero-shot from the test family's
training tasks only: perfect identification, no search) as its second.
A second table says how each method spent its first 25 queries: how many configs it queried
and the best final rank among them (has it reached the test family's good region?).
``--out`` writes the long table (one row per method, pair, curve seed and q).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats as st
import yaml

from transfertune.core.catalog import ObservationCatalog, TaskPair
from transfertune.core.metrics import config_ranks
from transfertune.core.oracle import oracle_floor
from transfertune.core.synthetic import METRIC, SPACE_FILE, SyntheticDesign, generate_database
from transfertune.errors import ConfigurationError, TransfertuneError
from transfertune.methods.registry import installed_methods
from transfertune.methods.runner import build_episodes, resolve_pairs, run_episodes

QS = (25, 50, 100)
FIRST = ("at2", "zero_shot")
BENCHMARK_PARAMETERS = Path(__file__).resolve().parents[1] / "conf/base/parameters_benchmark.yml"
ORACLE_ZERO_SHOT = "zero_shot_known_family"


def load_or_generate(folder: Path, design: SyntheticDesign) -> ObservationCatalog:
    """Load the database in ``folder``; generate it there first when the folder has none.

    A folder generated from another design is refused rather than silently reused.
    """
    if not (folder / "observations.parquet").is_file():
        generate_database(folder, design)
    elif (folder / "design.json").is_file():
        stored = json.loads((folder / "design.json").read_text())["design"]
        if stored != json.loads(json.dumps(asdict(design))):
            changed = sorted(k for k in stored if stored[k] != json.loads(json.dumps(asdict(design)))[k])
            raise ConfigurationError(f"{folder} holds a database of another design (differs in {changed}); pass an empty --db folder")
    return ObservationCatalog.load(folder, folder / SPACE_FILE, METRIC)


def default_methods() -> dict[str, dict]:
    """The methods of ``kedro run --pipeline=benchmark`` with their parameters
    (conf/base/parameters_benchmark.yml: every registered method), AT2 and zero-shot first,
    without those whose optional package is missing."""
    listed = yaml.safe_load(BENCHMARK_PARAMETERS.read_text())["benchmark"]["methods"]
    ordered = {m: listed[m] for m in FIRST} | {m: p for m, p in listed.items() if m not in FIRST}
    kept, skipped = installed_methods(ordered)
    for line in skipped:
        print(line, file=sys.stderr)
    return kept


def select_methods(labels: list[str] | None) -> dict[str, dict]:
    """``labels`` with the benchmark's parameters where it lists them (``{}`` otherwise); None: all."""
    listed = default_methods()
    return listed if labels is None else {m: listed.get(m, {}) for m in labels}


def parse_candidates(text: str) -> dict[str, dict]:
    """``--candidates``: a JSON object of label -> method keywords, or a one-line error."""
    try:
        candidates = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"--candidates is not valid JSON ({exc})") from None
    if not isinstance(candidates, dict) or not all(isinstance(v, dict) for v in candidates.values()):
        raise ConfigurationError('--candidates must map labels to keyword objects, e.g. {"ucb": {"method": "at2", "acquisition": "ucb"}}')
    return candidates


def floor_rows(catalog: ObservationCatalog, pairs, budget: int, data_seed: int) -> pd.DataFrame:
    """The oracle floor as rows of the runner's long table (method ``floor``)."""
    frames = []
    for pair in pairs:
        floor = oracle_floor(catalog.grid(pair.test, data_seed), budget)
        ids = catalog.config_ids[floor["config"].to_numpy()]
        frames.append(pd.DataFrame({
            "method": "floor", "pair": pair.name, "repetition": 0, "seed": -1, "q": floor["q"],
            "config_id": ids, "epoch": floor["epoch"], "value": floor["value"], "regret": floor["regret"],
            "recommended_config_id": ids, "rank": floor["rank"], "wall_time_s": 0.0, "data_seed": data_seed,
        }))
    return pd.concat(frames, ignore_index=True)


def run_benchmark(catalog: ObservationCatalog, methods: dict[str, dict] | list[str], pairs, seeds: list[int], budget: int,
                  jobs: int, seed: int = 0, show_progress: bool = True, family: dict[str, str] | None = None) -> pd.DataFrame:
    """Every method on every pair and curve seed, plus the floor; the long table with ``data_seed``.

    With ``family`` (task -> family) the table also has ``zero_shot_known_family``: zero-shot
    transfer from the pair's training tasks of the test task's family only, i.e. what perfect
    task identification followed by zero-shot transfer gets. Episode seeds are
    ``seed + 100 * data_seed + 1000 * pair index`` (the runner adds the pair term), so the two
    curve seeds also get different random draws.
    """
    known_family = [TaskPair(tuple(t for t in p.train if family[t] == family[p.test]), p.test) for p in pairs] if family else []
    episodes, data_seed_of = [], {}
    for data_seed in seeds:
        if data_seed not in catalog.seeds:
            raise ConfigurationError(f"curve seed {data_seed} is not in the database (it has {catalog.seeds})")
        batch = []
        if known_family:
            batch += build_episodes(catalog, {ORACLE_ZERO_SHOT: {"method": "zero_shot"}}, known_family, 1, budget,
                                    seed=seed + 100 * data_seed, data_seed=data_seed)
        batch += build_episodes(catalog, methods if isinstance(methods, dict) else {m: {} for m in methods}, pairs, 1, budget, seed=seed + 100 * data_seed, data_seed=data_seed)
        data_seed_of.update({e.problem.seed: data_seed for e in batch})
        episodes.extend(batch)
    results = run_episodes(episodes, n_jobs=jobs, show_progress=show_progress)
    results["data_seed"] = results["seed"].map(data_seed_of)
    floors = [floor_rows(catalog, pairs, budget, s) for s in seeds]
    return pd.concat([*floors, results], ignore_index=True)


def wide_table(results: pd.DataFrame, qs=QS) -> pd.DataFrame:
    """One row per method: ``R_q`` (q in ``qs`` up to the budget, and the budget) and ``F_budget``,
    each as (mean, standard error) over the pair x curve-seed episodes."""
    budget = int(results["q"].max())
    qs = sorted({q for q in qs if q <= budget} | {budget})
    last = qs[-1]
    rows = []
    for method, group in results.groupby("method", sort=False):
        row = {"method": method}
        for q in qs:
            at = group[group["q"] == q]
            row[f"R_{q}"] = _mean_se(at["regret"])
        row[f"F_{last}"] = _mean_se(group[group["q"] == last]["rank"].astype(float))
        row["n"] = int((group["q"] == last).sum())
        row["s/episode"] = float(group.groupby(["pair", "data_seed"])["wall_time_s"].max().mean())
        rows.append(row)
    return pd.DataFrame(rows)


def _mean_se(x: pd.Series) -> tuple[float, float]:
    return float(x.mean()), float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else 0.0


def to_markdown(table: pd.DataFrame) -> str:
    metrics = [c for c in table.columns if c[:2] in ("R_", "F_")]
    lines = ["| method | " + " | ".join(metrics) + " | n | s / episode |", "| --- |" + " ---: |" * (len(metrics) + 2)]
    for row in table.to_dict(orient="records"):
        cells = [f"{row[m][0]:.2f} ± {row[m][1]:.2f}" if m.startswith("F_") else f"{row[m][0]:.4f} ± {row[m][1]:.4f}" for m in metrics]
        lines.append(f"| {row['method']} | " + " | ".join(cells) + f" | {row['n']} | {row['s/episode']:.1f} |")
    return "\n".join(lines) + "\n"


def first_queries(results: pd.DataFrame, catalog: ObservationCatalog, q: int = 25) -> pd.DataFrame:
    """How each episode spent its first ``q`` queries: one row per (method, pair, curve seed).

    ``configs``: distinct configs queried by q; ``best_rank``: the best final rank on the test
    task (0 = its best config) among them, i.e. whether the method has reached the right region.
    """
    rows = []
    for (method, pair, data_seed), group in results[(results["q"] <= q) & (results["method"] != "floor")].groupby(
            ["method", "pair", "data_seed"], sort=False):
        ranks = dict(zip(catalog.config_ids.tolist(), config_ranks(catalog.grid(pair, int(data_seed))).tolist()))
        touched = group["config_id"].unique()
        rows.append({"method": method, "pair": pair, "data_seed": data_seed, "configs": len(touched),
                     "best_rank": min(ranks[int(c)] for c in touched)})
    return pd.DataFrame(rows)


def first_queries_markdown(per_episode: pd.DataFrame, q: int) -> str:
    lines = [f"| method | configs queried by q = {q} | best final rank among them |", "| --- | ---: | ---: |"]
    for method, group in per_episode.groupby("method", sort=False):
        (c, c_se), (r, r_se) = _mean_se(group["configs"].astype(float)), _mean_se(group["best_rank"].astype(float))
        lines.append(f"| {method} | {c:.1f} ± {c_se:.1f} | {r:.1f} ± {r_se:.1f} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- --describe
def landscape_statistics(catalog: ObservationCatalog, seed: int = 0) -> dict[str, float]:
    """Medians over tasks of what makes a database hard or easy (curve seed ``seed``).

    ``gap_k``: optimum - k-th best config (by best value over epochs); ``spearman_e``: Spearman
    correlation of the epoch-e values with the final ranking; ``share_e``: a config's epoch-e
    value over its best value (median over configs); ``floor_q``: the oracle floor at q;
    ``seed_gap``: |difference| between the two curve seeds per cell; ``task_spearman``: Spearman
    correlation of two tasks' final rankings (median over task pairs).
    """
    per_task = []
    for task in catalog.tasks:
        grid = catalog.grid(task, seed)
        best = np.nanmax(grid, axis=1)
        ordered = np.sort(best)[::-1]
        row = {f"gap_{k}": ordered[0] - ordered[k - 1] for k in (2, 5, 10, 20) if k <= len(ordered)}
        row["optimum - median"] = ordered[0] - np.median(best)
        for e in (1, 5, 10, 25):
            if e <= grid.shape[1]:
                row[f"spearman_{e}"] = st.spearmanr(grid[:, e - 1], best)[0]
                row[f"share_{e}"] = np.median(grid[:, e - 1] / np.where(best > 0, best, np.nan))
        floor = oracle_floor(grid, 50)
        row.update({f"floor_{q}": floor["regret"].iloc[q - 1] for q in (25, 50) if q <= len(floor)})
        others = [s for s in catalog.seeds if s != seed]
        if others:
            row["seed_gap"] = np.nanmedian(np.abs(grid - catalog.grid(task, others[0])))
        per_task.append(row)
    stats = pd.DataFrame(per_task).median().to_dict()
    finals = np.stack([np.nanmax(catalog.grid(t, seed), axis=1) for t in catalog.tasks])
    corr = np.atleast_2d(st.spearmanr(finals.T)[0])
    stats["task_spearman"] = float(np.median(corr[np.triu_indices(len(finals), 1)]))
    return stats


def task_families(folder: Path, catalog: ObservationCatalog) -> dict[str, str]:
    """task -> family from a generated database's tasks.json; empty for other databases."""
    if not (folder / "tasks.json").is_file():
        return {}
    family = {t.get("task"): t.get("family") for t in json.loads((folder / "tasks.json").read_text())}
    if any(family.get(t) is None for t in catalog.tasks):
        return {}  # not a synthetic database (build_catalog writes a tasks.json without families)
    return family


def family_correlations(folder: Path, catalog: ObservationCatalog, seed: int = 0) -> dict[str, float]:
    """Median Spearman of final rankings within a family and across families (from tasks.json)."""
    family = task_families(folder, catalog)
    if not family:
        return {}
    finals = {t: np.nanmax(catalog.grid(t, seed), axis=1) for t in catalog.tasks}
    within, across = [], []
    for i, a in enumerate(catalog.tasks):
        for b in catalog.tasks[i + 1:]:
            (within if family[a] == family[b] else across).append(st.spearmanr(finals[a], finals[b])[0])
    return {"within-family task_spearman": float(np.median(within)), "across-family task_spearman": float(np.median(across)),
            "across-family, highest": float(np.max(across)) if across else float("nan")}


def describe(folder: Path, catalog: ObservationCatalog) -> str:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from hyperrec import load_hyperrec

    synthetic = {**landscape_statistics(catalog), **family_correlations(folder, catalog)}
    reference = landscape_statistics(load_hyperrec())
    lines = ["| statistic (median over tasks, curve seed 0) | synthetic | HyperRec (val_top5_acc) |", "| --- | ---: | ---: |"]
    for key, value in synthetic.items():
        lines.append(f"| {key} | {value:.3f} | {reference[key]:.3f} |" if key in reference else f"| {key} | {value:.3f} | |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- command
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=None, help="registry names (default: at2, zero_shot, then every other registered method)")
    parser.add_argument("--candidates", default=None,
                        help='JSON {label: {method: name, ...keywords}} run instead of --methods, e.g. \'{"ucb": {"method": "at2", "acquisition": "ucb"}}\'')
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="curve seeds of the database to run on (default: 0; the database has 0 and 1)")
    parser.add_argument("--pairs", nargs="+", default=None, help="test tasks of the pairs to run (default: all)")
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2, help="parallel processes, one episode each")
    parser.add_argument("--seed", type=int, default=0, help="base seed of the methods' random draws")
    parser.add_argument("--db", type=Path, help="database folder: loaded if it holds one, else generated there (default: a temporary folder)")
    parser.add_argument("--design", default="{}", help="JSON of SyntheticDesign keywords that replace the defaults")
    parser.add_argument("--out", type=Path, help="write the long results table here (CSV)")
    parser.add_argument("--per-pair", action="store_true", help="also print R_q and F_q per pair and method")
    parser.add_argument("--describe", action="store_true", help="print the database's statistics next to HyperRec's and stop")
    parser.add_argument("--from", dest="from_csv", type=Path, help="print the tables of a saved --out table (same design) instead of running")
    args = parser.parse_args(argv)
    try:
        overrides = json.loads(args.design)
        design = SyntheticDesign(**{k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})
    except (json.JSONDecodeError, TypeError) as exc:
        raise ConfigurationError(f"--design must be a JSON object of SyntheticDesign keywords: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="identifiability_") as tmp:
        folder = args.db or Path(tmp) / "db"
        catalog = load_or_generate(folder, design)
        if args.describe:
            print(describe(folder, catalog))
            return 0
        family = task_families(folder, catalog)
        if args.from_csv:
            results = pd.read_csv(args.from_csv)
            print(f"\nTables of {args.from_csv} ({results['pair'].nunique()} pairs x curve seeds {sorted(int(s) for s in results['data_seed'].unique())})\n")
        else:
            import torch

            torch.set_num_threads(1)  # small tensors: more threads only contend on the shared 2 cores
            methods = parse_candidates(args.candidates) if args.candidates else select_methods(args.methods)
            pairs = resolve_pairs(catalog, args.pairs or "all")
            start = time.perf_counter()
            results = run_benchmark(catalog, methods, pairs, args.seeds, args.budget, args.jobs, args.seed, family=family)
            print(f"\nIdentifiability database ({len(catalog.tasks)} tasks, {len(catalog.config_ids)} configs, {catalog.max_epoch} epochs), "
                  f"{len(pairs)} pairs x curve seeds {args.seeds}, Q = {args.budget}, {len(methods)} methods on {args.jobs} process(es): "
                  f"{time.perf_counter() - start:.0f} s wall clock\n")
        first = first_queries(results, catalog, q=min(25, int(results["q"].max())))
    print(to_markdown(wide_table(results)))
    print(first_queries_markdown(first, q=min(25, int(results["q"].max()))))
    if args.per_pair:
        at_q = results[results.q.isin(QS)].pivot_table(index=["pair", "method"], columns="q", values=["regret", "rank"])
        at_q.columns = [f"{'R' if name == 'regret' else 'F'}_{q}" for name, q in at_q.columns]
        at_q = at_q.round(4).reset_index()
        if family:
            at_q.insert(1, "family", at_q["pair"].map(family))
        print(at_q.to_markdown(index=False) + "\n")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        results.to_csv(args.out, index=False)
        print(f"wrote {len(results)} rows to {args.out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except TransfertuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
