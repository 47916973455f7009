"""The practitioner baselines: exact asks, halving decisions and the greedy portfolio, on toys
small enough to work out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.methods.baselines.conftest import SPACE
from transfertune.core.spaces import SearchSpace
from transfertune.errors import ConfigurationError
from transfertune.methods.base import TransferProblem
from transfertune.methods.baselines.screening import best_over_epochs, greedy_portfolio, mean_rank_order
from transfertune.methods.registry import make_method
from transfertune.methods.runner import run_episode


def toy_problem(train_best, n_epochs: int, trial_length=None, seed: int = 0) -> TransferProblem:
    """Training curves ``best[t, c] * e / E``: their best over epochs is ``best`` (at epoch E)."""
    train_best = np.asarray(train_best, dtype=float)
    n_tasks, n_configs = train_best.shape
    space = SearchSpace.from_dict(SPACE)
    configs = space.sample(n_configs, seed=0)
    shape = np.arange(1, n_epochs + 1) / n_epochs
    return TransferProblem(
        config_ids=np.arange(n_configs),
        configs=configs,
        X=space.encode(configs),
        space=space,
        n_epochs=n_epochs,
        train_tasks=tuple(f"t{t}" for t in range(n_tasks)),
        train_grids=train_best[:, :, None] * shape,
        test_task="test",
        trial_length=np.full(n_configs, n_epochs) if trial_length is None else np.asarray(trial_length),
        budget=int(n_configs * n_epochs),
        seed=seed,
    )


def play(method, problem, test_grid, n: int | None = None) -> list[tuple[int, int]]:
    """Setup, then ``n`` (default: every recorded epoch) ask/tell rounds; the (config, epoch) asked."""
    method.setup(problem)
    asked = []
    for _ in range(int(problem.trial_length.sum()) if n is None else n):
        config = method.ask()
        epoch = method.trained_epochs(config) + 1
        assert epoch <= problem.trial_length[config]
        method.tell(config, epoch, test_grid[config, epoch - 1])
        asked.append((config, epoch))
    return asked


def to_end(config: int, start: int, end: int) -> list[tuple[int, int]]:
    return [(config, e) for e in range(start, end + 1)]


# six configs, both training tasks agree: the zero-shot order is 2, 0, 4, 1, 5, 3
AGREEING = [[0.8, 0.6, 0.9, 0.4, 0.7, 0.5]] * 2
# test-task values at epochs 1..6: 1 leads at epoch 1, 4 overtakes it at epoch 2
SCREENED_GRID = np.array([
    [0.40, 0.45, 0.50, 0.55, 0.60, 0.65],
    [0.60, 0.65, 0.66, 0.67, 0.68, 0.69],
    [0.30, 0.35, 0.40, 0.45, 0.50, 0.55],
    [0.10, 0.20, 0.30, 0.40, 0.50, 0.60],
    [0.50, 0.70, 0.75, 0.80, 0.85, 0.90],
    [0.20, 0.30, 0.40, 0.50, 0.60, 0.70],
])


def test_transfer_screening_halves_the_top_k_and_continues_the_survivor_then_the_dropped():
    problem = toy_problem(AGREEING, n_epochs=6)
    method = make_method("transfer_screening", {"k": 4, "screen_epochs": 1, "eta": 2})
    asked = play(method, problem, SCREENED_GRID)
    # rung 0: the top 4 of the order (2, 0, 4, 1), one epoch each, in order
    assert asked[:4] == [(2, 1), (0, 1), (4, 1), (1, 1)]
    # epoch-1 values 0.30, 0.40, 0.50, 0.60: keep 4 // 2 = 2, best first -> (1, 4); rung 1 is 2 epochs
    assert asked[4:6] == [(1, 2), (4, 2)]
    # epoch-2 values 0.65 and 0.70: 4 survives and is trained to its end
    assert asked[6:10] == to_end(4, 3, 6)
    # then the one dropped at rung 1, then rung 0's by their epoch-1 value (0 before 2), then the order
    assert asked[10:] == to_end(1, 3, 6) + to_end(0, 2, 6) + to_end(2, 2, 6) + to_end(5, 1, 6) + to_end(3, 1, 6)
    assert method.history == [(0, 1, [2, 0, 4, 1]), (1, 2, [1, 4])]
    assert method.eliminated == [[0, 2], [1]]


def test_rungs_grow_by_eta_from_screen_epochs():
    problem = toy_problem([[0.1 * (c + 1) for c in range(9)]], n_epochs=20)
    grid = np.tile(np.linspace(0.1, 0.9, 9)[:, None], (1, 20)) + np.linspace(0, 0.05, 20)  # config 8 best throughout
    method = make_method("transfer_screening", {"k": 9, "screen_epochs": 2, "eta": 3})
    asked = play(method, problem, grid, n=9 * 2 + 3 * 4 + 14)
    assert [(r, e, len(m)) for r, e, m in method.history] == [(0, 2, 9), (1, 6, 3)]
    assert method.history[1][2] == [8, 7, 6]
    assert asked[18:30] == to_end(8, 3, 6) + to_end(7, 3, 6) + to_end(6, 3, 6)
    assert asked[30:] == to_end(8, 7, 20)


def test_a_tie_keeps_the_config_listed_first():
    problem = toy_problem(AGREEING, n_epochs=6)
    flat = np.full((6, 6), 0.5)
    method = make_method("transfer_screening", {"k": 2, "screen_epochs": 1})
    asked = play(method, problem, flat, n=3)
    assert asked == [(2, 1), (0, 1), (2, 2)]  # equal epoch-1 values: 2, the zero-shot favourite, goes on


def test_a_short_record_is_compared_on_its_last_epoch_and_never_asked_past_it():
    problem = toy_problem(AGREEING, n_epochs=6, trial_length=[1, 6, 6, 6, 6, 0])
    method = make_method("transfer_screening", {"k": 6, "screen_epochs": 2, "eta": 6})
    asked = play(method, problem, SCREENED_GRID)  # play() asserts no epoch beyond a record
    assert 5 not in method.candidates  # nothing recorded: not screened
    assert asked[:9] == [(2, 1), (2, 2), (0, 1), (4, 1), (4, 2), (1, 1), (1, 2), (3, 1), (3, 2)]
    # epoch-2 values (0's epoch 1): 2: 0.35, 0: 0.40, 4: 0.70, 1: 0.65, 3: 0.20 -> 4 survives
    assert asked[9:13] == to_end(4, 3, 6)
    assert method.eliminated == [[1, 0, 2, 3]]


def test_k_1_is_zero_shot(tiny_episode):
    for seed in range(3):
        zero_shot = run_episode(tiny_episode("zero_shot", seed=seed, budget=40))
        screening = run_episode(tiny_episode("transfer_screening", {"k": 1}, seed=seed, budget=40))
        assert screening.drop(columns=["method", "wall_time_s"]).equals(zero_shot.drop(columns=["method", "wall_time_s"]))


def test_the_transferred_order_is_zero_shot_s_with_the_same_draw(tiny):
    problem, _ = tiny(seed=5)
    zero_shot, screening = make_method("zero_shot"), make_method("transfer_screening", {"k": 4})
    zero_shot.setup(problem)
    screening.setup(problem)
    assert list(screening.order) == list(zero_shot.order) and screening.candidates == list(zero_shot.order[:4])


def test_mean_rank_order_breaks_ties_by_the_draw():
    grids = np.array([[[1.0], [2.0], [3.0]], [[3.0], [2.0], [1.0]]])  # ranks (2, 1, 0) and (0, 1, 2): all means 1
    assert list(mean_rank_order(grids, np.array([0.5, 0.1, 0.9]))) == [1, 0, 2]
    grids = np.array([[[1.0], [2.0], [3.0]], [[2.0], [3.0], [1.0]]])  # ranks (2, 1, 0) and (1, 0, 2): means 1.5, 0.5, 1
    assert list(mean_rank_order(grids, np.zeros(3))) == [1, 2, 0]


# Three tasks, five configs: tasks 0 and 1 like config 3, task 2 likes config 1.
# Configs from best to worst, t0: 3 4 2 1 0; t1: 3 2 4 1 0; t2: 1 2 4 3 0
# -> mean ranks of configs 0..4: 4, 2, 4/3, 1, 5/3; zero-shot order 3, 2, 4, 1, 0.
PER_TASK = [[0.5, 0.6, 0.7, 0.9, 0.8], [0.4, 0.5, 0.8, 0.9, 0.7], [0.6, 0.9, 0.8, 0.65, 0.7]]


def test_per_task_screening_screens_each_task_s_best_in_zero_shot_order():
    problem = toy_problem(PER_TASK, n_epochs=4)
    grid = np.array([[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8], [0.2, 0.3, 0.4, 0.5], [0.3, 0.5, 0.9, 0.95], [0.1, 0.1, 0.1, 0.1]])
    method = make_method("per_task_screening", {"screen_epochs": 2})
    asked = play(method, problem, grid)
    assert method.candidates == [3, 1]  # t0 and t1's best is 3, t2's is 1: deduplicated, 3 first (mean rank 1 < 2)
    # both to epoch 2; 1 leads (0.6 > 0.5) and is continued, then 3 from epoch 3, then 2, 4, 0 (zero-shot order)
    assert asked == [(3, 1), (3, 2), (1, 1), (1, 2)] + to_end(1, 3, 4) + to_end(3, 3, 4) + to_end(2, 1, 4) + to_end(4, 1, 4) + to_end(0, 1, 4)
    top_two = make_method("per_task_screening", {"k": 2})
    top_two.setup(problem)
    assert top_two.candidates == [3, 2, 4, 1]  # {3, 4} | {3, 2} | {1, 2}


# Six configs: config 0 is second or third everywhere (the zero-shot favourite) but no task's
# best; task 0's best is a tie of 3 and 4, task 1's is 5, task 2's is 2.
# Rank sums of configs 0..5: 4, 9, 5, 7, 6, 10 -> zero-shot order 0, 2, 4, 3, 1, 5.
NO_FAVOURITE = [[0.8, 0.7, 0.8, 0.9, 0.9, 0.3], [0.8, 0.7, 0.5, 0.2, 0.2, 0.9], [0.6, 0.2, 0.7, 0.2, 0.4, 0.1]]


def test_per_task_screening_skips_the_favourite_breaks_a_task_s_tie_by_the_order_and_halves_on_latest_values():
    problem = toy_problem(NO_FAVOURITE, n_epochs=6)
    grid = np.full((6, 6), 0.1)
    grid[2, :2], grid[4, :2], grid[5, :2] = [0.9, 0.3], [0.5, 0.6], [0.4, 0.5]
    method = make_method("per_task_screening", {"screen_epochs": 2, "eta": 2})
    method.setup(problem)
    assert method.candidates == [2, 4, 5]  # task 0's tie goes to 4 (before 3 in the zero-shot order)
    assert method.recommend() == 2  # cold start: the first candidate, not the zero-shot favourite 0
    asked = play(method, problem, grid)
    # epoch-2 values 0.3, 0.6, 0.5: 4 leads (2's better epoch 1 does not count); 3 // 2 = 1 goes on
    assert asked[:6] == [(2, 1), (2, 2), (4, 1), (4, 2), (5, 1), (5, 2)]
    assert asked[6:] == to_end(4, 3, 6) + to_end(5, 3, 6) + to_end(2, 3, 6) + to_end(0, 1, 6) + to_end(3, 1, 6) + to_end(1, 1, 6)


# The greedy portfolio's toy: tasks 0 and 1 agree, task 2 disagrees (configs a..f = 0..5).
# Ranks, 1 = best, t0 and t1: a c d f e b ; t2: b e f d c a.
# Mean ranks: a 8/3, c 9/3, d 10/3, f 11/3, e 12/3, b 13/3 -> zero-shot order a c d f e b.
DISAGREEING = [
    [0.9, 0.4, 0.8, 0.7, 0.5, 0.6],
    [0.9, 0.4, 0.8, 0.7, 0.5, 0.6],
    [0.4, 0.9, 0.5, 0.6, 0.8, 0.7],
]


def test_greedy_portfolio_minimises_the_average_best_rank_and_restarts_once_every_task_is_covered():
    best = np.array(DISAGREEING)
    order = greedy_portfolio(best, priority=np.array([0, 5, 1, 2, 4, 3]))  # ties: zero-shot order
    # a (sum of ranks 8); b: best ranks (1, 1, 1) = 3 beats e (1, 1, 2) = 4 and c (1, 1, 5) = 7.
    # A mean-rank greedy (sum of each pick's own ranks) would take c second instead.
    # Every task's best is then in: restart on c d e f ranked among themselves
    # (t0, t1: c d f e; t2: e f d c): c (6), then e (best ranks (1, 1, 1)) over d (1, 1, 3),
    # then restart on d, f: d (4), f.
    assert list(order) == [0, 1, 2, 4, 3, 5]
    # without the restart, c d e f would all score 3 after a, b and follow the tie-break: c d f e
    assert list(order[2:]) != [2, 3, 5, 4]


def test_the_portfolio_ranks_each_task_by_its_best_value_over_epochs():
    grids = np.array([[[0.1, 0.5, 0.2], [np.nan, 0.3, np.nan], [np.nan, np.nan, np.nan]]])
    np.testing.assert_array_equal(best_over_epochs(grids), [[0.5, 0.3, -np.inf]])


def test_greedy_portfolio_breaks_ties_by_priority():
    # configs 0 and 1 tie for the best (average rank 1.5): the priority picks 1; the round is
    # then complete, and 0 leads the next round
    assert list(greedy_portfolio(np.array([[1.0, 1.0, 0.0]]), priority=np.array([2, 0, 1]))) == [1, 0, 2]


def test_portfolio_zero_shot_screens_the_portfolio_head():
    problem = toy_problem(DISAGREEING, n_epochs=3)
    grid = np.array([[0.5, 0.6, 0.7], [0.6, 0.8, 0.9], [0.1, 0.2, 0.3], [0.1, 0.2, 0.3], [0.1, 0.2, 0.3], [0.1, 0.2, 0.3]])
    method = make_method("portfolio_zero_shot", {"k": 2, "screen_epochs": 1})
    asked = play(method, problem, grid)
    assert list(method.order) == [0, 1, 2, 4, 3, 5] and method.candidates == [0, 1]
    assert asked == [(0, 1), (1, 1)] + to_end(1, 2, 3) + to_end(0, 2, 3) + [(c, e) for c in (2, 4, 3, 5) for e in (1, 2, 3)]
    # the transferred ranking's top 2 on the same problem: a and c, never the task-2 config b
    transfer = make_method("transfer_screening", {"k": 2, "screen_epochs": 1})
    assert play(transfer, problem, grid, n=2) == [(0, 1), (2, 1)]


def test_portfolio_with_k_1_trains_the_portfolio_in_order_to_the_end():
    problem = toy_problem(DISAGREEING, n_epochs=3)
    method = make_method("portfolio_zero_shot", {"k": 1})
    asked = play(method, problem, np.tile([0.1, 0.2, 0.3], (6, 1)))
    assert asked == [(c, e) for c in (0, 1, 2, 4, 3, 5) for e in (1, 2, 3)]


def _syne_tune_style_portfolio(best: np.ndarray) -> list[int]:
    """Reference: the clip/argmin/reset loop on a pandas table of ranks, as Syne Tune's
    ``ZeroShotTransfer.get_config`` describes it (first index wins a tie, as ``idxmin``)."""
    scores = pd.DataFrame(-best)  # tasks x configs, lower is better
    ranks = scores.rank(axis=1)
    picked = []
    while scores.shape[1]:
        pick = ranks.mean(axis=0).idxmin()
        ranks = ranks.clip(upper=ranks[pick], axis=0)
        scores = scores.drop(columns=pick)
        picked.append(int(pick))
        if ranks.std(axis=1).sum() == 0:
            ranks = scores.rank(axis=1)
    return picked


def test_greedy_portfolio_agrees_with_the_syne_tune_loop():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n_tasks, n_configs = rng.integers(1, 5), rng.integers(1, 9)
        best = rng.integers(0, 5, size=(n_tasks, n_configs)).astype(float)  # few values: ties on purpose
        assert list(greedy_portfolio(best, np.arange(n_configs))) == _syne_tune_style_portfolio(best), best


@pytest.mark.parametrize("name", ["transfer_screening", "per_task_screening", "portfolio_zero_shot"])
def test_recommend_is_the_first_candidate_then_the_best_observed(name):
    problem = toy_problem(DISAGREEING, n_epochs=3)
    method = make_method(name, {"screen_epochs": 1})
    method.setup(problem)
    assert method.recommend() == method.candidates[0]
    grid = np.tile([0.1, 0.2, 0.3], (6, 1))
    grid[method.candidates[1]] = [0.9, 0.9, 0.9]
    for _ in range(2):
        config = method.ask()
        method.tell(config, method.trained_epochs(config) + 1, grid[config, method.trained_epochs(config)])
    assert method.recommend() == method.candidates[1]


@pytest.mark.parametrize("params, message", [
    ({"k": 0}, "k must be an integer >= 1"),
    ({"screen_epochs": 0}, "screen_epochs must be an integer >= 1"),
    ({"eta": 1}, "eta must be an integer >= 2"),
    ({"k": 2.5}, "k must be an integer"),
    ({"k": "3"}, "k must be an integer"),
    ({"screen_epochs": float("nan")}, "screen_epochs must be an integer"),
    ({"eta": float("inf")}, "eta must be an integer"),
])
def test_bad_settings_fail_in_one_line(params, message):
    for name in ("transfer_screening", "per_task_screening", "portfolio_zero_shot"):
        with pytest.raises(ConfigurationError, match=message):
            make_method(name, params)


def test_defaults_on_a_hyperrec_pair_screen_three_for_five_epochs_then_train_the_leader_to_75(hyperrec):
    from transfertune.methods.runner import build_episodes

    episode = build_episodes(hyperrec, {"transfer_screening": {}}, [hyperrec.pairs[0]], 1, 100, 0)[0]
    frame = run_episode(episode)
    zero_shot = make_method("zero_shot")
    zero_shot.setup(episode.problem)
    top3 = [int(episode.problem.config_ids[i]) for i in zero_shot.order[:3]]
    assert list(frame.config_id[:15]) == [c for c in top3 for _ in range(5)] and list(frame.epoch[:15]) == [1, 2, 3, 4, 5] * 3
    at5 = frame[:15][frame.epoch[:15] == 5].set_index("config_id").value
    leader = at5.idxmax()
    assert list(frame.config_id[15:85]) == [leader] * 70 and list(frame.epoch[15:85]) == list(range(6, 76))
    runner_up = at5.drop(leader).idxmax()
    assert list(frame.config_id[85:]) == [runner_up] * 15 and list(frame.epoch[85:]) == list(range(6, 21))
