"""TabularObjective answering trials: recorded configs, snapping off-pool configs, refusing them."""

import numpy as np
import pytest

from transfertune.core.objectives import BudgetExhausted, InvalidQuery, TabularObjective
from transfertune.core.spaces import SearchSpace
from transfertune.core.trials import Trial

SPACE = SearchSpace.from_dict({
    "name": "two",
    "hyperparameters": [
        {"name": "lr", "type": "float", "lower": 1e-3, "upper": 1.0, "log": True},
        {"name": "opt", "type": "categorical", "choices": ["adam", "sgd"]},
    ],
})
CONFIGS = [{"lr": 0.001, "opt": "adam"}, {"lr": 0.1, "opt": "sgd"}, {"lr": 1.0, "opt": "adam"}]
GRID = np.array([[0.1, 0.2, 0.3], [0.5, 0.4, 0.45], [0.2, np.nan, np.nan]])


def objective(off_pool="refuse", budget=10):
    return TabularObjective(GRID, budget=budget, configs=CONFIGS, space=SPACE, off_pool=off_pool)


def test_a_recorded_config_is_answered_from_its_row_epoch_by_epoch():
    obj = objective()
    assert obj.evaluate(Trial(0, {"opt": "sgd", "lr": 0.1}, 2)) == [(1, 0.5), (2, 0.4)]  # key order does not matter
    assert obj.evaluate(Trial(0, CONFIGS[1], 3, start_epoch=2)) == [(3, 0.45)]
    assert obj.trial_row(0) == 1 and obj.n_queries == 3 and obj.snaps == {}
    # a new trial of the same config is a new training run: it replays the row from epoch 1
    assert obj.evaluate(Trial(1, CONFIGS[1], 1)) == [(1, 0.5)]
    with pytest.raises(InvalidQuery, match="starts at epoch 1, but 3 epoch"):
        obj.evaluate(Trial(0, CONFIGS[1], 3, start_epoch=0))
    with pytest.raises(InvalidQuery, match="has 1 recorded epochs; epoch 2 is past its end"):
        obj.evaluate(Trial(2, CONFIGS[2], 2))


def test_the_pool_index_is_checked_against_its_config():
    obj = objective()
    assert obj.evaluate(Trial(0, CONFIGS[0], 1, pool_index=0)) == [(1, 0.1)]
    with pytest.raises(InvalidQuery, match="is not recorded config 2"):
        obj.evaluate(Trial(1, CONFIGS[0], 1, pool_index=2))


def test_an_off_pool_config_snaps_to_the_nearest_in_the_unit_cube_encoding():
    obj = objective("nearest")
    config = {"lr": 0.05, "opt": "sgd"}
    assert obj.evaluate(Trial(4, config, 1)) == [(1, 0.5)]
    # lr encodes as log(lr/1e-3)/log(1000); same one-hot as row 1, so the distance is the lr gap alone
    expected = abs(np.log(0.05 / 1e-3) - np.log(0.1 / 1e-3)) / np.log(1000)
    assert obj.snaps == {4: (1, pytest.approx(expected))} and obj.snap_distance(4) == pytest.approx(expected)
    # another categorical choice costs sqrt(2): row 2 has lr 1.0 but adam, row 1 is a third of the lr axis away
    assert obj.locate({"lr": 1.0, "opt": "sgd"}) == (1, pytest.approx(1 / 3))
    assert obj.locate({"lr": 0.0011, "opt": "adam"}) == (0, pytest.approx(np.log(1.1) / np.log(1000)))


def test_refusing_off_pool_configs_names_the_nearest_and_charges_nothing():
    obj = objective("refuse")
    with pytest.raises(InvalidQuery, match=r"not one of the 3 recorded configs \(nearest: row 1 at unit-cube distance 0\.1003\); set off_pool='nearest'"):
        obj.evaluate(Trial(0, {"lr": 0.05, "opt": "sgd"}, 1))
    assert obj.n_queries == 0 and obj.snaps == {}


@pytest.mark.parametrize(
    "config, message",
    [({"lr": 5.0, "opt": "adam"}, "'lr'=5.0 is outside"), ({"opt": "adam"}, "'lr' \\(key 'lr'\\) is missing"), ({"lr": 0.1, "opt": "rmsprop"}, "'opt'='rmsprop' is not one of")],
)
def test_a_config_outside_the_space_is_refused_in_either_mode(config, message):
    for mode in ("refuse", "nearest"):
        with pytest.raises(InvalidQuery, match=f"config outside the space 'two': {message}"):
            objective(mode).evaluate(Trial(0, config, 1))


def test_the_budget_stops_a_long_trial_after_charging_what_fit():
    obj = objective(budget=2)
    with pytest.raises(BudgetExhausted):
        obj.evaluate(Trial(0, CONFIGS[0], 3))
    assert [q.epoch for q in obj.history] == [1, 2]


def test_bad_off_pool_setting():
    with pytest.raises(Exception, match="off_pool must be one of"):
        objective("closest")
