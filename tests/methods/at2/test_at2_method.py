"""AT2 as a method on the protocol: exact and SVGP inference, on a small synthetic database."""

import numpy as np
import pytest

from transfertune.core.catalog import ObservationCatalog
from transfertune.errors import ConfigurationError
from transfertune.methods.registry import make_method
from transfertune.methods.runner import build_episodes, run_episodes


@pytest.fixture
def catalog(synthetic_db):
    return ObservationCatalog.load(synthetic_db, synthetic_db / "space.yml", "val_acc")


def test_at2_exact_runs_the_protocol_and_beats_random_on_average(catalog):
    methods = {"at2": {"fit_steps": 30, "device": "cpu"}, "random_search": {}}
    results = run_episodes(build_episodes(catalog, methods, catalog.pairs, 2, 24, 0), show_progress=False)
    at2 = results[results.method == "at2"]
    assert len(at2) == 2 * 2 * 24
    # epochs of each config are queried in order
    for _, episode in at2.groupby(["pair", "repetition"]):
        for _, trial in episode.groupby("config_id"):
            assert list(trial.epoch) == list(range(1, len(trial) + 1))
    final = results[results.q == 24].groupby("method")["regret"].mean()
    assert final["at2"] <= final["random_search"]


def test_at2_is_deterministic_for_a_seed(catalog):
    methods = {"at2": {"fit_steps": 10, "device": "cpu"}}
    a = run_episodes(build_episodes(catalog, methods, catalog.pairs[:1], 1, 10, 3), show_progress=False)
    b = run_episodes(build_episodes(catalog, methods, catalog.pairs[:1], 1, 10, 3), show_progress=False)
    assert a.drop(columns="wall_time_s").equals(b.drop(columns="wall_time_s"))


@pytest.mark.parametrize("task_kernel", ["mtbo", "deep_poly"])
def test_other_task_kernels_run(catalog, task_kernel):
    methods = {"at2": {"task_kernel": task_kernel, "config_kernel": "tree", "fidelity_kernel": "matern", "fit_steps": 5}}
    results = run_episodes(build_episodes(catalog, methods, catalog.pairs[:1], 1, 6, 0), show_progress=False)
    assert np.isfinite(results.regret).all()


def test_svgp_inference_runs(catalog):
    methods = {"at2": {"inference": "svgp", "svgp": {"inducing_points": 32, "epochs": 2, "batch_size": 256, "online_steps": 1}}}
    results = run_episodes(build_episodes(catalog, methods, catalog.pairs[:1], 1, 6, 0), show_progress=False)
    assert len(results) == 6 and np.isfinite(results.regret).all()


def test_bad_settings_are_clear():
    with pytest.raises(ConfigurationError, match="task_kernel='optiland2' is not one of"):
        make_method("at2", {"task_kernel": "optiland2"})
    with pytest.raises(ConfigurationError, match="inference='cg'"):
        make_method("at2", {"inference": "cg"})
    with pytest.raises(ConfigurationError, match="weight_var must be >= 0"):
        make_method("at2", {"weight_var": -0.1})
    with pytest.raises(ConfigurationError, match="curve_var must be >= 0"):
        make_method("at2", {"curve_var": -0.1})


def _fitted_at2(catalog, **params):
    from transfertune.methods.runner import make_problem

    problem, grid = make_problem(catalog, catalog.pairs[0], budget=10, seed=0)
    method = make_method("at2", {"fit_steps": 10, "device": "cpu", **params})
    method.setup(problem)
    return method, grid


def test_test_task_starts_at_the_average_of_the_fitted_training_means(catalog):
    method, _ = _fitted_at2(catalog)
    means = method.model.model.means.detach()
    assert float(means[-1]) == pytest.approx(float(means[:-1].mean()))


