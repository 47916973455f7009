"""Hyperband's bracket schedule and its sequential execution; BOHB's TPE proposals."""

import numpy as np

from transfertune.methods.baselines.hyperband import Rung, _config_params, _encode_params, hyperband_brackets
from transfertune.methods.registry import make_method


def _sizes_budgets(brackets):
    return [[(r.size, r.budget) for r in b] for b in brackets]


def test_brackets_reproduce_li_et_al_table_for_r81_eta3():
    # Li et al. (2017), Table 1: R = 81, eta = 3
    assert _sizes_budgets(hyperband_brackets(81, 3)) == [
        [(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)],
        [(34, 3), (11, 9), (3, 27), (1, 81)],
        [(15, 9), (5, 27), (1, 81)],
        [(8, 27), (2, 81)],
        [(5, 81)],
    ]


def test_brackets_on_hyperrec_epochs_and_edge_cases():
    assert _sizes_budgets(hyperband_brackets(75, 3)) == [
        [(27, 3), (9, 8), (3, 25), (1, 75)],
        [(12, 8), (4, 25), (1, 75)],
        [(6, 25), (2, 75)],
        [(4, 75)],
    ]
    assert _sizes_budgets(hyperband_brackets(6, 3)) == [[(3, 2), (1, 6)], [(2, 6)]]
    assert hyperband_brackets(1, 3) == [[Rung(1, 1)]]
    assert _sizes_budgets(hyperband_brackets(81, 3, min_epochs=9))[0] == [(9, 9), (3, 27), (1, 81)]


def _play(method, grid, n):
    asked = []
    for _ in range(n):
        config = method.ask()
        epoch = method.trained_epochs(config) + 1
        method.tell(config, epoch, grid[config, epoch - 1])
        asked.append((config, epoch))
    return asked


def test_sequential_hyperband_trains_rungs_epoch_by_epoch_and_promotes_the_best(tiny):
    problem, grid = tiny(budget=30)
    method = make_method("hyperband")
    method.setup(problem)
    asked = _play(method, grid, 6 + 4 + 12)
    # bracket s=1: three new configs to 2 epochs each, one after the other
    first = [c for c, _ in asked[:6]]
    assert [e for _, e in asked[:6]] == [1, 2] * 3 and len(set(first)) == 3
    rung0 = list(dict.fromkeys(first))
    best = max(rung0, key=lambda c: grid[c, 1])
    # then the best of them by its epoch-2 value resumes at epoch 3 up to 6
    assert asked[6:10] == [(best, e) for e in range(3, 7)]
    # bracket s=0: two more new configs straight to 6 epochs
    new = [c for c, _ in asked[10:22]]
    assert [e for _, e in asked[10:22]] == list(range(1, 7)) * 2 and not set(new) & set(rung0)
    assert [(b, r) for b, r, _ in method.history] == [(0, 0), (0, 1), (1, 0)]
    _play(method, grid, 1)  # the next query starts bracket s=1 again
    assert method.history[-1][:2] == (2, 0)


def test_tpe_parameters_round_trip_to_the_encoding(tiny):
    problem, _ = tiny()
    for i in range(problem.n_configs):
        np.testing.assert_allclose(_encode_params(problem, _config_params(problem, i)), problem.X[i], atol=1e-6)


def test_bohb_switches_to_the_tpe_model_once_a_budget_has_enough_points(tiny):
    problem, grid = tiny(budget=30)
    method = make_method("bohb", {"random_fraction": 0.0, "min_points_in_model": 3})
    method.setup(problem)
    _play(method, grid, 22)
    budgets = method.model_budgets
    # 3 configs reach epoch 2 only after the first bracket's rung 0: earlier proposals are random
    assert budgets[:3] == [None, None, None] and budgets[3] == 2
    assert len(budgets) == 5
