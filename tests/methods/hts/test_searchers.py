"""hts, hord and source_order through the trial protocol: evaluations, budget, failures, the
source, the variations, catalog replay and a Tuner replay."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.methods.hts.conftest import SOURCE_OPTIMUM, TARGET_OPTIMUM, quadratic
from transfertune.core.catalog import ObservationCatalog
from transfertune.core.objectives import BudgetExhausted
from transfertune.core.spaces import SearchSpace
from transfertune.errors import ConfigurationError
from transfertune.methods.base import TransferProblem
from transfertune.methods.hts.dycors import DycorsSearch
from transfertune.methods.hts.searchers import source_observations
from transfertune.methods.protocol import SearchProblem
from transfertune.methods.registry import make_searcher
from transfertune.methods.runner import build_episodes, resolve_pairs, run_episode


def history(space: SearchSpace, n: int = 30, epochs: int = 3, tasks: int = 2, seed: int = 0) -> TransferProblem:
    """A source of ``tasks`` tasks whose value at every epoch is 1 - ||x - SOURCE_OPTIMUM||^2 (+ task offsets)."""
    configs = space.sample(n, seed=seed)
    f = quadratic(space, SOURCE_OPTIMUM)
    values = np.array([1.0 - f(c) for c in configs])
    grids = np.stack([np.repeat((values + 0.01 * t)[:, None], epochs, axis=1) for t in range(tasks)])
    return TransferProblem(config_ids=np.arange(n), configs=configs, X=space.encode(configs), space=space, n_epochs=epochs,
                           train_tasks=tuple(f"source{t}" for t in range(tasks)), train_grids=grids, test_task="target",
                           trial_length=np.full(n, epochs), budget=0, seed=0)


def problem(space, budget: int, epochs: int = 3, seed: int = 0, source: TransferProblem | None = None) -> SearchProblem:
    return SearchProblem(space, epochs, budget, seed, "target", "val_acc", source)


def drive(searcher, f, evaluations: int | None = None, fail: set[int] = frozenset()) -> list:
    """Ask and tell until BudgetExhausted (or ``evaluations`` trials); value = 1 - f(config) at every epoch."""
    trials = []
    while evaluations is None or len(trials) < evaluations:
        try:
            trial = searcher.ask()
        except BudgetExhausted:
            break
        assert trial is not None and trial.start_epoch == 0
        trials.append(trial)
        if trial.trial_id in fail:
            searcher.tell(trial, 1, {"val_acc": 0.1})
            searcher.fail(trial, "diverged")
            continue
        for epoch in range(1, trial.epoch + 1):
            searcher.tell(trial, epoch, {"val_acc": 1.0 - f(trial.config)})
    return trials


def test_source_observations_average_the_source_tasks_at_the_evaluation_epoch(cnn_space):
    source = history(cnn_space, n=12, epochs=3)
    source.train_grids[:, :, 1] += np.array([[0.0], [0.2]])  # epoch 2 differs: the tasks' mean there is +0.1
    source.train_grids[0, 4, 1] = np.nan  # recorded on one task only: that task's value
    source.train_grids[:, 7, 1] = np.nan  # diverged on both: the worst recorded value
    configs, errors = source_observations(problem(cnn_space, 30, source=source), 2, "hts")
    mean = np.mean(source.train_grids[:, :, 0], axis=0)
    expected = -(mean + 0.1)
    expected[4] = -(source.train_grids[1, 4, 1])
    expected[7] = np.max(np.delete(expected, 7))
    np.testing.assert_allclose(errors, expected)
    assert configs == source.configs
    with pytest.raises(ConfigurationError, match="evaluates configs at epoch 4, but the source has only 3 recorded epoch"):
        source_observations(problem(cnn_space, 30, epochs=4, source=source), 4, "hts")
    with pytest.raises(ConfigurationError, match="^method 'hts' transfers from a source: give it a database"):
        source_observations(problem(cnn_space, 30), 2, "hts")


def test_the_source_space_must_be_the_target_space(cnn_space):
    spec = {"name": "narrow", "hyperparameters": [
        {"name": h.name, "type": h.type, "lower": h.lower, "upper": 0.2 if h.name == "lr" else h.upper} for h in cnn_space.hyperparameters]}
    narrow = SearchSpace.from_dict(spec)
    source = dataclasses.replace(history(cnn_space), space=cnn_space)
    searcher = make_searcher("hts", {"n_rank_samples": 100})
    with pytest.raises(ConfigurationError, match=r"^HTS maps configs between one space: .*'lr': float \[0.01, 0.4\] vs float \[0.01, 0.2\]"):
        searcher.setup(problem(narrow, 30, source=source))


@pytest.mark.parametrize("name, options", [("hts", {"n_rank_samples": 300}), ("hord", {}), ("source_order", {})])
def test_each_ask_is_one_evaluation_of_epochs_epochs(cnn_space, name, options):
    searcher = make_searcher(name, {"epochs": 2, **options})
    searcher.setup(problem(cnn_space, budget=2 * 12 + 1, epochs=3, source=history(cnn_space)))
    trials = drive(searcher, quadratic(cnn_space, TARGET_OPTIMUM))
    assert len(trials) == 12 and all(t.epoch == 2 for t in trials)  # 25 // 2: the last epoch is never spent
    assert searcher.remaining == 1
    best = min(trials, key=lambda t: quadratic(cnn_space, TARGET_OPTIMUM)(t.config))
    assert searcher.recommend() == dict(best.config)


def test_source_order_is_the_source_ranking(cnn_space):
    source = history(cnn_space, n=6)
    searcher = make_searcher("source_order", {})
    searcher.setup(problem(cnn_space, budget=3 * 8, source=source))
    trials = drive(searcher, quadratic(cnn_space, TARGET_OPTIMUM))
    order = np.argsort(-source.train_grids.mean(axis=0)[:, -1])
    assert [t.config for t in trials[:6]] == [source.configs[i] for i in order]
    assert all(t.config not in source.configs for t in trials[6:])  # then random configs of the space


def test_hts_starts_with_m_latin_hypercube_samples_then_mapped_rounds(cnn_space):
    searcher = make_searcher("hts", {"epochs": 1, "n_rank_samples": 500, "n_random": 1})
    searcher.setup(problem(cnn_space, budget=9 + 12, epochs=1, source=history(cnn_space)))
    f = quadratic(cnn_space, TARGET_OPTIMUM)
    trials = drive(searcher, f, evaluations=9)
    assert [o.kind for o in searcher.run.omega_t] == ["lhs"] * 9 and searcher.run.g is None
    drive(searcher, f)
    assert [o.kind for o in searcher.run.omega_t][9:] == ["mapped"] * 5 + ["random"] + ["mapped"] * 5 + ["random"]
    assert len(searcher.run.fits) == 2
    assert trials[0].config == searcher.run.omega_t[0].config
    np.testing.assert_allclose([o.error for o in searcher.run.omega_t], [-(1 - f(o.config)) for o in searcher.run.omega_t])


def test_a_round_waits_for_its_evaluations(cnn_space):
    """Step 8's r evaluations may run in parallel; S_T is refitted only once all are told."""
    searcher = make_searcher("hts", {"epochs": 1, "n_rank_samples": 200})
    searcher.setup(problem(cnn_space, budget=30, epochs=1, source=history(cnn_space)))
    f = quadratic(cnn_space, TARGET_OPTIMUM)
    drive(searcher, f, evaluations=8)
    last = searcher.ask()  # the 9th sample is in flight
    assert searcher.ask() is None  # no round before it is told
    searcher.tell(last, 1, {"val_acc": 1 - f(last.config)})
    round_ = [searcher.ask() for _ in range(5)]
    assert all(t is not None for t in round_) and searcher.ask() is None
    for t in round_:
        searcher.tell(t, 1, {"val_acc": 1 - f(t.config)})
    assert searcher.ask() is not None and len(searcher.run.fits) == 2


