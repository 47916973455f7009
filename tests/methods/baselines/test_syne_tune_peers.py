"""Syne Tune's transfer methods as peers: the one-line error without Syne Tune, and with it the
portfolio order, the FIFO protocol and CTS's direction and candidate pruning."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from tests.methods.baselines.test_screening import DISAGREEING, play, toy_problem
from transfertune.errors import ConfigurationError
from transfertune.methods.baselines.screening import best_over_epochs, greedy_portfolio
from transfertune.methods.registry import make_method
from transfertune.methods.runner import run_episode


@pytest.mark.parametrize("name", ["syne_zero_shot", "syne_cts"])
def test_without_syne_tune_the_names_fail_in_one_line(monkeypatch, name):
    monkeypatch.setitem(sys.modules, "syne_tune", None)  # makes `import syne_tune` raise ImportError
    with pytest.raises(ConfigurationError, match=r"needs Syne Tune 0\.16 \(pip install 'transfertune\[peers\]'\)") as info:
        make_method(name)
    assert "\n" not in str(info.value)


def test_a_different_syne_tune_version_is_refused(monkeypatch):
    syne_tune = pytest.importorskip("syne_tune")
    monkeypatch.setattr(syne_tune, "__version__", "0.17.0")
    with pytest.raises(ConfigurationError, match="written for Syne Tune 0.16, found 0.17.0"):
        make_method("syne_zero_shot")


def test_syne_zero_shot_trains_syne_tune_s_portfolio_in_order_and_it_is_ours(tiny):
    pytest.importorskip("syne_tune")
    problem = toy_problem(DISAGREEING, n_epochs=3)
    method = make_method("syne_zero_shot")
    asked = play(method, problem, np.tile([0.1, 0.2, 0.3], (6, 1)))
    # the toy's portfolio worked out by hand in test_screening: a b c e d f
    assert asked == [(c, e) for c in (0, 1, 2, 4, 3, 5) for e in (1, 2, 3)]
    problem, grid = tiny(budget=72)
    method = make_method("syne_zero_shot")
    play(method, problem, grid)
    # Syne Tune breaks ties by its table's first index, as our greedy with priority = index
    assert method.suggested == list(greedy_portfolio(best_over_epochs(problem.train_grids), np.arange(problem.n_configs)))


def test_syne_cts_trains_each_suggestion_to_its_end_never_twice_and_leaves_it_out_afterwards(tiny):
    pytest.importorskip("syne_tune")
    problem, grid = tiny(budget=72)
    method = make_method("syne_cts")
    asked = play(method, problem, grid)  # every epoch of all 12 configs: pruning never runs dry
    assert sorted(method.suggested) == list(range(12))
    assert asked == [(c, e) for c in method.suggested for e in range(1, 7)]
    assert len(method.scheduler.searcher.X_candidates) == 0


def test_syne_cts_suggests_good_configs_of_the_training_tasks():
    pytest.importorskip("syne_tune")
    # two tasks that agree: config c has value c / 20 at every epoch; CTS minimises, so a sign
    # error would put its first picks among the worst
    best = np.tile(np.arange(20) / 20, (2, 1))
    for seed in range(3):
        method = make_method("syne_cts")
        play(method, toy_problem(best, n_epochs=2, seed=seed), np.zeros((20, 2)), n=6)
        assert sorted(method.suggested) == [17, 18, 19]  # the three best first (noise is small next to the spread)


def test_syne_cts_episode_is_deterministic_per_seed(tiny_episode):
    pytest.importorskip("syne_tune")
    first = run_episode(tiny_episode("syne_cts", seed=1, budget=30))
    again = run_episode(tiny_episode("syne_cts", seed=1, budget=30))
    assert first.drop(columns="wall_time_s").equals(again.drop(columns="wall_time_s"))
    assert (np.diff(first.regret) <= 1e-12).all()


def test_syne_tune_s_portfolio_is_greedy_portfolio_on_every_hyperrec_pair(hyperrec):
    pytest.importorskip("syne_tune")
    from transfertune.methods.runner import make_problem

    for pair in hyperrec.pairs:
        problem, _ = make_problem(hyperrec, pair, budget=100, seed=0)
        method = make_method("syne_zero_shot")
        method.setup(problem)
        order = [method.suggest() for _ in range(problem.n_configs)]
        assert order == list(greedy_portfolio(best_over_epochs(problem.train_grids), np.arange(problem.n_configs))), pair.test
