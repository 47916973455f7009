"""Every baseline of issue 4 and the practitioner baselines of issue 19 on the tiny problem: protocol, determinism, registry, bad settings."""

import numpy as np
import pytest

from transfertune.errors import ConfigurationError
from transfertune.methods.registry import available_methods, make_method
from transfertune.methods.runner import RESULT_COLUMNS, run_episode

BASELINES = ["gp_ucb", "gp_ei", "box_bo", "rgpe", "ablr", "ablr_hb", "hyperband", "bohb", "transfer_screening", "per_task_screening", "portfolio_zero_shot"]
# small settings so the offline parts stay fast on the tiny problem
GP = {"full_refits": 2, "maxiter": 20}
FAST = {
    "gp_ucb": GP,
    "gp_ei": GP,
    "box_bo": GP,
    "rgpe": {"n_samples": 64, "base_maxiter": 30, **GP},
    "ablr": {"steps": 60},
    "ablr_hb": {"steps": 60},
    "bohb": {"min_points_in_model": 4},
}


def test_every_baseline_is_registered():
    assert set(BASELINES) <= set(available_methods())
    assert {"random_search", "zero_shot"} <= set(available_methods())  # the floor baselines stay


@pytest.mark.parametrize("name", BASELINES)
def test_episode_respects_the_protocol_and_is_deterministic(tiny_episode, name):
    episode = tiny_episode(name, FAST.get(name), budget=30)
    frame = run_episode(episode)
    assert list(frame.columns) == RESULT_COLUMNS and list(frame.q) == list(range(1, 31))
    ids = set(episode.problem.config_ids.tolist())
    assert set(frame.config_id) <= ids and set(frame.recommended_config_id) <= ids
    for _, group in frame.groupby("config_id"):  # each config's epochs were queried 1, 2, 3, ... in order
        assert list(group.epoch) == list(range(1, len(group) + 1))
    assert (np.diff(frame.regret) <= 1e-12).all() and (frame.regret >= 0).all()
    again = run_episode(tiny_episode(name, FAST.get(name), budget=30))
    assert frame.drop(columns="wall_time_s").equals(again.drop(columns="wall_time_s"))


@pytest.mark.parametrize("name", ["gp_ucb", "hyperband", "bohb"])
def test_the_seed_changes_the_random_parts(tiny_episode, name):
    runs = [run_episode(tiny_episode(name, FAST.get(name), seed=s, budget=8)) for s in range(4)]
    assert len({tuple(r.config_id) for r in runs}) > 1


@pytest.mark.parametrize(
    "name, params, message",
    [
        ("gp_ucb", {"eta": -1}, "eta must be non-negative"),
        ("gp_ucb", {"refit_every": 0}, "refit_every"),
        ("box_bo", {"top_k": 0}, "top_k"),
        ("rgpe", {"dilution_percentile": 120}, "dilution_percentile"),
        ("hyperband", {"eta": 1}, "eta must be an integer >= 2"),
        ("bohb", {"random_fraction": 2.0}, "random_fraction"),
        ("ablr", {"prior_mean": "other"}, "prior_mean"),
        ("ablr_hb", {"ucb_eta": -0.5}, "ucb_eta"),
        ("ablr", {"speed": 3}, "bad parameters"),
    ],
)
def test_bad_settings_fail_when_the_method_is_made(name, params, message):
    with pytest.raises(ConfigurationError, match=message):
        make_method(name, params)