def test_evaluations_are_counted_even_when_a_trial_spent_fewer_epochs(cnn_space):
    searcher = make_searcher("hord", {"epochs": 3})
    searcher.setup(problem(cnn_space, budget=3 * 10, epochs=3))
    trials = drive(searcher, quadratic(cnn_space, TARGET_OPTIMUM), fail={0, 4})  # two diverge after one epoch
    assert len(trials) == 10 and searcher.remaining == 2 * 2  # t_max = 10 asks; their unspent epochs stay unspent


def test_a_diverged_evaluation_counts_as_the_worst_value_told(cnn_space):
    searcher = make_searcher("hts", {"epochs": 2, "n_rank_samples": 200})
    searcher.setup(problem(cnn_space, budget=2 * 15, epochs=2, source=history(cnn_space)))
    drive(searcher, quadratic(cnn_space, TARGET_OPTIMUM), fail={3})
    worst_before = min(v for t in range(3) for v in searcher.trials[t].values)
    failed = next(o for o in searcher.run.omega_t if o.config == searcher.trials[3].config)
    assert failed.error == pytest.approx(-min(worst_before, 0.1))  # its own told epoch (0.1) counts too
    assert len(searcher.run.omega_t) == 15


def test_hord_explores_then_improves(cnn_space):
    f = quadratic(cnn_space, TARGET_OPTIMUM)
    searcher = make_searcher("hord", {"epochs": 1})
    searcher.setup(problem(cnn_space, budget=60, epochs=1, seed=3))
    trials = drive(searcher, f)
    errors = np.array([f(t.config) for t in trials])
    assert len(trials) == 60
    assert errors[18:].min() < 0.5 * errors[:18].min()  # DYCORS after the 2(d + 1) = 18 point design
    again = make_searcher("hord", {"epochs": 1})
    again.setup(problem(cnn_space, budget=60, epochs=1, seed=3))
    assert [t.config for t in drive(again, f)] == [t.config for t in trials]


