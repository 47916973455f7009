"""Config sampling: random, Latin hypercube and explicit lists stay inside the space."""

import numpy as np
import pytest

from tests.conftest import ROOT
from transfertune.core.spaces import SearchSpace
from transfertune.errors import ConfigurationError
from transfertune.training.sampling import configs_to_records, latin_hypercube, sample_configs

SPACES = ["hts_cnn", "metahpo_cnn", "resnet", "mlp"]


def space(name: str) -> SearchSpace:
    return SearchSpace.from_yaml(ROOT / "conf" / "base" / "spaces" / f"{name}.yml")


@pytest.mark.parametrize("name", SPACES)
@pytest.mark.parametrize("method", ["random", "lhs"])
def test_sampled_configs_are_members_of_the_space(name, method):
    s = space(name)
    configs = sample_configs(s, method, 12, seed=3)
    assert 10 <= len(configs) <= 12  # integer-only spaces may decode two points to one config
    for c in configs:
        assert s.problems(c) == [], c
        assert set(c) == set(s.names)
    assert configs == sample_configs(s, method, 12, seed=3)
    assert configs != sample_configs(s, method, 12, seed=4)


def test_seed_001_and_003_ranges():
    hts = space("hts_cnn")
    assert len(hts.names) == 8
    assert (hts["lr"].lower, hts["lr"].upper, hts["momentum"].lower, hts["momentum"].upper) == (0.01, 0.40, 0.60, 0.99)
    assert (hts["fc1_units"].lower, hts["fc1_units"].upper, hts["dropout4"].upper) == (100, 500, 0.8)
    meta = space("metahpo_cnn")
    assert (meta["batch_size"].lower, meta["batch_size"].upper, meta["lr"].lower, meta["lr"].upper) == (128, 512, 1e-6, 1e-1)
    assert [(meta[f"conv{i}_channels"].lower, meta[f"conv{i}_channels"].upper) for i in (1, 2, 3)] == [(32, 64), (64, 128), (128, 256)]


def test_latin_hypercube_hits_every_stratum_once():
    s = space("hts_cnn")
    n = 20
    U = s.encode(latin_hypercube(s, n, seed=0))
    for hp in ("lr", "momentum", "dropout1", "dropout4"):  # float columns (integers are rounded)
        col = U[:, s.column_slices()[hp]].ravel()
        assert sorted(np.minimum((col * n).astype(int), n - 1)) == list(range(n)), hp


def test_latin_hypercube_with_categoricals_and_conditions():
    s = SearchSpace.from_dict(
        {
            "hyperparameters": [
                {"name": "opt", "type": "categorical", "choices": ["a", "b"]},
                {"name": "lr", "type": "float", "lower": 1e-4, "upper": 1.0, "log": True},
                {"name": "mom", "type": "float", "lower": 0.0, "upper": 1.0, "condition": {"parent": "opt", "values": ["b"]}},
            ]
        }
    )
    configs = sample_configs(s, "lhs", 10, seed=1)
    assert [c["opt"] for c in configs].count("a") == 5
    assert all(("mom" in c) == (c["opt"] == "b") and s.problems(c) == [] for c in configs)


def test_explicit_list_is_validated_and_deduplicated():
    s = space("resnet")
    configs = sample_configs(s, "list", configs=[{"batch_size": 32, "lr": 0.1}, {"batch_size": 32.0, "lr": 0.1}, {"batch_size": 64, "lr": 0.01}])
    assert configs == [{"batch_size": 32, "lr": 0.1}, {"batch_size": 64, "lr": 0.01}]
    assert configs_to_records(configs)[1] == {"config_id": 1, "batch_size": 64, "lr": 0.01}
    with pytest.raises(ConfigurationError, match="outside the space 'resnet'.*'lr'=5.0"):
        sample_configs(s, "list", configs=[{"batch_size": 32, "lr": 5.0}])
    with pytest.raises(ConfigurationError, match="needs a non-empty 'configs' list"):
        sample_configs(s, "list")
    with pytest.raises(ConfigurationError, match="unknown; choose one of"):
        sample_configs(s, "sobol", 4)
