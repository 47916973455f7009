"""The ask/tell runner and the two floor baselines on HyperRec."""

import numpy as np
import pytest

from transfertune.core.metrics import config_ranks
from transfertune.errors import ConfigurationError
from transfertune.methods.base import Method
from transfertune.methods.registry import make_method
from transfertune.methods.runner import RESULT_COLUMNS, build_episodes, make_problem, resolve_pairs, run_episode, run_episodes


def test_zero_shot_orders_configs_by_mean_training_rank(hyperrec):
    problem, _ = make_problem(hyperrec, hyperrec.pairs[0], budget=100, seed=0)
    method = make_method("zero_shot")
    method.setup(problem)
    mean_rank = np.mean([config_ranks(g) for g in problem.train_grids], axis=0)
    assert np.all(np.diff(mean_rank[method.order]) >= 0)
    assert method.recommend() == method.order[0]  # cold start: the top of the transferred order


def test_episode_trains_configs_to_the_end_in_order(hyperrec):
    episode = build_episodes(hyperrec, {"zero_shot": {}}, [hyperrec.pairs[0]], 1, 100, 0)[0]
    frame = run_episode(episode)
    assert list(frame.columns) == RESULT_COLUMNS and len(frame) == 100
    first = frame[frame.q <= 75]
    assert first.config_id.nunique() == 1 and list(first.epoch) == list(range(1, 76))
    assert (np.diff(frame.regret) <= 1e-12).all() and frame.regret.iloc[-1] >= 0
    grid = hyperrec.grid(hyperrec.pairs[0].test)
    assert frame.value.iloc[0] == grid[list(hyperrec.config_ids).index(frame.config_id.iloc[0]), 0]


def test_episode_observer_sees_the_method_after_the_fit_and_each_query(hyperrec):
    episode = build_episodes(hyperrec, {"zero_shot": {}}, [hyperrec.pairs[0]], 1, 5, 0)[0]
    seen = []
    frame = run_episode(episode, observe=lambda q, method: seen.append((q, int(method.epoch_counts().sum()))))
    assert seen == [(q, q) for q in range(6)]  # q = 0 after setup, then one epoch more per query
    assert frame.drop(columns="wall_time_s").equals(run_episode(episode).drop(columns="wall_time_s"))


def test_random_search_is_reproducible_and_seed_dependent(hyperrec):
    pair = [hyperrec.pairs[1]]
    a = run_episodes(build_episodes(hyperrec, {"random_search": {}}, pair, 2, 30, 5), show_progress=False)
    b = run_episodes(build_episodes(hyperrec, {"random_search": {}}, pair, 2, 30, 5), show_progress=False)
    assert a.drop(columns="wall_time_s").equals(b.drop(columns="wall_time_s"))
    reps = a.groupby("repetition").config_id.first()
    assert reps.iloc[0] != reps.iloc[1]


def test_parallel_run_matches_sequential(hyperrec):
    episodes = build_episodes(hyperrec, {"random_search": {}, "zero_shot": {}}, hyperrec.pairs[:2], 1, 20, 0)
    seq = run_episodes(episodes, n_jobs=1, show_progress=False).drop(columns="wall_time_s")
    par = run_episodes(episodes, n_jobs=2, show_progress=False).drop(columns="wall_time_s")
    assert seq.equals(par)


class AlwaysFirst(Method):
    def ask(self) -> int:
        return int(np.flatnonzero(self.continuable())[0])


def test_a_new_method_plugs_in_by_import_path(hyperrec):
    episodes = build_episodes(hyperrec, {"mine": {"class": f"{__name__}:AlwaysFirst"}}, [hyperrec.pairs[0]], 1, 5, 0)
    frame = run_episodes(episodes, show_progress=False)
    assert list(frame.method.unique()) == ["mine"] and list(frame.epoch) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    "methods, pairs, budget, message",
    [
        ({"nope": {}}, "all", 10, "unknown method 'nope'"),
        ({"zero_shot": {"speed": 3}}, "all", 10, "bad parameters"),
        ({"zero_shot": {}}, ["MNIST"], 10, r"unknown pair\(s\) \['MNIST'\]"),
        ({"zero_shot": {}}, "all", 0, "budget must be a positive"),
        ({"zero_shot": {}}, "all", 10**6, "exceeds the 7500 epochs"),
    ],
)
def test_bad_benchmark_input(hyperrec, methods, pairs, budget, message):
    with pytest.raises(ConfigurationError, match=message):
        build_episodes(hyperrec, methods, resolve_pairs(hyperrec, pairs), 1, budget, 0)


def test_gp_baselines_repeat_exactly_in_process_and_in_workers(hyperrec):
    """Issue 33: rgpe and gp_ei rows of docs/benchmarks.md differed from a rerun. A seeded
    episode repeats exactly: twice in this process, whatever the caller's torch thread count,
    and in a worker process (the benchmark's n_jobs: 2)."""
    import torch

    episodes = build_episodes(hyperrec, {"rgpe": {"points_per_task": 40, "n_samples": 32}, "gp_ei": {}}, [hyperrec.pairs[2]], 1, 12, 0)
    first = run_episodes(episodes, n_jobs=1, show_progress=False).drop(columns="wall_time_s")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        again = run_episodes(episodes, n_jobs=1, show_progress=False).drop(columns="wall_time_s")
    finally:
        torch.set_num_threads(before)
    in_workers = run_episodes(episodes, n_jobs=2, show_progress=False).drop(columns="wall_time_s")
    assert len(first) == 2 * 12 and first.equals(again) and first.equals(in_workers)