def test_hts_hands_over_to_dycors(cnn_space):
    searcher = make_searcher("hts", {"epochs": 1, "n_rank_samples": 300, "hord_after": 0.5})
    searcher.setup(problem(cnn_space, budget=40, epochs=1, source=history(cnn_space)))
    trials = drive(searcher, quadratic(cnn_space, TARGET_OPTIMUM))
    assert len(trials) == 40 and len(searcher.run.omega_t) == 20  # HTS for ceil(0.5 * 40) evaluations
    assert searcher.dycors is not None and searcher.dycors.evaluations == 40  # the 20 known ones and 20 of its own
    assert [o.kind for o in searcher.run.omega_t] == ["lhs"] * 9 + ["mapped"] * 11


def test_dycors_from_known_points_starts_at_their_best(cnn_space):
    rng = np.random.default_rng(0)
    X = rng.random((12, 8))
    f = np.sum((X - 0.5) ** 2, axis=1)
    search = DycorsSearch(cnn_space, 20, np.random.default_rng(1), known=(X, f))
    assert search.evaluations == 12
    _, x = search.ask()
    best, worst = X[np.argmin(f)], X[np.argmax(f)]
    assert np.linalg.norm(x - best) < np.linalg.norm(x - worst)  # DYCORS perturbs the best point
    np.testing.assert_array_equal(search.strategy.X[np.argmin(search.strategy.fX)], best)


