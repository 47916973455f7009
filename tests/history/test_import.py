"""Optuna studies and MLflow runs imported as an observation catalog: trial states, steps as
epochs, the space (conditions included), recurring configs, orientation, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml

from transfertune.core.catalog import ObservationCatalog
from transfertune.errors import ConfigurationError
from transfertune.history.optuna_source import read_optuna
from transfertune.history.records import write_catalog

optuna.logging.set_verbosity(optuna.logging.ERROR)
FD = optuna.distributions


def dists():
    return {
        "opt": FD.CategoricalDistribution(["adam", "sgd"]),
        "lr": FD.FloatDistribution(1e-4, 1e-1, log=True),
        "layers": FD.IntDistribution(1, 4),
        "momentum": FD.FloatDistribution(0.0, 0.99),
    }


def trial(params, steps, state=optuna.trial.TrialState.COMPLETE, value=None):
    d = dists()
    return optuna.trial.create_trial(params=params, distributions={k: d[k] for k in params}, state=state,
                                     value=value if state == optuna.trial.TrialState.COMPLETE else None,
                                     intermediate_values=steps)


ADAM = {"opt": "adam", "lr": 0.01, "layers": 2}
SGD = {"opt": "sgd", "lr": 0.05, "layers": 3, "momentum": 0.9}


def make_storage(url, direction_b="maximize"):
    a = optuna.create_study(study_name="a", storage=url, direction="maximize")
    a.add_trials([
        trial(ADAM, {0: 0.5, 1: 0.6, 2: 0.7}, value=0.7),                           # complete: 3 epochs
        trial(SGD, {0: 0.2, 1: 0.3}, state=optuna.trial.TrialState.PRUNED),           # pruned: keeps 2
        trial({"opt": "adam", "lr": 0.001, "layers": 1}, {0: 0.1}, state=optuna.trial.TrialState.FAIL),
        trial({"opt": "adam", "lr": 0.002, "layers": 1}, {0: 0.1}, state=optuna.trial.TrialState.RUNNING),
    ])
    b = optuna.create_study(study_name="b", storage=url, direction=direction_b)
    b.add_trials([trial(ADAM, {0: 0.4, 1: 0.45, 2: 0.5}, value=0.5), trial({"opt": "sgd", "lr": 0.02, "layers": 4, "momentum": 0.5}, {0: 0.3, 1: 0.35, 2: 0.4}, value=0.4)])
    return url


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_optuna_studies_become_a_validated_catalog(tmp_path, kind):
    if kind == "sqlite":
        storage = make_storage(f"sqlite:///{tmp_path / 'h.db'}")
    else:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        make_storage(JournalStorage(JournalFileBackend(str(tmp_path / "h.log"))))
        storage = str(tmp_path / "h.log")
    history = read_optuna(storage)
    assert history.skipped == {"state FAIL": 1, "state RUNNING": 1}
    report = write_catalog(history, tmp_path / "cat", metric="acc")
    catalog = ObservationCatalog.load(tmp_path / "cat", tmp_path / "cat" / "space.yml", "acc")
    obs = catalog.observations
    # steps 0.. are epochs 1..; the pruned trial keeps its 2 epochs
    assert sorted(obs.groupby(["task", "config_id"]).epoch.max().to_dict().items()) == [(("a", 0), 3), (("a", 1), 2), (("b", 0), 3), (("b", 2), 3)]
    assert obs[(obs.task == "a") & (obs.config_id == 0)].acc.tolist() == [0.5, 0.6, 0.7]
    # the config that recurs in both studies has one id
    assert catalog.configs[0] == ADAM and report.recurring_configs == 1 and report.configs == 3
    assert json.loads((tmp_path / "cat" / "train_test_pairs.json").read_text())["pairs"] == [
        {"train": ["b"], "test": "a"}, {"train": ["a"], "test": "b"}]
    space = yaml.safe_load((tmp_path / "cat" / "space.yml").read_text())["hyperparameters"]
    by_name = {h["name"]: h for h in space}
    assert by_name["lr"] == {"name": "lr", "type": "float", "lower": 1e-4, "upper": 1e-1, "log": True}
    assert by_name["layers"]["type"] == "integer" and by_name["opt"]["choices"] == ["adam", "sgd"]
    # momentum is set exactly when opt is sgd: a condition, placed after its parent
    assert by_name["momentum"]["condition"] == {"parent": "opt", "values": ["sgd"]}
    assert [h["name"] for h in space].index("momentum") > [h["name"] for h in space].index("opt")


def test_a_minimised_study_is_stored_negated_and_catalog_json_says_so(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    study = optuna.create_study(study_name="loss", storage=url, direction="minimize")
    study.add_trials([trial(ADAM, {1: 0.9, 2: 0.5}, value=0.5)])
    report = write_catalog(read_optuna(url), tmp_path / "cat", metric="neg_loss")
    assert report.catalog.observations.neg_loss.tolist() == [-0.9, -0.5]
    info = json.loads((tmp_path / "cat" / "catalog.json").read_text())
    assert info["direction"] == "minimize" and info["stored"] == "negated" and info["metric"] == "neg_loss"


def test_a_study_without_intermediate_values_gives_one_epoch_per_trial(tmp_path):
    url = f"sqlite:///{tmp_path / 'f.db'}"
    optuna.create_study(study_name="flat", storage=url, direction="maximize").add_trials(
        [trial(ADAM, {}, value=0.3), trial({"opt": "adam", "lr": 0.02, "layers": 2}, {}, value=0.6)])
    report = write_catalog(read_optuna(url), tmp_path / "cat")
    assert report.catalog.observations.value.tolist() == [0.3, 0.6] and report.max_epoch == 1


def test_a_trial_with_a_gap_in_its_steps_is_cut_at_the_gap(tmp_path):
    url = f"sqlite:///{tmp_path / 'g.db'}"
    optuna.create_study(study_name="g", storage=url).add_trials(
        [trial(ADAM, {0: 0.1, 1: 0.2, 2: 0.3}, value=0.3, state=optuna.trial.TrialState.COMPLETE),
         trial({"opt": "adam", "lr": 0.02, "layers": 2}, {0: 0.5, 2: 0.7}, value=0.7)])
    history = read_optuna(url)
    assert [r.values for r in history.records] == [[0.1, 0.2, 0.3], [0.5]] and "1 trial(s) cut" in history.notes[0]


def test_bad_input_is_one_line_naming_it(tmp_path):
    url = make_storage(f"sqlite:///{tmp_path / 'h.db'}", direction_b="minimize")
    with pytest.raises(ConfigurationError, match=r"study 'nope' is not in .* \(its studies: a, b\)"):
        read_optuna(url, ["nope"])
    with pytest.raises(ConfigurationError, match=r"mixed directions \(a maximizes, b minimizes\)"):
        read_optuna(url)
    with pytest.raises(ConfigurationError, match="does not exist"):
        read_optuna(tmp_path / "missing.db")
    optuna.create_study(study_name="multi", storage=url, directions=["maximize", "minimize"])
    with pytest.raises(ConfigurationError, match="study 'multi' has 2 objectives"):
        read_optuna(url, ["multi"])
    report = write_catalog(read_optuna(url, ["a"]), tmp_path / "cat")
    with pytest.raises(ConfigurationError, match="already holds a catalog"):
        write_catalog(read_optuna(url, ["a"]), tmp_path / "cat")
    assert report.trials == 2


def test_a_parameter_present_without_a_deciding_categorical_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    optuna.create_study(study_name="c", storage=url).add_trials(
        [trial({"opt": "adam", "lr": 0.01, "layers": 2, "momentum": 0.5}, {0: 0.1}, value=0.1),
         trial({"opt": "adam", "lr": 0.02, "layers": 2}, {0: 0.2}, value=0.2)])
    with pytest.raises(ConfigurationError, match="parameter 'momentum' is set in only 1 of 2 trials"):
        write_catalog(read_optuna(url), tmp_path / "cat")


def test_hyperrec_tasks_through_optuna_come_back_as_the_same_curves(tmp_path, hyperrec):
    from transfertune.history.replay import catalog_to_optuna

    from optuna.storages.journal import JournalFileBackend, JournalStorage

    storage = JournalStorage(JournalFileBackend(str(tmp_path / "h.log")))
    catalog_to_optuna(hyperrec, storage, ["CIFAR10", "SDD"])
    report = write_catalog(read_optuna(tmp_path / "h.log"), tmp_path / "cat", metric="val_top5_acc", space=hyperrec.space)
    back = report.catalog
    assert report.recurring_configs == 100 and report.configs == 100
    for task in ("CIFAR10", "SDD"):
        original = hyperrec.grid(task)
        # config ids follow first appearance, which is the catalog's order here
        assert [back.configs[i] for i in back.config_ids] == [hyperrec.configs[int(i)] for i in hyperrec.config_ids]
        np.testing.assert_array_equal(back.grid(task), original)


# ---------------------------------------------------------------------- MLflow
def test_mlflow_runs_grouped_by_a_tag_become_tasks(tmp_path):
    import mlflow

    from transfertune.history.mlflow_source import read_mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.tracking.MlflowClient(uri)
    exp = client.create_experiment("sweeps", artifact_location=str(tmp_path / "art"))

    def run(task, params, curve, status="FINISHED"):
        r = client.create_run(exp, tags={"dataset": task})
        for k, v in params.items():
            client.log_param(r.info.run_id, k, v)
        for step, v in enumerate(curve):
            client.log_metric(r.info.run_id, "val_loss", v, step=step)
        client.set_terminated(r.info.run_id, status=status)

    run("mnist", {"lr": 0.001, "opt": "adam", "layers": 2}, [0.9, 0.5, 0.4])
    run("mnist", {"lr": 0.1, "opt": "sgd", "layers": 4}, [1.2, 0.9], status="KILLED")
    run("mnist", {"lr": 0.01, "opt": "sgd", "layers": 3}, [2.0], status="FAILED")
    run("cifar", {"lr": 0.001, "opt": "adam", "layers": 2}, [1.5, 1.1, 1.0])
    history = read_mlflow(uri, ["sweeps"], "val_loss", task_tag="dataset", direction="minimize")
    assert history.skipped == {"MLflow status FAILED": 1}
    report = write_catalog(history, tmp_path / "cat", metric="neg_val_loss")
    obs = report.catalog.observations.sort_values(["task", "config_id", "epoch"])
    assert sorted(report.catalog.tasks) == ["cifar", "mnist"] and report.recurring_configs == 1
    assert obs[obs.task == "mnist"].neg_val_loss.tolist() == [-0.9, -0.5, -0.4, -1.2, -0.9]
    space = {h.name: h for h in report.catalog.space.hyperparameters}
    assert space["lr"].type == "float" and space["lr"].log and space["layers"].type == "integer"
    assert space["opt"].choices == ("adam", "sgd")
    with pytest.raises(ConfigurationError, match=r"metric 'val_acc' is in none of the 4 runs of experiment 'sweeps' \(metrics: val_loss\)"):
        read_mlflow(uri, ["sweeps"], "val_acc")
    with pytest.raises(ConfigurationError, match="MLflow experiment 'nope' is not in"):
        read_mlflow(uri, ["nope"], "val_loss")


def test_the_sql_read_of_an_rdb_storage_equals_optunas_own(tmp_path):
    from transfertune.history.optuna_source import _trials_api, _trials_sql, open_storage

    url = make_storage(f"sqlite:///{tmp_path / 'h.db'}")
    study = optuna.load_study(study_name="a", storage=url)
    study.add_trial(trial(ADAM, {0: float("inf"), 1: float("nan")}, value=float("-inf")))  # the special values
    store = open_storage(url)
    for name in ("a", "b"):
        api, sql = _trials_api(store, name), _trials_sql(store, name)
        assert api[0] == sql[0]
        assert [str(t) for t in api[1]] == [str(t) for t in sql[1]]  # str: nan == nan
