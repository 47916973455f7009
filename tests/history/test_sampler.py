"""TransferSampler and TransferPruner, tested as Optuna tests its samplers: every distribution
kind, ask/tell, pruned and failed trials, a minimised study, the fallback."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from tests.conftest import write_synthetic_database
from transfertune.core.catalog import ObservationCatalog
from transfertune.history.sampler import TransferPruner, TransferSampler, optuna_distributions, suggest_config
from transfertune.methods.protocol import FAILED

optuna.logging.set_verbosity(optuna.logging.ERROR)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    folder = write_synthetic_database(tmp_path_factory.mktemp("db") / "db", n_tasks=3, n_configs=12, n_epochs=5)
    return ObservationCatalog.load(folder, folder / "space.yml", "val_acc")


def curve_objective(catalog, task="task0", prune=True, seen=None):
    """Answers from a catalog task's curves; every config the sampler gives is a catalog config."""
    grid = catalog.grid(task)
    rows = {tuple(sorted(catalog.configs[int(c)].items())): i for i, c in enumerate(catalog.config_ids)}

    def objective(trial):
        config = suggest_config(trial, catalog.space)
        row = rows[tuple(sorted(config.items()))]
        for epoch in range(1, grid.shape[1] + 1):
            trial.report(float(grid[row, epoch - 1]), epoch)
            if seen is not None:
                seen.append((trial.number, epoch))
            if prune and trial.should_prune():
                raise optuna.TrialPruned()
        return float(grid[row, -1])

    return objective


@pytest.mark.parametrize("method", ["zero_shot", "at2"])
def test_every_suggested_value_is_a_catalog_config_within_its_distribution(catalog, method):
    sampler = TransferSampler(catalog, method=method, budget=40, seed=0, train_tasks=["task1", "task2"],
                              method_options={"fit_steps": 20} if method == "at2" else None)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=TransferPruner(sampler))
    study.optimize(curve_objective(catalog), n_trials=6)
    distributions = optuna_distributions(catalog.space)
    configs = [catalog.configs[int(c)] for c in catalog.config_ids]
    for t in study.trials:
        assert t.params in configs
        for name, value in t.params.items():
            assert distributions[name]._contains(distributions[name].to_internal_repr(value))
            assert t.distributions[name] == distributions[name]
    # the method was told every reported epoch, in order, and no epoch twice
    told = sum(s.told for s in sampler.searcher.trials.values())
    started = [s for s in sampler.searcher.trials.values() if s.told]  # (the pruner's last ask may wait for trial 7)
    assert len(started) == 6 and len(sampler.searcher.trials) - len(started) == len(sampler._pending) <= 1
    assert told == sum(len(t.intermediate_values) for t in study.trials)


def test_the_pruner_stops_a_trial_when_the_method_switches_and_the_switch_starts_next(catalog):
    sampler = TransferSampler(catalog, method="zero_shot", budget=30, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=TransferPruner(sampler))
    study.optimize(curve_objective(catalog), n_trials=5)
    states = [t.state for t in study.trials]
    # zero-shot trains its configs in its fixed order to the end, one by one: no trial is pruned
    # before its last epoch unless the method moved on, and each trial is a different config
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 5
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    for t in pruned:
        state = next(s for s in sampler.searcher.trials.values() if dict(s.config) == t.params)
        assert state.status == FAILED and state.told == len(t.intermediate_values)  # never continued
    assert optuna.trial.TrialState.COMPLETE in states or pruned


def test_ask_and_tell_interface_with_a_pruned_and_a_failed_trial(catalog):
    sampler = TransferSampler(catalog, method="zero_shot", budget=40, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=TransferPruner(sampler))
    grid = catalog.grid("task0")
    first = study.ask(optuna_distributions(catalog.space))
    first.report(0.5, 1)
    first.report(0.6, 2)
    study.tell(first, state=optuna.trial.TrialState.PRUNED)
    trial_id = next(iter(sampler.searcher.trials))
    state = sampler.searcher.trials[trial_id]
    assert state.values == [0.5, 0.6] and state.status == FAILED and state.reason == "pruned"
    second = study.ask(optuna_distributions(catalog.space))
    assert second.params != first.params
    second.report(0.1, 1)
    study.tell(second, state=optuna.trial.TrialState.FAIL)
    failed = sampler.searcher.trials[sampler._of_trial.get(second.number, 1)]
    assert failed.status == FAILED and failed.values == [0.1] and failed.reason == "fail"
    third = study.ask(optuna_distributions(catalog.space))
    assert third.params not in (first.params, second.params)
    study.tell(third, float(grid[0, 0]))  # complete without reports: told as epoch 1
    assert sampler.searcher.trials[2].values == [float(grid[0, 0])]


def test_a_failing_objective_fails_the_trial_and_the_study_goes_on(catalog):
    sampler = TransferSampler(catalog, method="zero_shot", budget=40, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=TransferPruner(sampler))
    good = curve_objective(catalog)

    def objective(trial):
        if trial.number == 1:
            suggest_config(trial, catalog.space)
            trial.report(0.2, 1)
            raise RuntimeError("out of memory")
        return good(trial)

    study.optimize(objective, n_trials=3, catch=(RuntimeError,))
    assert [t.state for t in study.trials][1] == optuna.trial.TrialState.FAIL
    assert sampler.searcher.trials[1].status == FAILED and sampler.searcher.trials[1].values == [0.2]
    assert len(sampler.searcher.trials) == 3