def test_in_sample_recommendation_picks_among_queried_cells(catalog):
    method, grid = _fitted_at2(catalog, recommend_from="observed")
    assert method.recommend() == int(np.argmax(method.mean.max(axis=1)))  # nothing queried yet
    ranking = np.argsort(-method.mean.max(axis=1))
    queried = int(ranking[-1])  # the config the model likes least
    method.tell(queried, 1, float(grid[queried, 0]))
    assert method.recommend() == queried
    with pytest.raises(ConfigurationError, match="recommend_from"):
        make_method("at2", {"recommend_from": "best"})
    with pytest.raises(ConfigurationError, match="switch_margin"):
        make_method("at2", {"switch_margin": -1})
    with pytest.raises(ConfigurationError, match="min_novelty"):
        make_method("at2", {"min_novelty": "leave-one-out"})
    with pytest.raises(ConfigurationError, match="min_novelty"):
        make_method("at2", {"min_novelty": 1.0})


def test_best_value_recommendation_is_the_best_observed_config(catalog):
    method, grid = _fitted_at2(catalog, recommend_from="best_value")
    assert method.recommend() == int(np.argmax(method.mean.max(axis=1)))  # nothing queried yet
    a, b = (int(i) for i in np.argsort(-method.mean.max(axis=1))[:2])
    method.tell(a, 1, 0.2)
    method.tell(b, 1, 0.3)
    assert method.recommend() == b  # the posterior may still prefer a; the observed value decides


def test_warmup_queries_the_first_epochs_of_the_top_configs_breadth_first(catalog):
    method, grid = _fitted_at2(catalog, warmup_configs=3, warmup_epochs=2)
    top = [int(i) for i in np.argsort(-(method.mean + method.eta * method.std).max(axis=1), kind="stable")[:3]]
    asked = []
    for _ in range(6):
        config = method.ask()
        asked.append(config)
        method.tell(config, method.trained_epochs(config) + 1, float(grid[config, method.trained_epochs(config)]))
    assert asked == top + top  # epoch 1 of each, then epoch 2 of each
    with pytest.raises(ConfigurationError, match="warmup"):
        make_method("at2", {"warmup_epochs": 0})


def test_defer_switch_keeps_the_last_config_until_the_new_pick_must_start(catalog):
    method, grid = _fitted_at2(catalog, defer_switch=True, switch_margin=0.0)  # budget 10
    E = method.mean.shape[1]
    method.mean = np.zeros_like(method.mean)
    method.std = np.zeros_like(method.std)
    method.mean[0] = 0.5  # the config queried last, flat
    method.mean[1, :] = np.minimum(np.arange(1, E + 1), 4) / 4 * 0.9  # better, peaks at epoch 4
    method.curves[0] = [0.5] * 5  # 5 queries left
    method._last_config = 0
    assert method.ask() == 0  # 5 left, 4 needed: one more epoch of config 0 first
    method.curves[0].append(0.5)  # 4 left
    assert method.ask() == 1  # now or never
    method.curves[0].pop()
    method.mean[1, :] = 0.9  # a pick whose first epoch already beats the last config: no reason to wait
    assert method.ask() == 1
    method.mean[1, :] = np.minimum(np.arange(1, E + 1), 4) / 4 * 0.9
    method.defer_switch = False
    assert method.ask() == 1  # without deferral the argmax switches at once


def test_anytime_defer_rule_keeps_a_config_whose_sunk_epochs_outweigh_a_late_gain(catalog):
    method, grid = _fitted_at2(catalog, defer_switch=True, switch_margin=0.0, defer_rule="anytime")  # budget 10
    E = method.mean.shape[1]
    method.mean = np.zeros_like(method.mean)
    method.std = np.zeros_like(method.std)
    method.mean[0] = 0.5  # the config queried last, at its plateau
    method.mean[1, :] = np.minimum(np.arange(1, E + 1), 4) / 4 * 0.6  # better, but only from epoch 4
    method.curves[0] = [0.5] * 5  # 5 queries left
    method._last_config = 0
    # starting the pick now gains 0.1 for the last 2 of the 5 queries (0.04 on average); after
    # one more epoch of the flat last config only for the last query: it starts at once
    assert method.ask() == 1
    # the pick peaks higher (0.6 at epoch 5) but only at the last query left, while the last
    # config's next epoch is forecast at 0.55: 0.55 on average over the 5 queries against 0.52
    method.mean[1, :] = np.minimum(np.arange(1, E + 1), 5) / 5 * 0.6
    method.mean[0, 5:] = 0.55
    assert method.ask() == 0
    method.defer_rule = "reach_peak"
    assert method.ask() == 1  # the default rule: the pick needs all 5 queries to reach its peak, so now
    with pytest.raises(ConfigurationError, match="defer_rule"):
        make_method("at2", {"defer_rule": "later"})