def test_bad_options_are_one_line_errors(cnn_space):
    for name, options, text in (
        ("hts", {"hord_after": 1.0}, "hord_after must be a share"),
        ("hts", {"epochs": 0}, "epochs must be a positive integer"),
        ("hord", {"n_initial": 1}, "n_initial must be an integer >= 2"),
    ):
        with pytest.raises(ConfigurationError, match=text):
            make_searcher(name, options)
    searcher = make_searcher("hts", {"m": 20})
    with pytest.raises(ConfigurationError, match=r"m = 20 is outside \[k, 2k\] = \[8, 16\]"):
        searcher.setup(problem(cnn_space, 60, source=history(cnn_space)))
    searcher = make_searcher("hts", {"epochs": 1, "hord_after": 0.5, "n_rank_samples": 300})
    with pytest.raises(ConfigurationError, match=r"hands over to DYCORS after 8 of the 16 evaluations; its RBF needs d \+ 1 = 9"):
        searcher.setup(problem(cnn_space, 16, epochs=1, source=history(cnn_space)))
    searcher = make_searcher("hord", {"n_initial": 5})
    with pytest.raises(ConfigurationError, match=r"n_initial = 5: .* d \+ 1 = 9 points"):
        searcher.setup(problem(cnn_space, 60))
    searcher = make_searcher("hts", {})
    with pytest.raises(ConfigurationError, match="a budget of 2 epochs holds no evaluation of 3 epochs"):
        searcher.setup(problem(cnn_space, 2, source=history(cnn_space)))
    small = history(cnn_space, n=5)
    with pytest.raises(ConfigurationError, match=r"Omega_S\): 5 observation\(s\).*d \+ 1 = 9"):
        make_searcher("hts", {}).setup(problem(cnn_space, 60, source=small))


def test_catalog_replay_snaps_the_configs(synthetic_db):
    catalog = ObservationCatalog.load(synthetic_db, synthetic_db / "space.yml", "val_acc")
    pairs = resolve_pairs(catalog, "all")[:1]
    methods = {"hts": {"epochs": 2, "n_rank_samples": 300}, "hord": {"epochs": 2}, "source_order": {"epochs": 2}}
    for episode in build_episodes(catalog, methods, pairs, 1, 40, seed=0):
        frame = run_episode(episode)
        assert len(frame) == 40 and list(frame.epoch) == [1, 2] * 20
        if episode.label == "source_order":
            assert (frame.snap_distance == 0).all()  # recorded configs
        else:
            assert (frame.snap_distance > 0).any()


def test_a_tuner_replays_hts(tmp_path, cnn_space):
    """The Tuner's event log is replayed into a freshly fitted hts on restart: every ask must repeat."""
    from transfertune.live.tuner import Tuner

    source = history(cnn_space, n=20, epochs=2, tasks=1)
    rows = [("source0", i, 0, e, float(source.train_grids[0, i, e - 1])) for i in range(20) for e in (1, 2)]
    import pandas as pd

    catalog = ObservationCatalog(pd.DataFrame(rows, columns=["task", "config_id", "seed", "epoch", "val_acc"]),
                                 {i: c for i, c in enumerate(source.configs)}, cnn_space, "val_acc", [])
    f = quadratic(cnn_space, TARGET_OPTIMUM)
    options = {"epochs": 2, "n_rank_samples": 300, "n_random": 1}
    kwargs = dict(database=catalog, space=cnn_space, method="hts", method_options=options, budget=2 * 16, max_epochs=2, seed=4, task="target")
    with Tuner(store=tmp_path / "run", **kwargs) as tuner:
        for _ in range(12):
            trial = tuner.ask()
            for epoch in (1, 2):
                tuner.tell(trial, epoch, {"val_acc": 1 - f(trial.config)})
        asked = [s.config for s in tuner.searcher.trials.values()]
    with Tuner(store=tmp_path / "run", **kwargs) as tuner:  # replays 12 asks, 9 of them before g
        assert [s.config for s in tuner.searcher.trials.values()] == asked
        for trial in tuner:
            for epoch in (1, 2):
                tuner.tell(trial, epoch, {"val_acc": 1 - f(trial.config)})
        assert len(tuner.searcher.trials) == 16
