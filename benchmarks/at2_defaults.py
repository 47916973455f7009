"""Apply issue 31's rule for AT2's defaults to the runs of ``benchmarks/at2_defaults_runs.sh``
and check the issue's targets (docs/experiments/at2_online.md, "Issue 31").

    python benchmarks/at2_defaults.py /tmp/at2_defaults          # the folder the runs wrote

Reads ``{val_s0,val_s1,ident_v1,ident_v2,m1d,test_s0,test_s1,ident_test}_{candidate}.csv`` (long
tables of the runner). Validation sets: HyperRec random pairs with curve seed 0, with seed 1, and
the identifiability validation draws 1 and 2 pooled, and the random pairs of the testbeds
database data/01_raw/mnist1d_scale (``m1d_*``); reporting sets: HyperRec's test pairs with
each seed and the identifiability reporting draw. Prints, per set, the mean R_25, R_50, R_100
of every method; then each candidate's ratios ``(R_q + 0.001) / (R_q(best practitioner) + 0.001)``
for q = 50, 100 on the validation sets, its score (the worst of them) and the rule's choice; then
the targets on every set: R_100 against the best practitioner's and R_25 against zero-shot's
(mean difference over the set's episodes and its s.e.; met when the difference is at most one
s.e.), identifiability R_100 <= 0.005, and the slowest episode in seconds.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import pandas as pd

PRACTITIONERS = ("transfer_screening", "per_task_screening", "portfolio_zero_shot")
NOT_METHODS = ("floor", "zero_shot_known_family")
VALIDATION = {"HyperRec random pairs, seed 0": ("val_s0",), "HyperRec random pairs, seed 1": ("val_s1",),
              "identifiability validation draws 1+2": ("ident_v1", "ident_v2"),
              "mnist1d_scale random pairs": ("m1d",)}
REPORTING = {"HyperRec test pairs, seed 0": ("test_s0",), "HyperRec test pairs, seed 1": ("test_s1",),
             "identifiability reporting draw": ("ident_test",)}
QS = (25, 50, 100)
EPS = 0.001


def load_sets(folder: Path, sets: dict[str, tuple[str, ...]]) -> dict[str, pd.DataFrame]:
    """Per set, one row per (method, episode) with R_25, R_50, R_100 and the episode's seconds."""
    out = {}
    for name, prefixes in sets.items():
        frames = []
        for prefix in prefixes:
            for path in sorted(folder.glob(f"{prefix}_*.csv")):
                frame = pd.read_csv(path)
                frame = frame[~frame.method.isin(NOT_METHODS)]
                frame["episode"] = prefix + ":" + frame["pair"].astype(str) + ":" + frame["seed"].astype(str)
                frames.append(frame)
        if not frames:
            continue
        long = pd.concat(frames).drop_duplicates(subset=["method", "episode", "q"])
        wide = long[long.q.isin(QS)].pivot_table(index=["method", "episode"], columns="q", values="regret")
        wide.columns = [f"R_{q}" for q in wide.columns]
        wide["seconds"] = long.groupby(["method", "episode"])["wall_time_s"].max()
        out[name] = wide.reset_index()
    return out


def means(wide: pd.DataFrame) -> pd.DataFrame:
    return wide.groupby("method")[[f"R_{q}" for q in QS] + ["seconds"]].mean()


def paired(wide: pd.DataFrame, method: str, other: str, column: str) -> tuple[float, float]:
    """Mean and s.e. of ``method - other`` over the episodes both ran."""
    table = wide.pivot_table(index="episode", columns="method", values=column)[[method, other]].dropna()
    diff = table[method] - table[other]
    return float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("nan")


def candidates_in(folder: Path) -> list[str]:
    names = {re.sub(r"^(val_s\d|test_s\d|ident_v\d|ident_test|m1d)_", "", p.stem) for p in folder.glob("*.csv")}
    return sorted(names - {"practitioners"})


def best_practitioner(table: pd.DataFrame, column: str) -> str:
    return str(table.loc[[p for p in PRACTITIONERS if p in table.index], column].idxmin())


def rule_scores(validation: dict[str, pd.DataFrame], candidates: list[str]) -> pd.DataFrame:
    """Per candidate: ``(R_q + EPS) / (R_q(best practitioner) + EPS)`` for q = 50, 100 on each
    validation set, its score (the worst of them; NaN unless it ran on every set) and whether it
    ran on every set."""
    rows = {}
    for cand in candidates:
        ratios = {}
        complete = True
        for name, wide in validation.items():
            table = means(wide)
            if cand not in table.index:
                complete = False
                continue
            for q in (50, 100):
                best = best_practitioner(table, f"R_{q}")
                ratios[f"{name}, R_{q} (best: {best})"] = (table.loc[cand, f"R_{q}"] + EPS) / (table.loc[best, f"R_{q}"] + EPS)
        rows[cand] = {**ratios, "score": max(ratios.values()) if complete and ratios else float("nan"),
                      "on every validation set": complete}
    return pd.DataFrame(rows).T


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    candidates = candidates_in(args.folder)
    validation, reporting = load_sets(args.folder, VALIDATION), load_sets(args.folder, REPORTING)
    for title, sets in (("Validation sets", validation), ("Reporting sets (not used to choose)", reporting)):
        print(f"\n## {title}\n")
        for name, wide in sets.items():
            n = wide.groupby("method").size()
            print(f"{name} (episodes per method: {dict(n)})\n")
            print(means(wide).to_markdown(floatfmt=".4f") + "\n")
    print("\n## The rule: worst ratio to the best practitioner, q = 50 and 100, on the validation sets\n")
    scores = rule_scores(validation, candidates)
    print(scores.to_markdown(floatfmt=".3f") + "\n")
    eligible = scores[scores["on every validation set"] == True]  # noqa: E712
    if len(eligible):
        print(f"Lowest score: {eligible['score'].astype(float).idxmin()} (a score within 0.02 of it is a tie, "
              "which goes to the candidate with fewer settings changed from the current default)\n")
    print("\n## Targets\n")
    lines = ["| set | candidate | R_100 - best practitioner's (s.e.) | met | R_25 - zero-shot's (s.e.) | met | R_100 | slowest episode, s |",
             "| --- | --- | --- | --- | --- | --- | ---: | ---: |"]
    for name, wide in {**validation, **reporting}.items():
        table = means(wide)
        for cand in candidates:
            if cand not in table.index:
                continue
            best = best_practitioner(table, "R_100")
            d100, se100 = paired(wide, cand, best, "R_100")
            d25, se25 = paired(wide, cand, "zero_shot", "R_25") if "zero_shot" in table.index else (float("nan"),) * 2
            ident = "identifiability" in name
            r100 = table.loc[cand, "R_100"]
            lines.append(f"| {name} | {cand} | {d100:+.4f} ({se100:.4f}) vs {best} | {'yes' if d100 <= se100 else 'no'} | "
                         f"{d25:+.4f} ({se25:.4f}) | {'yes' if d25 <= se25 else 'no'} | "
                         f"{r100:.4f}{' (<= 0.005: ' + ('yes' if r100 <= 0.005 else 'no') + ')' if ident else ''} | "
                         f"{wide[wide.method == cand]['seconds'].max():.1f} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
