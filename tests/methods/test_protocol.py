"""The trial protocol: pool methods through PoolSearcher, space searchers, bookkeeping and bad calls,
and catalog replay through the protocol equal to the direct pool loop it replaced."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from transfertune.core.objectives import BudgetExhausted
from transfertune.core.spaces import SearchSpace
from transfertune.core.trials import Trial
from transfertune.errors import ProtocolError
from transfertune.methods.base import TransferProblem
from transfertune.methods.protocol import PoolSearcher, SearchProblem, SpaceSearcher
from transfertune.methods.registry import available_methods, make_method, make_searcher
from transfertune.methods.runner import RESULT_COLUMNS, Episode, build_episodes, run_episode

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from live_bench import direct_episode  # noqa: E402  (the runner's loop before the trial protocol)

SPACE = SearchSpace.from_dict({
    "name": "small",
    "hyperparameters": [
        {"name": "lr", "type": "float", "lower": 1e-4, "upper": 1e-1, "log": True},
        {"name": "width", "type": "integer", "lower": 8, "upper": 64},
        {"name": "opt", "type": "categorical", "choices": ["adam", "sgd"]},
    ],
})


def small_problem(budget: int = 20, n: int = 8, epochs: int = 4, seed: int = 0) -> tuple[TransferProblem, np.ndarray]:
    rng = np.random.default_rng(42)
    configs = SPACE.sample(n, seed=3)
    shape = 1 - np.exp(-np.arange(1, epochs + 1) / 2)
    train = np.stack([rng.uniform(0.2, 0.9, n)[:, None] * shape for _ in range(2)])
    test = rng.uniform(0.2, 0.9, n)[:, None] * shape
    problem = TransferProblem(
        config_ids=np.arange(100, 100 + n), configs=configs, X=SPACE.encode(configs), space=SPACE, n_epochs=epochs,
        train_tasks=("a", "b"), train_grids=train, test_task="t", trial_length=np.full(n, epochs), budget=budget, seed=seed,
    )
    return problem, test


def pool_searcher(name: str, budget: int = 20, **params) -> PoolSearcher:
    problem, _ = small_problem(budget)
    searcher = make_searcher(name, params)
    searcher.setup(SearchProblem.from_transfer(problem, metric="acc"))
    return searcher


def test_a_pool_method_asks_one_epoch_and_continuing_keeps_the_trial_id():
    searcher = pool_searcher("zero_shot")
    first = searcher.ask()
    assert (first.trial_id, first.epoch, first.start_epoch) == (0, 1, 0)
    assert first.pool_index == searcher.method.order[0] and first.config == searcher.pool.configs[first.pool_index]
    searcher.tell(first, 1, {"acc": 0.5, "loss": 1.0})
    second = searcher.ask()
    assert (second.trial_id, second.epoch, second.start_epoch, second.pool_index) == (0, 2, 1, first.pool_index)
    assert searcher.trials[0].metrics == [{"acc": 0.5, "loss": 1.0}] and searcher.method.curves[first.pool_index] == [0.5]


def test_in_flight_configs_are_skipped_so_parallel_asks_differ_and_sequential_use_is_unchanged():
    searcher = pool_searcher("random_search")
    order = list(searcher.method.order)
    trials = [searcher.ask() for _ in range(3)]
    assert [t.pool_index for t in trials] == order[:3]  # each ask skips the configs in flight
    assert searcher.in_flight == [0, 1, 2] and searcher.remaining == 20 - 3
    assert not searcher.method.can_continue(order[0]) and not searcher.method.continuable()[order[:3]].any()
    searcher.tell(trials[1], 1, 0.4)
    assert searcher.ask().pool_index == order[1]  # told: its config is continuable again, first in the order


def test_a_method_that_waits_for_its_result_gets_none():
    searcher = pool_searcher("hyperband")
    trial = searcher.ask()
    assert searcher.ask() is None  # Hyperband's rung needs trial's result before anything else
    searcher.tell(trial, 1, 0.3)
    assert searcher.ask() is not None


def test_a_failed_pool_config_is_never_asked_again():
    searcher = pool_searcher("random_search")
    trial = searcher.ask()
    searcher.tell(trial, 1, 0.3)
    again = searcher.ask()
    assert again.trial_id == trial.trial_id
    searcher.fail(again, "diverged")
    assert searcher.pool.trial_length[trial.pool_index] == 1 and searcher.remaining == 20 - 1
    assert searcher.ask().pool_index != trial.pool_index
    with pytest.raises(ProtocolError, match="failed \\(diverged\\)"):
        searcher.tell(again, 2, 0.4)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda s, t: s.tell(7, 1, 0.5), "trial 7 was never asked"),
        (lambda s, t: s.tell(t, 2, 0.5), "the next is epoch 1, not 2"),
        (lambda s, t: s.tell(t, 1, float("nan")), "not finite; report a diverged run with fail"),
        (lambda s, t: s.tell(t, 1, {"acc": float("inf")}), "not finite"),
        (lambda s, t: s.tell(t, 1, {"loss": 0.1}), "lack the objective metric 'acc'"),
        (lambda s, t: s.tell(t, 1, "high"), "must be a number"),
        (lambda s, t: s.tell(Trial(t.trial_id, {"lr": 1.0}, 1), 1, 0.5), "is not the one asked"),
        (lambda s, t: s.tell("0", 1, 0.5), "expected a Trial or a trial id"),
    ],
)
def test_bad_tells_raise_one_line_and_change_nothing(call, message):
    searcher = pool_searcher("zero_shot")
    trial = searcher.ask()
    with pytest.raises(ProtocolError, match=message) as info:
        call(searcher, trial)
    assert "\n" not in str(info.value)
    assert searcher.epochs_told == 0 and searcher.trials[0].values == [] and searcher.in_flight == [0]
    searcher.tell(trial, 1, 0.5)  # the trial still takes its real result
    with pytest.raises(ProtocolError, match="trial 0 is finished"):
        searcher.tell(trial, 1, 0.5)


def test_the_budget_counts_epochs_in_flight_and_cuts_a_long_ask():
    problem, _ = small_problem(budget=6, epochs=4)
    searcher = make_searcher("random_space")
    searcher.setup(SearchProblem.from_transfer(problem))
    first, second = searcher.ask(), searcher.ask()
    assert (first.epoch, second.epoch) == (4, 2) and searcher.remaining == 0  # the second is cut to the 2 epochs left
    with pytest.raises(BudgetExhausted):
        searcher.ask()
    searcher.fail(second, "worker died")
    assert searcher.remaining == 2


def test_random_space_proposes_valid_continuous_configs_reproducibly():
    problem, _ = small_problem(budget=40)
    runs = []
    for seed in (0, 0, 1):
        searcher = make_searcher("random_space", {"epochs": 2})
        searcher.setup(SearchProblem.from_transfer(TransferProblem(**{**problem.__dict__, "seed": seed})))
        runs.append([searcher.ask() for _ in range(5)])
    assert all(not SPACE.problems(t.config) and t.epoch == 2 and t.pool_index is None for t in runs[0])
    assert [t.config for t in runs[0]] == [t.config for t in runs[1]] and [t.config for t in runs[0]] != [t.config for t in runs[2]]
    assert not any(t.config in problem.configs for t in runs[0])  # not limited to the pool
    assert [t.trial_id for t in runs[0]] == [0, 1, 2, 3, 4]


class BadProposer(SpaceSearcher):
    def ask(self):
        return self.new_trial({"lr": 5.0, "opt": "adam"}, 1)


def test_a_space_searcher_cannot_ask_a_config_outside_the_space():
    problem, _ = small_problem()
    searcher = BadProposer()
    searcher.setup(SearchProblem.from_transfer(problem))
    with pytest.raises(ProtocolError, match=r"outside the space 'small': 'lr'=5.0 is outside .*'width' \(key 'width'\) is missing"):
        searcher.ask()
    assert searcher.trials == {}


def test_a_pool_method_without_a_pool_is_refused():
    problem, _ = small_problem()
    searcher = make_searcher("zero_shot")
    with pytest.raises(Exception, match="picks configs from a pool"):
        searcher.setup(SearchProblem(SPACE, 4, 10, 0, "t"))


def test_registry_lists_space_searchers_and_strips_off_pool():
    assert "random_space" in available_methods()
    assert isinstance(make_method("random_space", {"off_pool": "refuse", "epochs": 3}), SpaceSearcher)


# ---------------------------------------------------------------------- catalog replay


@pytest.mark.parametrize(
    "name, params",
    [("zero_shot", {}), ("random_search", {}), ("hyperband", {}), ("bohb", {"min_points_in_model": 4}),
     ("gp_ucb", {"full_refits": 2, "maxiter": 20}), ("at2", {"fit_steps": 10})],
)
def test_replay_through_the_protocol_equals_the_direct_pool_loop(name, params):
    problem, grid = small_problem(budget=18)
    episode = Episode(name, params, problem, grid, "t", 0)
    ours = run_episode(episode).drop(columns="wall_time_s")
    theirs = direct_episode(episode).drop(columns="wall_time_s")
    pd.testing.assert_frame_equal(ours, theirs)


def test_a_space_searcher_replays_a_catalog_with_snapped_configs(hyperrec):
    episodes = build_episodes(hyperrec, {"random_space": {"epochs": 3}}, hyperrec.pairs[:1], 1, 12, 0)
    frame = run_episode(episodes[0])
    assert list(frame.columns) == [*RESULT_COLUMNS, "snap_distance"] and list(frame.q) == list(range(1, 13))
    assert list(frame.epoch) == [1, 2, 3] * 4 and (frame.snap_distance > 0).all()
    assert frame.groupby(frame.index // 3).snap_distance.nunique().eq(1).all()  # one distance per trial
    grid = hyperrec.grid(hyperrec.pairs[0].test)
    rows = [list(hyperrec.config_ids).index(c) for c in frame.config_id]
    assert np.array_equal(frame.value.to_numpy(), grid[rows, frame.epoch.to_numpy() - 1])
    refused = build_episodes(hyperrec, {"random_space": {"off_pool": "refuse"}}, hyperrec.pairs[:1], 1, 5, 0)
    with pytest.raises(Exception, match="is not one of the 100 recorded configs .*set off_pool='nearest'"):
        run_episode(refused[0])


def test_space_searcher_helpers_give_observations_and_the_unit_cube():
    problem, _ = small_problem(budget=20)
    searcher = make_searcher("random_space", {"epochs": 3})
    searcher.setup(SearchProblem.from_transfer(problem))
    a, b = searcher.ask(), searcher.ask()
    for epoch, value in enumerate([0.2, 0.5, 0.4], start=1):
        searcher.tell(a, epoch, value)
    searcher.tell(b, 1, 0.3)
    configs, best = searcher.observations()
    assert configs == [a.config, b.config] and best.tolist() == [0.5, 0.3]
    configs, at_2 = searcher.observations(epoch=2)
    assert configs == [a.config] and at_2.tolist() == [0.5]
    assert searcher.recommend() == a.config and searcher.best_trial().trial_id == 0
    X = searcher.to_unit([a.config, b.config])
    assert X.shape == (2, SPACE.dim) and ((X >= 0) & (X <= 1)).all()
    back = searcher.from_unit(X)
    assert back[0]["opt"] == a.config["opt"] and back[0]["lr"] == pytest.approx(a.config["lr"])


def test_a_benchmark_mixes_pool_and_space_methods(hyperrec):
    from transfertune.core.metrics import summary
    from transfertune.methods.runner import run_episodes

    episodes = build_episodes(hyperrec, {"zero_shot": {}, "random_space": {"epochs": 2}}, hyperrec.pairs[:1], 1, 6, 0)
    frame = run_episodes(episodes, show_progress=False)
    assert frame[frame.method == "zero_shot"].snap_distance.isna().all() and (frame[frame.method == "random_space"].snap_distance > 0).all()
    assert set(summary(frame, [6]).method) == {"zero_shot", "random_space"}


def test_an_episode_ends_when_a_whole_trial_searcher_has_no_full_trial_left(hyperrec):
    """HORD trains 3 epochs per evaluation: 10 queries hold 3 evaluations, the 10th epoch none."""
    episodes = build_episodes(hyperrec, {"hord": {"epochs": 3}}, hyperrec.pairs[:1], 1, 10, 0)
    frame = run_episode(episodes[0])
    assert list(frame.q) == list(range(1, 10)) and list(frame.epoch) == [1, 2, 3] * 3


def test_in_process_episodes_run_on_one_thread_and_restore_the_callers(hyperrec, monkeypatch):
    import torch

    from transfertune.methods import runner
    from transfertune.methods.runner import run_episodes

    seen = []
    real = runner.run_episode
    monkeypatch.setattr(runner, "run_episode", lambda episode, progress=None: seen.append(torch.get_num_threads()) or real(episode, progress))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run_episodes(build_episodes(hyperrec, {"zero_shot": {}}, hyperrec.pairs[:2], 1, 3, 0), n_jobs=1, show_progress=False)
        assert seen == [1, 1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
