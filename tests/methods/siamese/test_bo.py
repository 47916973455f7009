"""Algorithm 2: the prior-mean interpolant, the custom GPyTorch mean on the standardised scale,
the neighbours' initial configs and the searcher through the trial protocol."""

import numpy as np
import pytest
import torch

from transfertune.core.spaces import SearchSpace
from transfertune.errors import ConfigurationError
from transfertune.methods.base import TransferProblem
from transfertune.methods.protocol import SearchProblem
from transfertune.methods.registry import make_searcher
from transfertune.methods.siamese.bo import MappingPriorMean, RBFInterpolant, SiameseBO, default_lengthscale, fit_gp, neighbour_best_configs

SPACE = SearchSpace.from_dict({"name": "two", "hyperparameters": [
    {"name": "batch_size", "type": "integer", "lower": 8, "upper": 256, "log": True},
    {"name": "lr", "type": "float", "lower": 1e-4, "upper": 1e-1, "log": True}]})


def grid_history(maps: np.ndarray, names: list[str], points: int = 5) -> TransferProblem:
    """A history whose configs are a points x points grid and whose mappings are ``maps (T, n)``."""
    levels = np.linspace(0, 1, points)
    X = np.array([[a, b] for a in levels for b in levels])
    configs = SPACE.decode(X)
    n = len(configs)
    grids = np.repeat(maps[:, :, None], 2, axis=2)  # two recorded epochs, equal
    return TransferProblem(np.arange(n), configs, SPACE.encode(configs), SPACE, 2, tuple(names), grids, "test", np.full(n, 2), 20, 0)


def bowl(x: np.ndarray, centre) -> np.ndarray:
    return 0.9 - ((np.asarray(x) - np.asarray(centre)) ** 2).sum(-1)


def test_interpolant_reproduces_the_recorded_values_and_returns_to_their_mean_far_away():
    rng = np.random.default_rng(0)
    X, v = rng.random((12, 2)), rng.random(12)
    f = RBFInterpolant(X, v)
    np.testing.assert_allclose(f(torch.as_tensor(X)).numpy(), v, atol=1e-4)
    assert float(f(torch.tensor([[50.0, 50.0]]))) == pytest.approx(v.mean())
    x = torch.tensor([[0.3, 0.4]], dtype=torch.float64, requires_grad=True)
    f(x).sum().backward()
    assert torch.isfinite(x.grad).all()
    grid = np.array([[a, b] for a in (0, 0.5, 1) for b in (0, 0.5, 1)])
    assert default_lengthscale(grid) == pytest.approx(0.5)
    with pytest.raises(ConfigurationError):
        RBFInterpolant(X[:1], np.array([np.nan]))


def test_prior_mean_is_on_the_standardised_outcome_scale():
    X = np.array([[a, b] for a in np.linspace(0, 1, 5) for b in np.linspace(0, 1, 5)])
    prior = RBFInterpolant(X, bowl(X, (0.3, 0.7)))
    mean = MappingPriorMean(prior)
    mean.match_outcome_scale(torch.tensor(0.5), torch.tensor(0.2))
    x = torch.rand(7, 2, dtype=torch.float64)
    torch.testing.assert_close(mean(x), (prior(x) - 0.5) / 0.2)
    # observations that lie on the prior: the posterior mean (in outcome units) is the prior everywhere
    obs = np.array([[0.1, 0.2], [0.8, 0.9], [0.5, 0.4]])
    model = fit_gp(obs, prior(torch.as_tensor(obs)).numpy(), prior, maxiter=20)
    test = torch.as_tensor(np.random.default_rng(1).random((20, 2)))
    with torch.no_grad():
        posterior = model.posterior(test).mean.squeeze(-1)
    torch.testing.assert_close(posterior, prior(test), atol=5e-3, rtol=0)


def test_neighbour_best_configs_take_each_neighbours_best_and_skip_a_taken_one():
    maps = np.array([[0.1, 0.9, 0.5, np.nan], [0.2, 0.95, 0.8, 0.1], [0.3, 0.3, 0.3, 0.99]])
    assert neighbour_best_configs(maps) == [1, 2, 3]
    assert neighbour_best_configs(np.array([[0.5, 0.5], [0.1, 0.1]])) == [0, 1]  # ties: the lower index first


def problem_with(history: TransferProblem, evaluations: int = 6) -> SearchProblem:
    return SearchProblem(SPACE, 2, 2 * evaluations, 0, "test", "value", history)


def run(searcher, problem: SearchProblem, objective, evaluations: int) -> list[tuple[dict, float]]:
    searcher.setup(problem)
    out = []
    for _ in range(evaluations):
        trial = searcher.ask()
        value = float(objective(SPACE.encode([trial.config])[0]))
        for epoch in range(trial.start_epoch + 1, trial.epoch + 1):
            searcher.tell(trial, epoch, value)
        out.append((dict(trial.config), value))
    return out


def test_the_first_k_trials_are_the_neighbours_best_configs_then_bo_proposals():
    rng = np.random.default_rng(0)
    maps = rng.random((4, 25))
    history = grid_history(maps, ["t0", "t1", "t2", "t3"])
    searcher = make_searcher("siamese_bo", {"neighbours": ["t2", "t0"], "num_restarts": 1, "raw_samples": 16, "maxiter": 5})
    trials = run(searcher, problem_with(history), lambda x: bowl(x, (0.5, 0.5)), 4)
    expected = [history.configs[i] for i in neighbour_best_configs(maps[[2, 0]])]
    assert [c for c, _ in trials[:2]] == expected
    assert all(not SPACE.problems(c) for c, _ in trials) and trials[2][0] not in expected
    assert searcher.recommend() == max(trials, key=lambda t: t[1])[0]


