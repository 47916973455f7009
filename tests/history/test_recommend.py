"""`recommend` and `import-history` from the CLI: the first recommendation is the Tuner's first
ask (on a HyperRec test task), observations from a CSV or an Optuna study in progress are
told, bad input is one line."""

from __future__ import annotations

import json

import optuna
import pandas as pd
from click.testing import CliRunner

from tests.conftest import HYPERREC, HYPERREC_SPACE
from transfertune import Tuner
from transfertune.cli import cli

optuna.logging.set_verbosity(optuna.logging.ERROR)


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_recommend_on_a_hyperrec_test_task_equals_the_tuners_first_ask(hyperrec):
    pair = hyperrec.pairs[0]
    result = invoke("recommend", "--database", HYPERREC, "--space", HYPERREC_SPACE, "--metric", "val_top5_acc",
                    "--pair", pair.test, "--n", 2, "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.output.strip().splitlines()[-1])
    tuner = Tuner(database=hyperrec, method="at2", metric="val_top5_acc", budget=100, task=f"{pair.test}-new", train_tasks=list(pair.train))
    first = tuner.ask()
    assert found["suggestions"][0]["config"] == dict(first.config)
    forecast = tuner.forecast()
    row = forecast.iloc[first.pool_index]
    assert (found["suggestions"][0]["mean"], found["suggestions"][0]["std"]) == (row["mean"], row["std"])
    assert found["suggestions"][1]["config"] != found["suggestions"][0]["config"]  # the second in parallel
    best = forecast.loc[forecast["mean"].idxmax()]
    assert found["predicted_best"]["config_id"] == int(best["config_id"]) and found["final_epoch"] == 75


def test_recommend_tells_the_observations_of_a_csv_and_leaves_out_unknown_configs(synthetic_db, tmp_path):
    from transfertune.core.catalog import ObservationCatalog

    db = ObservationCatalog.load(synthetic_db, synthetic_db / "space.yml", "val_acc")
    known = db.configs[int(db.config_ids[4])]
    rows = [{**known, "epoch": e, "val_acc": v} for e, v in ((1, 0.3), (2, 0.5))]
    rows.append({**known, "x1": 0.4242, "epoch": 1, "val_acc": 0.9})  # not a catalog config
    pd.DataFrame(rows).to_csv(tmp_path / "first.csv", index=False)
    result = invoke("recommend", "--database", synthetic_db, "--metric", "val_acc", "--method", "zero_shot",
                    "--task", "new", "--observations", tmp_path / "first.csv", "--n", 1)
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert "1 observed trial(s) told, 1 left out" in lines[0]
    assert "no posterior over learning curves" in result.output and "next 1" in lines[1]
    bad = invoke("recommend", "--database", synthetic_db, "--metric", "val_acc", "--task", "new", "--observations", tmp_path / "none.csv")
    assert bad.exit_code == 2 and bad.output.strip().endswith("does not exist")


def test_recommend_reads_an_optuna_study_in_progress(synthetic_db, tmp_path):
    from transfertune.core.catalog import ObservationCatalog
    from transfertune.history.sampler import optuna_distributions

    db = ObservationCatalog.load(synthetic_db, synthetic_db / "space.yml", "val_acc")
    url = f"sqlite:///{tmp_path / 'live.db'}"
    study = optuna.create_study(study_name="live", storage=url, direction="maximize")
    d = optuna_distributions(db.space)
    config = db.configs[int(db.config_ids[2])]
    study.add_trial(optuna.trial.create_trial(params=config, distributions=d, state=optuna.trial.TrialState.RUNNING,
                                              intermediate_values={1: 0.4, 2: 0.6}))
    result = invoke("recommend", "--database", synthetic_db, "--metric", "val_acc", "--method", "zero_shot",
                    "--task", "new", "--optuna-storage", url, "--study", "live", "--n", 1, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["observed_trials"] == 1


def test_import_history_optuna_from_the_cli_and_its_one_line_errors(tmp_path):
    url = f"sqlite:///{tmp_path / 'h.db'}"
    study = optuna.create_study(study_name="s1", storage=url, direction="maximize")
    study.optimize(lambda t: [t.report(t.suggest_float("x", 0, 1) * e, e) for e in (1, 2)] and t.params["x"], n_trials=3)
    ok = invoke("import-history", "optuna", url, "--out", tmp_path / "cat", "--metric", "acc")
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith(f"wrote {tmp_path / 'cat'}: 1 task(s), 3 trial(s)")
    bad = invoke("import-history", "optuna", url, "--study", "s2", "--out", tmp_path / "cat2")
    assert bad.exit_code == 2 and bad.output.strip() == f"Error: study 's2' is not in {url} (its studies: s1)"
