"""benchmarks/identifiability.py on a tiny generated database (zero-shot and random search only)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import identifiability  # noqa: E402
from transfertune.core.metrics import config_ranks  # noqa: E402
from transfertune.errors import ConfigurationError  # noqa: E402

TINY = {"n_configs": 20, "n_epochs": 10, "train_members": 2, "test_members": 1, "n_pairs": 2, "train_per_family": 1}


def test_known_family_zero_shot_ranks_by_the_test_family_only(tmp_path):
    """Its first config is the best mean rank over the pair's training tasks of the test task's family."""
    design = identifiability.SyntheticDesign(**{**TINY, "train_per_family": 2})
    folder = tmp_path / "db"
    catalog = identifiability.load_or_generate(folder, design)
    family = identifiability.task_families(folder, catalog)
    pair = catalog.pairs[0]
    results = identifiability.run_benchmark(catalog, ["zero_shot"], [pair], [0], 5, jobs=1, show_progress=False, family=family)
    same = [t for t in pair.train if family[t] == family[pair.test]]
    assert len(same) == 2
    mean_rank = np.mean([config_ranks(catalog.grid(t, 0)) for t in same], axis=0)
    first = results[(results["method"] == "zero_shot_known_family") & (results["q"] == 1)]["config_id"].item()
    assert mean_rank[list(catalog.config_ids).index(first)] == mean_rank.min()


def test_command_prints_one_table_and_writes_the_long_results(tmp_path, capsys):
    out = tmp_path / "results.csv"
    code = identifiability.main([
        "--db", str(tmp_path / "db"), "--design", json.dumps(TINY), "--methods", "zero_shot", "random_search",
        "--budget", "15", "--jobs", "1", "--seeds", "0", "1", "--out", str(out), "--per-pair",
    ])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| method | R_15 | F_15 | n |" in printed  # q > budget are left out, the budget itself is shown
    tables = [block for block in printed.split("\n\n") if block.startswith("| ")]
    summary, first, per_pair = tables  # the summary, how the first queries were spent, --per-pair
    table_rows = [line for line in summary.splitlines() if "---" not in line]
    assert [row.split(" | ")[0][2:] for row in table_rows[1:]] == ["floor", "zero_shot_known_family", "zero_shot", "random_search"]
    assert first.startswith("| method | configs queried by q = 15 | best final rank among them |")
    assert len(first.splitlines()) == 2 + 3  # no row for the floor
    assert "| family " in per_pair.splitlines()[0]
    results = pd.read_csv(out)
    assert len(results) == 4 * 2 * 2 * 15  # methods (floor, known family included) x pairs x curve seeds x q
    assert sorted(results["data_seed"].unique()) == [0, 1]
    keyed = results.set_index(["method", "pair", "data_seed", "q"])["regret"]
    floor = keyed.loc["floor"]
    for method in ("zero_shot_known_family", "zero_shot", "random_search"):
        assert np.all(keyed.loc[method].reindex(floor.index).to_numpy() >= floor.to_numpy() - 1e-12)
    # the two curve seeds give different test grids, so the floor differs somewhere
    per_seed = floor.unstack("data_seed")
    assert not np.allclose(per_seed[0], per_seed[1])


def test_wide_table_is_the_mean_and_standard_error_over_episodes():
    rows = []
    for pair, data_seed, regret, rank in [("a", 0, 0.1, 2), ("a", 1, 0.3, 4), ("b", 0, 0.2, 0), ("b", 1, 0.4, 6)]:
        for q in (25, 100):
            rows.append({"method": "m", "pair": pair, "data_seed": data_seed, "q": q, "regret": regret * (q == 25) + regret / 10 * (q == 100),
                         "rank": rank, "wall_time_s": 1.0})
    table = identifiability.wide_table(pd.DataFrame(rows))
    row = table.iloc[0]
    assert row["R_25"][0] == pytest.approx(0.25) and row["R_25"][1] == pytest.approx(np.std([0.1, 0.3, 0.2, 0.4], ddof=1) / 2)
    assert row["R_100"][0] == pytest.approx(0.025)
    assert row["F_100"][0] == pytest.approx(3.0) and row["n"] == 4


def test_a_folder_of_another_design_is_refused(tmp_path):
    identifiability.load_or_generate(tmp_path / "db", identifiability.SyntheticDesign(**TINY))
    with pytest.raises(ConfigurationError, match=r"another design \(differs in \['seed'\]\)"):
        identifiability.load_or_generate(tmp_path / "db", identifiability.SyntheticDesign(**{**TINY, "seed": 5}))


def test_describe_prints_the_statistics_next_to_hyperrec(tmp_path, capsys):
    assert identifiability.main(["--db", str(tmp_path / "db"), "--design", json.dumps(TINY), "--describe"]) == 0
    printed = capsys.readouterr().out
    assert "| spearman_1 |" in printed and "| across-family task_spearman |" in printed


def test_first_queries_counts_configs_and_their_best_final_rank(tmp_path):
    catalog = identifiability.load_or_generate(tmp_path / "db", identifiability.SyntheticDesign(**TINY))
    pair = catalog.pairs[0].test
    ranks = config_ranks(catalog.grid(pair, 1))
    worst, second = int(np.argmax(ranks)), int(np.argsort(ranks)[1])
    ids = catalog.config_ids
    rows = [{"method": "m", "pair": pair, "data_seed": 1, "q": q, "config_id": int(ids[c])}
            for q, c in enumerate([worst, worst, second, worst, int(np.argmin(ranks))], start=1)]
    rows.append({"method": "floor", "pair": pair, "data_seed": 1, "q": 1, "config_id": int(ids[0])})
    table = identifiability.first_queries(pd.DataFrame(rows), catalog, q=4)
    assert table.to_dict(orient="records") == [{"method": "m", "pair": pair, "data_seed": 1, "configs": 2, "best_rank": ranks[second]}]


def test_default_methods_are_the_benchmark_pipelines_with_their_parameters():
    methods = identifiability.default_methods()
    assert list(methods)[:2] == ["at2", "zero_shot"]
    assert methods["hts"] == {"epochs": 4} and methods["hord"] == {"epochs": 4}
    assert identifiability.select_methods(["hord", "rgpe"]) == {"hord": {"epochs": 4}, "rgpe": {}}
