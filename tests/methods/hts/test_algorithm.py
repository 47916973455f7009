"""Algorithm 1: the checks of m and of the spaces, the order of its steps, the mapping's effect."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from tests.methods.hts.conftest import SOURCE_OPTIMUM, TARGET_OPTIMUM, quadratic
from transfertune.core.spaces import SearchSpace
from transfertune.errors import ConfigurationError
from transfertune.methods.hts.algorithm import HTS, check_initial_size, check_same_space, hts, initial_size_range


@pytest.fixture(scope="module")
def source(cnn_space):
    configs = cnn_space.sample(40, seed=1)
    f_source = quadratic(cnn_space, SOURCE_OPTIMUM)
    return configs, np.array([f_source(c) for c in configs])


def test_m_must_lie_in_k_2k_and_fit_the_rbf(cnn_space, hyperrec_space):
    assert initial_size_range(cnn_space) == (9, 16)  # k = 8: [k, 2k], but S_T needs d + 1 = 9
    assert check_initial_size(cnn_space, None) == 9 and check_initial_size(cnn_space, 16) == 16
    with pytest.raises(ConfigurationError, match=r"^HTS m = 7 is outside \[k, 2k\] = \[8, 16\] for the k = 8 hyperparameters"):
        check_initial_size(cnn_space, 7)
    with pytest.raises(ConfigurationError, match=r"m = 17 is outside \[k, 2k\] = \[8, 16\]"):
        check_initial_size(cnn_space, 17)
    with pytest.raises(ConfigurationError, match=r"^HTS m = 8: S_T .* needs d \+ 1 = 9; use m in \[9, 16\]$"):
        check_initial_size(cnn_space, 8)
    with pytest.raises(ConfigurationError, match="must be an integer"):
        check_initial_size(cnn_space, 9.0)
    assert initial_size_range(hyperrec_space) == (21, 36)  # k = 18 hyperparameters, d = 20 tail coordinates
    with pytest.raises(ConfigurationError, match=r"m = 18: .* d \+ 1 = 21"):
        check_initial_size(hyperrec_space, 18)


def test_a_target_space_with_other_hyperparameters_is_refused(cnn_space):
    spec = {"name": "other", "hyperparameters": [dataclasses.asdict(h) | {"choices": None} for h in cnn_space.hyperparameters]}
    for hp in spec["hyperparameters"]:
        for key in ("choices", "parent", "parent_values", "key"):
            hp.pop(key)
    renamed = {**spec, "hyperparameters": [{**hp, "name": "learning_rate"} if hp["name"] == "lr" else hp for hp in spec["hyperparameters"]]}
    with pytest.raises(ConfigurationError, match=r"^HTS maps configs between one space: .*source only \['lr'\]; target only \['learning_rate'\]"):
        check_same_space(cnn_space, SearchSpace.from_dict(renamed))
    wider = {**spec, "hyperparameters": [{**hp, "upper": 0.9} if hp["name"] == "lr" else hp for hp in spec["hyperparameters"]]}
    with pytest.raises(ConfigurationError, match=r"'lr': float \[0.01, 0.4\] vs float \[0.01, 0.9\]"):
        check_same_space(cnn_space, SearchSpace.from_dict(wider))
    check_same_space(cnn_space, SearchSpace.from_dict(spec))  # same hyperparameters, another name: fine


def test_too_few_source_observations_are_one_line(cnn_space, source):
    configs, errors = source
    with pytest.raises(ConfigurationError, match=r"^HTS source observations \(Omega_S\): 6 observation\(s\).*d \+ 1 = 9"):
        HTS(cnn_space, configs[:6], errors[:6])


def test_bad_options_are_one_line(cnn_space, source):
    for options, text in (({"r": 0}, "r must be an integer >= 1"), ({"n_random": -1}, "n_random must be"), ({"n_rank_samples": 1}, "n_rank_samples")):
        with pytest.raises(ConfigurationError, match=text):
            HTS(cnn_space, *source, **options)


def test_algorithm_1_steps_and_the_mapping_moves_to_the_target_optimum(cnn_space, source):
    """Source optimum at 0.3 everywhere, target optimum elsewhere: g maps the source's best
    configs near the target's optimum, far better than the Latin hypercube and than evaluating
    the source's best configs as they are (the paper's "linear")."""
    f_target = quadratic(cnn_space, TARGET_OPTIMUM)
    result = hts(cnn_space, *source, f_target, t_max=24, n_rank_samples=3000, seed=0)
    kinds = [o.kind for o in result.omega_t]
    assert kinds == ["lhs"] * 9 + ["mapped"] * 15  # m samples, then rounds of r = 5
    assert len(result.fits) == 3 and all(f.converged for f in result.fits)
    errors = np.array([o.error for o in result.omega_t])
    # round 1 follows an S_T fitted on 9 points (the linear tail alone); from round 2 on g lands
    # near the target's optimum (errors of 0.3-2 in the design, <= 0.03 there; seeds 0-2 alike)
    assert errors[14:19].min() < 0.25 * errors[:9].min()
    assert errors[9:].min() < 0.05
    linear = sorted(f_target(c) for c in np.array(source[0])[np.argsort(source[1])[:5]])
    assert errors[9:].min() < 0.1 * linear[0]
    mapped = cnn_space.encode([o.config for o in result.omega_t[-5:]])
    assert np.linalg.norm(mapped.mean(axis=0) - TARGET_OPTIMUM) < np.linalg.norm(mapped.mean(axis=0) - SOURCE_OPTIMUM)
    # g is the latest network: it maps the best source config to the last round's first config
    best_source = np.array(source[0])[np.argsort(source[1])[0]]
    again = HTS(cnn_space, *source, n_rank_samples=3000, seed=0)
    again.g = result.g
    mapped_best, last_round = again.map([best_source])[0], result.omega_t[-5].config
    assert mapped_best.keys() == last_round.keys()
    assert all(mapped_best[k] == pytest.approx(last_round[k], rel=1e-5) for k in mapped_best)  # float32 batches round apart


def test_random_source_configs_join_each_round(cnn_space, source):
    f_target = quadratic(cnn_space, TARGET_OPTIMUM)
    result = hts(cnn_space, *source, f_target, t_max=9 + 2 * 7, r=5, n_random=2, n_rank_samples=500, seed=1)
    kinds = [o.kind for o in result.omega_t]
    assert kinds[9:] == (["mapped"] * 5 + ["random"] * 2) * 2


def test_a_collapsed_g_proposes_distinct_points(cnn_space, source):
    run = HTS(cnn_space, *source, r=5, n_random=1, n_rank_samples=200, seed=2)
    f_target = quadratic(cnn_space, TARGET_OPTIMUM)
    for config in run.initial_design():
        run.observe(config, f_target(config), "lhs")
    run.fit_transfer()
    with torch.no_grad():  # g maps everything to one point
        for p in run.g.parameters():
            p.zero_()
    proposed = run.propose()
    assert [k for _, k in proposed] == ["mapped", "fill", "fill", "fill", "fill", "fill"]
    X = np.vstack([run.target_observations()[0], cnn_space.encode([c for c, _ in proposed])])
    distances = np.linalg.norm(X[:, None] - X[None], axis=-1) + np.eye(len(X))
    assert distances.min() > run.dtol


def test_the_run_follows_its_seed(cnn_space, source):
    f_target = quadratic(cnn_space, TARGET_OPTIMUM)
    a = hts(cnn_space, *source, f_target, t_max=14, n_rank_samples=300, seed=4)
    b = hts(cnn_space, *source, f_target, t_max=14, n_rank_samples=300, seed=4)
    c = hts(cnn_space, *source, f_target, t_max=14, n_rank_samples=300, seed=5)
    assert [o.config for o in a.omega_t] == [o.config for o in b.omega_t]
    assert [o.config for o in a.omega_t] != [o.config for o in c.omega_t]


def test_t_max_within_the_design_trains_no_g(cnn_space, source):
    result = hts(cnn_space, *source, quadratic(cnn_space, TARGET_OPTIMUM), t_max=5, n_rank_samples=100)
    assert len(result.omega_t) == 5 and result.g is None