def test_random_start_and_bad_settings():
    history = grid_history(np.random.default_rng(0).random((2, 25)), ["a", "b"])
    random_start = SiameseBO(prior_mean=False, n_init=3, num_restarts=1, raw_samples=16, maxiter=5)
    trials = run(random_start, problem_with(history), lambda x: bowl(x, (0.5, 0.5)), 4)
    assert len({tuple(c.values()) for c, _ in trials}) == 4
    with pytest.raises(ConfigurationError, match="prior_mean needs neighbours"):
        SiameseBO(prior_mean=True)
    with pytest.raises(ConfigurationError, match="acquisition"):
        SiameseBO(neighbours=["a"], acquisition="pi")
    with pytest.raises(ConfigurationError, match="prior_mean must be true or false"):
        SiameseBO(neighbours=["a"], prior_mean="false")
    with pytest.raises(ConfigurationError, match=r"neighbours \['zz'\] are not training tasks"):
        SiameseBO(neighbours=["zz"]).setup(problem_with(history))


@pytest.mark.parametrize("acquisition", ["ei", "ucb"])
def test_a_good_prior_finds_the_optimum_sooner_than_a_random_start(acquisition):
    """The neighbours' mappings peak where the test task does: the prior-mean BO's best after 5
    evaluations beats the random start's (same seed) on a bowl."""
    X = np.array([[a, b] for a in np.linspace(0, 1, 5) for b in np.linspace(0, 1, 5)])
    centre = (0.62, 0.38)
    maps = np.stack([bowl(X, (0.6, 0.4)), bowl(X, (0.65, 0.35)), bowl(X, (0.1, 0.9))])
    history = grid_history(maps, ["near1", "near2", "far"])
    options = dict(acquisition=acquisition, num_restarts=2, raw_samples=64, maxiter=20)
    prior = run(SiameseBO(neighbours=["near1", "near2"], prior_mean=True, **options), problem_with(history), lambda x: bowl(x, centre), 5)
    cold = run(SiameseBO(prior_mean=False, n_init=2, **options), problem_with(history), lambda x: bowl(x, centre), 5)
    assert max(v for _, v in prior) > max(v for _, v in cold)
    assert max(v for _, v in prior) > 0.9 - 0.02


def test_landmarks_stand_in_for_meta_features_without_raw_data():
    """Probes first (best mean rank), then the best configs of the k tasks closest at the probes."""
    X = np.array([[a, b] for a in np.linspace(0, 1, 5) for b in np.linspace(0, 1, 5)])
    maps = np.stack([bowl(X, (0.2, 0.2)), bowl(X, (0.25, 0.2)) - 0.3, bowl(X, (0.8, 0.8)), bowl(X, (0.5, 0.5))])
    history = grid_history(maps, ["near", "shifted", "far", "middle"])
    searcher = SiameseBO(neighbours="landmarks", k=2, landmarks=2, num_restarts=1, raw_samples=16, maxiter=5)
    trials = run(searcher, problem_with(history), lambda x: bowl(x, (0.2, 0.2)), 4)
    from transfertune.methods.siamese.bo import best_mean_rank_configs

    probes = best_mean_rank_configs(maps, 2)
    assert [c for c, _ in trials[:2]] == [history.configs[i] for i in probes]
    # the test task equals "near" everywhere, so near and then middle/far/shifted by their gap at the probes
    gaps = np.abs(maps[:, probes] - bowl(X[probes], (0.2, 0.2))).mean(axis=1)
    assert searcher.neighbours == [history.train_tasks[i] for i in np.argsort(gaps, kind="stable")[:2]]
    assert searcher.neighbours[0] == "near" and searcher.prior is not None
    rows = [history.train_tasks.index(n) for n in searcher.neighbours]
    # then the neighbours' best configs that the probes did not take
    assert [c for c, _ in trials[2:4]] == [history.configs[i] for i in neighbour_best_configs(maps[rows], taken=probes)]
    with pytest.raises(ConfigurationError, match="'landmarks' or null"):
        SiameseBO(neighbours="nearest")


def test_best_mean_rank_configs():
    from transfertune.methods.siamese.bo import best_mean_rank_configs

    maps = np.array([[0.1, 0.9, 0.5], [0.2, 0.8, 0.9]])
    assert best_mean_rank_configs(maps, 2) == [1, 2]
    assert neighbour_best_configs(maps, taken=[1]) == [2, 0]


def test_proposals_do_not_depend_on_the_global_torch_rng():
    """A resumed run loads its trials instead of training them, and training re-seeds torch's
    global generator: the proposals must be the same either way, or the store no longer matches."""
    rng = np.random.default_rng(0)
    history = grid_history(rng.random((3, 25)), ["a", "b", "c"])

    def proposals(global_seed: int) -> list[dict]:
        searcher = make_searcher("siamese_bo", {"neighbours": ["a", "b"], "num_restarts": 2, "raw_samples": 16, "maxiter": 5})
        searcher.setup(problem_with(history, evaluations=5))
        out = []
        for i in range(5):
            torch.manual_seed(global_seed + i)  # what a trained (or a loaded) trial leaves behind
            trial = searcher.ask()
            out.append(dict(trial.config))
            for epoch in range(trial.start_epoch + 1, trial.epoch + 1):
                searcher.tell(trial, epoch, float(bowl(SPACE.encode([trial.config])[0], (0.3, 0.7))))
        return out

    assert proposals(0) == proposals(1000)
