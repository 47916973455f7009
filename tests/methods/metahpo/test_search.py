"""BOHB on a subset (SMAC3), the baselines under a wall clock, the whole method on a tiny set, and
the bad-input errors of the study's parameters."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from transfertune.core.spaces import SearchSpace
from transfertune.errors import ConfigurationError
from transfertune.methods.metahpo.baselines import GPBOSpaceSearch, hyperband_subset_size, run_timed_search
from transfertune.methods.metahpo.bohb import BOHBConfig, bohb_on_subset, learner_observations
from transfertune.methods.metahpo.config import StudyParams, parse_params, resolve
from transfertune.methods.metahpo.datasets import ExperimentData, drift_stream, load_experiment_data
from transfertune.methods.metahpo.execution import WorkerPool, train_epochs
from transfertune.methods.metahpo.method import MetaHPOConfig, SamplingConfig, check_space, run_metahpo
from transfertune.methods.metahpo.hp_learner import MAMLConfig
from transfertune.methods.protocol import SearchProblem
from transfertune.training.runner import TrainSettings
from transfertune.training.trainer import train_trial

ROOT = Path(__file__).resolve().parents[3]
SPACE = SearchSpace.from_yaml(ROOT / "conf" / "base" / "spaces" / "mlp.yml")
SETTINGS = TrainSettings(model="mlp", epochs=3, device="cpu")


@pytest.fixture(scope="module")
def data() -> ExperimentData:
    return load_experiment_data("toy", {"name": "drift_stream", "options": {"rows_per_batch": 200, "offline_batches": 2, "stream_batches": 2,
                                                                            "n_features": 6, "n_informative": 3, "n_classes": 3}})


def test_bohb_continues_promoted_configs_as_straight_training_would(data):
    task = data.task("toy-subset", data.source.X[:150], data.source.y[:150])
    result = bohb_on_subset(task, SPACE, SETTINGS, BOHBConfig(trials_per_subset=12, min_epochs=1, max_epochs=3, eta=3), "val_acc", seed=0, train_seed=0)
    assert result.evaluations == 12
    promoted = [t for t in result.trials if len(t.records) == 3 and t.budgets[0] < 3]
    assert promoted, "SMAC promoted no config from a lower budget"
    trial = promoted[0]
    straight = train_trial("mlp", trial.config, task, 3, seed=0, device="cpu")
    for mine, theirs in zip(trial.records, straight.records):
        assert mine["val_acc"] == theirs["val_acc"] and mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-6)
    configs, y = learner_observations(result, "val_acc")
    assert len(configs) == len(result.trials) and np.isfinite(y).all()
    assert all(SPACE.problems(c) == [] for c in configs)


def test_learner_observations_take_the_largest_budget_and_the_worst_for_a_crash():
    from transfertune.methods.metahpo.bohb import SubsetHPO, SubsetTrial

    hpo = SubsetHPO("s", [SubsetTrial({"a": 1}, [{"val_acc": 0.2}, {"val_acc": 0.6}], [1, 2]),
                          SubsetTrial({"a": 2}, [], [1], "failed", "nan"), SubsetTrial({"a": 3}, [{"val_acc": 0.4}], [1])], 1.0, 4)
    _, y = learner_observations(hpo, "val_acc")
    np.testing.assert_allclose(y, [0.6, 0.4, 0.4])


def test_train_epochs_stops_at_the_deadline(data):
    task = data.full_task()
    done = train_epochs(task, SETTINGS, {"hidden_units": 16, "n_layers": 1, "dropout": 0.0, "batch_size": 32, "lr": 1e-3, "weight_decay": 0.0}, 3, 0)
    assert done.status == "completed" and len(done.records) == 3
    cut = train_epochs(task, SETTINGS, {"hidden_units": 16, "n_layers": 1, "dropout": 0.0, "batch_size": 32, "lr": 1e-3, "weight_decay": 0.0}, 3, 0,
                       deadline=time.time() - 1)
    assert cut.status == "cut" and cut.records == []


def test_gp_bo_proposes_in_the_space_and_spreads_parallel_proposals():
    searcher = GPBOSpaceSearch(n_initial=3, raw_samples=32, num_restarts=2)
    searcher.setup(SearchProblem(space=SPACE, max_epochs=2, budget=100, seed=0, task="t", metric="val_acc"))
    rng = np.random.default_rng(0)
    for _ in range(4):
        trial = searcher.ask()
        for epoch in (1, 2):
            searcher.tell(trial, epoch, {"val_acc": float(rng.random())})
    first, second = searcher.ask(), searcher.ask()  # the second sees the first as pending
    assert SPACE.problems(first.config) == [] and SPACE.problems(second.config) == []
    assert first.config != second.config
    warm = GPBOSpaceSearch(initial_configs=[first.config])
    warm.setup(SearchProblem(space=SPACE, max_epochs=2, budget=100, seed=0, task="t", metric="val_acc"))
    assert warm.ask().config == first.config


def test_timed_search_and_hyperband_over_size_respect_the_wall_clock(data):
    task = data.full_task()
    with WorkerPool(1) as pool:
        outcome = run_timed_search("gp_bo", GPBOSpaceSearch(n_initial=2, raw_samples=16, num_restarts=1), SPACE, task, SETTINGS, pool, 3.0, "val_acc")
        # no bound on outcome.seconds: an epoch in flight at the deadline finishes, and under a loaded
        # machine one epoch took more than the 10 s this test once allowed (load 39 on 2 cores); the
        # deadline itself is tested in test_train_epochs_stops_at_the_deadline
        assert outcome.config is None or SPACE.problems(outcome.config) == []
        assert (outcome.trials["t"] <= outcome.seconds + 1e-6).all()
        hb = hyperband_subset_size(task, task, SPACE, SETTINGS, pool, 4.0, "val_acc", max_units=9, eta=3)
    shares = hb.trials.groupby("bracket")["fraction"].apply(lambda f: list(dict.fromkeys(f)))
    assert shares.iloc[0][0] == pytest.approx(1 / 9) and all(np.diff(s).min(initial=1) > 0 for s in shares)
    assert hb.config is not None and SPACE.problems(hb.config) == []


def test_metahpo_runs_end_to_end_on_a_tiny_set(data):
    config = MetaHPOConfig(sampling=SamplingConfig(rounds=2, subsets_per_round=1, ratio=0.4, probe_update_epochs=1),
                           bohb=BOHBConfig(trials_per_subset=5, min_epochs=1, max_epochs=3), maml=MAMLConfig(steps=5, hidden=8, tasks_per_step=1),
                           full_meta="subset_mean")
    config.sampling.classifier.epochs = 2
    config.sampling.attack.iterations = 5
    with WorkerPool(1) as pool:
        result = run_metahpo(data, "adversarial", SPACE, SETTINGS, config, pool, "val_acc", seed=0, progress=False)
    assert SPACE.problems(result.config) == []
    assert len(result.hpo) == 2 and len(result.manifests) == 2
    assert result.manifests[0].subset_id != result.manifests[1].subset_id
    np.testing.assert_allclose(result.full_meta, np.mean(list(result.meta_features.values()), axis=0))
    t = result.transfer
    assert t.chosen in ("learner", "incumbent") and result.config == (t.prediction.config if t.chosen == "learner" else t.incumbent)
    assert result.rounds[1]["core_overlap_with_previous"] >= 0
    assert result.seconds >= sum(result.phases.values()) - 1e-6


def test_drift_stream_drifts_and_is_seeded():
    a = drift_stream(3, 400, n_features=6, n_informative=3, n_classes=3, rotation_per_batch=0.5, label_noise=0.0, label_noise_per_batch=0.2, seed=1)
    b = drift_stream(3, 400, n_features=6, n_informative=3, n_classes=3, rotation_per_batch=0.5, label_noise=0.0, label_noise_per_batch=0.2, seed=1)
    np.testing.assert_array_equal(a[2][0], b[2][0])
    assert all(X.shape == (400, 6) for X, _ in a)
    # the class means turn from batch to batch
    means = [np.stack([X[y == c, :3].mean(0) for c in range(3)]) for X, y in a]
    assert np.abs(means[2] - means[0]).mean() > np.abs(means[1] - means[0]).mean() > 0.05
    with pytest.raises(ConfigurationError, match="label noise must stay in"):
        drift_stream(10, 10, label_noise=0.5, label_noise_per_batch=0.1)


def test_library_defaults_equal_the_parameters_file():
    shipped = yaml.safe_load((ROOT / "conf" / "base" / "parameters_metahpo.yml").read_text())["metahpo"]
    shipped.pop("store_dir")
    parsed = StudyParams.model_validate({**shipped, "experiments": {}}).model_dump()
    defaults = StudyParams.model_validate({"experiments": {}}).model_dump()
    for section in ("execution", "sampling", "bohb", "meta_features", "hp_learner", "prediction", "baselines", "out_of_sample"):
        assert parsed[section] == defaults[section], section
    for key in ("seed", "runs", "device", "root"):
        assert parsed[key] == defaults[key], key


def test_bad_parameters_are_one_line():
    base = {"experiments": {"x": {"data": {"name": "digits"}}}}
    with pytest.raises(ConfigurationError, match=r"metahpo.hp_learner.alphaa: Extra inputs"):
        parse_params({**base, "hp_learner": {"alphaa": 1}})
    with pytest.raises(ConfigurationError, match=r"overrides: unknown section\(s\) \['bohbb'\]"):
        parse_params({"experiments": {"x": {"data": {"name": "digits"}, "overrides": {"bohbb": {}}}}})
    with pytest.raises(ConfigurationError, match=r"metahpo.experiments.x.overrides.sampling.ratio"):
        parse_params({"experiments": {"x": {"data": {"name": "digits"}, "overrides": {"sampling": {"ratio": 2}}}}})
    with pytest.raises(ConfigurationError, match="out_of_sample.experiment 'mnist1d_family' is not one of"):
        parse_params(base)
    study = parse_params({**base, "out_of_sample": {"enabled": False}})
    assert resolve(study, "x").sampling.ratio == 0.1
    with pytest.raises(ConfigurationError, match=r"tasks_per_step = 4 of 6 proxy subsets .* at least twice as many subsets \(8\)"):
        parse_params({**base, "out_of_sample": {"enabled": False}, "sampling": {"rounds": 2, "subsets_per_round": 3}})
    with pytest.raises(ConfigurationError, match="at least twice as many subsets"):
        MetaHPOConfig(sampling=SamplingConfig(rounds=1, subsets_per_round=3), maml=MAMLConfig(tasks_per_step=2))


def test_hyperparameters_missing_from_the_space_are_one_line():
    space = SearchSpace.from_dict({"name": "no_lr", "hyperparameters": [{"name": h, "type": "integer", "lower": 1, "upper": 4}
                                                                       for h in ("hidden_units", "n_layers", "batch_size")]})
    with pytest.raises(ConfigurationError, match=r"hyperparameter\(s\) \['dropout', 'lr', 'weight_decay'\] of model 'mlp' are missing from the space 'no_lr'"):
        check_space(space, SETTINGS)
    check_space(space, TrainSettings(model="mlp", epochs=1, fixed={"dropout": 0.0, "lr": 1e-3, "weight_decay": 0.0}))


def test_family_data_is_the_task_unstandardised_and_bad_options_are_one_line():
    options = {"family": {"preset": "tabular_mlp", "factors": {"n_train": [None], "input_scale": [10.0], "label_noise": [0.0], "class_sep": [1.5]},
                          "base_options": {"n_samples": 700}, "n_val": 100}, "task": 0, "seed": 0}
    data = load_experiment_data("fam", {"name": "family", "options": options})
    assert len(data.test_y) == 100 and not data.normalise
    # the family's input scale survives: the tasks are not standardised again (SD ~10, not 1)
    assert 5 < float(data.full_task().X_train.std()) < 20 and 5 < float(data.final_task().X_train.std()) < 20
    with pytest.raises(ConfigurationError, match=r"data 'family' has unknown option\(s\) \['tasks'\]"):
        load_experiment_data("fam", {"name": "family", "options": {**options, "tasks": 1}})
    with pytest.raises(ConfigurationError, match="needs options.family"):
        load_experiment_data("fam", {"name": "family", "options": {"task": 0}})
    with pytest.raises(ConfigurationError, match="drawn from the mnist1d generator; base 'make_classification' has none"):
        load_experiment_data("fam", {"name": "family", "options": {**options, "stream_batches": 2}})


def test_a_mnist1d_family_stream_is_new_signals_on_the_tasks_scale():
    options = {"family": {"preset": "mnist1d_scale", "factors": {"input_scale": [30.0], "n_train": [None]}, "base_options": {"num_samples": 600},
                          "n_val": 100}, "stream_batches": 3, "stream_rows": 300}
    data = load_experiment_data("fam", {"name": "family", "options": options})
    assert len(data.source) == 500 and len(data.stream) == 3
    seen = {row.tobytes() for row in np.concatenate([data.source.X, data.test_X])}
    for X, y in data.stream:
        assert X.shape == (300, 40) and set(np.unique(y)) <= set(range(10))
        assert 20 < float(X.std()) < 40  # standardised with the task's statistics, then x 30, like the task
        assert not any(row.tobytes() in seen for row in X)  # new draws, not rows of the task
    assert not np.array_equal(data.stream[0][0], data.stream[1][0])
    drifted = load_experiment_data("fam", {"name": "family", "options": {**options, "stream_drift": {"iid_noise_scale": [0.02, 0.2, 0.5]}}})
    np.testing.assert_array_equal(drifted.stream[0][0], data.stream[0][0])  # the preset's own noise level (0.02) at batch 0
    assert float(np.abs(np.diff(drifted.stream[2][0], axis=1)).mean()) > float(np.abs(np.diff(data.stream[2][0], axis=1)).mean())
    with pytest.raises(ConfigurationError, match=r"stream_drift.iid_noise_scale: a generator argument .* one value per batch \(3\)"):
        load_experiment_data("fam", {"name": "family", "options": {**options, "stream_drift": {"iid_noise_scale": [0.1]}}})