def test_standardised_tasks_make_the_model_equivariant_to_a_change_of_units(catalog):
    """With per-task standardisation, a common affine change of units of every value (training
    grids and test observations) moves the test-task posterior by the same map, exactly."""
    import torch

    from transfertune.methods.at2.model import ExactAT2, KernelChoice
    from transfertune.methods.runner import make_problem

    problem, grid = make_problem(catalog, catalog.pairs[0], budget=10, seed=0)

    def posterior(scale, shift):
        torch.manual_seed(0)
        model = ExactAT2(KernelChoice(), problem.space, problem.X, problem.train_grids * scale + shift,
                         fit_steps=5, standardize_tasks=True)
        for c, e in ((0, 1), (0, 2), (3, 1)):
            model.observe(c, e, float(grid[c, e - 1]) * scale + shift)
        return model.predict(), model.noise_std

    (mean, std), noise = posterior(1.0, 0.0)
    (mean2, std2), noise2 = posterior(7.0, -3.0)
    np.testing.assert_allclose(mean2, 7.0 * mean - 3.0, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(std2, 7.0 * std, rtol=1e-6, atol=1e-8)
    assert noise2 == pytest.approx(7.0 * noise)


def _exact_model(problem, **kwargs):
    import torch

    from transfertune.methods.at2.model import ExactAT2, KernelChoice

    torch.manual_seed(0)
    return ExactAT2(KernelChoice(), problem.space, problem.X, problem.train_grids, fit_steps=5, **kwargs)


def test_observe_many_is_the_same_posterior_as_one_observation_at_a_time(catalog):
    from transfertune.methods.runner import make_problem

    problem, grid = make_problem(catalog, catalog.pairs[0], budget=10, seed=0)
    cells = [(0, 1), (0, 2), (3, 1), (5, 1)]
    one_by_one = _exact_model(problem, online_steps=0)
    for c, e in cells:
        one_by_one.observe(c, e, float(grid[c, e - 1]))
    at_once = _exact_model(problem, online_steps=0)
    at_once.observe_many([c for c, _ in cells], [e for _, e in cells], [float(grid[c, e - 1]) for c, e in cells], refit_steps=0)
    for a, b in zip(one_by_one.predict(), at_once.predict()):
        np.testing.assert_allclose(a, b, rtol=1e-10)


def test_test_scale_learns_a_smaller_amplitude_for_a_flatter_test_task(catalog):
    """A test task whose values vary a fifth as much as a training task's: the learned amplitude
    of its row of K_T shrinks below 1; without the option it stays at 1."""
    from transfertune.methods.runner import make_problem

    problem, _ = make_problem(catalog, catalog.pairs[0], budget=10, seed=0)
    source = problem.train_grids[0]
    flat = source.mean() + 0.2 * (source - source.mean())
    rng = np.random.default_rng(0)
    cells = np.argwhere(np.ones_like(flat, dtype=bool))[rng.choice(flat.size, 40, replace=False)]
    scales = {}
    for option in (True, False):
        model = _exact_model(problem, test_scale=option, online_lr=0.05)
        model.observe_many(cells[:, 0], cells[:, 1] + 1, flat[cells[:, 0], cells[:, 1]], refit_steps=100)
        scales[option] = float(model.log_test_scale.exp())
    assert scales[True] < 0.8 and scales[False] == 1.0