def test_a_minimised_study_tells_the_method_negated_values(catalog):
    sampler = TransferSampler(catalog, method="zero_shot", budget=10, seed=0)
    study = optuna.create_study(direction="minimize", sampler=sampler, pruner=TransferPruner(sampler))
    trial = study.ask(optuna_distributions(catalog.space))
    trial.report(0.25, 1)
    trial.should_prune()
    assert sampler.searcher.trials[0].values == [-0.25]


def test_parameters_outside_the_catalog_and_a_spent_budget_go_to_the_fallback(catalog):
    sampler = TransferSampler(catalog, method="zero_shot", budget=2, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=TransferPruner(sampler))

    def objective(trial):
        suggest_config(trial, catalog.space)
        extra = trial.suggest_float("not_in_catalog", 5.0, 6.0)
        assert 5.0 <= extra <= 6.0
        trial.report(0.5, 1)
        return 0.5

    study.optimize(objective, n_trials=4)
    configs = [catalog.configs[int(c)] for c in catalog.config_ids]
    inside = [t for t in study.trials if {k: v for k, v in t.params.items() if k != "not_in_catalog"} in configs]
    # budget 2 epochs: the method starts two trials, the fallback (random) draws the others
    assert len(sampler.searcher.trials) == 2 and len(inside) == 2


def test_at2_forecast_and_recommend_in_the_studys_direction(catalog):
    sampler = TransferSampler(catalog, method="at2", budget=10, seed=0, method_options={"fit_steps": 20})
    study = optuna.create_study(direction="minimize", sampler=sampler, pruner=TransferPruner(sampler))
    study.optimize(lambda t: [t.report(-0.5, 1), suggest_config(t, catalog.space)] and -0.5, n_trials=1)
    table = sampler.forecast()
    assert list(table.columns) == ["config_id", "mean", "std", "told"] and len(table) == len(catalog.config_ids)
    internal_mean, _ = sampler.searcher.method.mean, sampler.searcher.method.std
    np.testing.assert_allclose(table["mean"], -internal_mean[:, -1])  # the study minimises: negated back
    assert (table["std"] > 0).all()
    assert sampler.recommend() in [catalog.configs[int(c)] for c in catalog.config_ids]
    zero = TransferSampler(catalog, method="zero_shot", budget=10)
    assert zero.forecast() is None


def test_categorical_and_conditional_parameters(tmp_path):
    from transfertune.history.records import History, TrialRecord, write_catalog

    rng = np.random.default_rng(0)
    configs = [{"opt": "adam", "lr": float(lr), "layers": int(k)} for lr, k in zip(rng.uniform(1e-3, 1e-1, 4), [1, 2, 3, 4])]
    configs += [{"opt": "sgd", "lr": float(lr), "layers": 2, "momentum": float(m)} for lr, m in zip(rng.uniform(1e-3, 1e-1, 4), rng.uniform(0, 0.9, 4))]
    records = [TrialRecord(task, c, list(np.cumsum(rng.uniform(0, 0.1, 4))), f"{task} {i}") for task in ("a", "b") for i, c in enumerate(configs)]
    history = History(records, {"opt": {"type": "categorical", "choices": ["adam", "sgd"]},
                                "lr": {"type": "float", "lower": 1e-3, "upper": 1e-1, "log": True},
                                "layers": {"type": "integer", "lower": 1, "upper": 4, "log": False},
                                "momentum": {"type": "float", "lower": 0.0, "upper": 0.9, "log": False}}, "maximize", "test")
    catalog = write_catalog(history, tmp_path / "cat", metric="acc").catalog
    sampler = TransferSampler(catalog, method="zero_shot", budget=32, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=TransferPruner(sampler))

    def objective(trial):
        config = suggest_config(trial, catalog.space)
        assert ("momentum" in config) == (config["opt"] == "sgd")
        for epoch in range(1, 5):
            trial.report(config["lr"] * epoch, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return config["lr"] * 4

    study.optimize(objective, n_trials=8)
    assert sorted(map(str, (t.params for t in study.trials))) == sorted(map(str, configs))  # each config once
    assert {type(t.distributions["opt"]) for t in study.trials} == {optuna.distributions.CategoricalDistribution}


def test_stop_when_spent_stops_the_study_after_the_budget(catalog):
    sampler = TransferSampler(catalog, method="zero_shot", budget=7, seed=0, stop_when_spent=True)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=TransferPruner(sampler))
    study.optimize(curve_objective(catalog), n_trials=50)
    assert sum(len(t.intermediate_values) for t in study.trials) <= 7 + catalog.max_epoch
    assert sampler.searcher.epochs_told == 7 and len(study.trials) < 50
    best = sampler.recommend()
    assert best.mean is None and "no posterior" in best.note
