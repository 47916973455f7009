import numpy as np
import pytest
import yaml

from tests.conftest import HYPERREC_SPACE
from transfertune.core.spaces import INACTIVE_VALUE, SearchSpace, flatten_record
from transfertune.errors import ConfigurationError


@pytest.fixture(scope="module")
def space():
    return SearchSpace.from_yaml(HYPERREC_SPACE)


def test_hyperrec_space_matches_tables_5_to_7(space):
    assert space["batchsize"].type == "integer" and (space["batchsize"].lower, space["batchsize"].upper) == (32, 128)
    assert space["lr"].log and space["lr"].lower == 1e-4 and space["lr"].upper == 1e-1
    assert space["scheduler"].choices == ("StepLR", "ExponentialLR", "CyclicLR", "CosineAnnealingWarmRestarts")
    assert space["adam_beta0"].parent == "optimizer" and space["adam_beta0"].parent_values == ("Adam",)
    # ConfigSpace agrees on the conditional structure
    assert len(space.configspace.conditions) == sum(hp.parent is not None for hp in space.hyperparameters)


def test_log_scale_encoding_puts_geometric_mean_in_the_middle(space):
    config = {"batchsize": 32, "model": "resnet34", "optimizer": "SGD", "scheduler": "ExponentialLR",
              "lr": 10 ** -2.5, "weight_decay": 1e-5, "sgd_momentum": 1.0, "explr_gamma": 0.85}
    x = space.encode([config])[0]
    cols = space.column_names
    assert x[cols.index("lr")] == pytest.approx(0.5)
    assert x[cols.index("weight_decay")] == pytest.approx(0.0)
    assert x[cols.index("sgd_momentum")] == pytest.approx(1.0)
    assert x[cols.index("optimizer=SGD")] == 1.0 and x[cols.index("optimizer=Adam")] == 0.0
    # Adam's betas are inactive for SGD: neutral value, and decode drops them
    assert x[cols.index("adam_beta0")] == INACTIVE_VALUE
    decoded = space.decode(x)[0]
    assert "adam_beta0" not in decoded and decoded["optimizer"] == "SGD"
    assert decoded["lr"] == pytest.approx(10 ** -2.5)


def test_encode_decode_round_trip_on_samples(space):
    configs = space.sample(50, seed=3)
    X = space.encode(configs)
    assert X.shape == (50, space.dim) and X.min() >= 0 and X.max() <= 1
    back = space.decode(X)
    for a, b in zip(configs, back):
        assert a.keys() == b.keys()
        for k in a:
            assert a[k] == pytest.approx(b[k], rel=1e-9) if not isinstance(a[k], str) else a[k] == b[k]
        assert space.problems(b) == []


def test_from_raw_reads_nested_keys_and_lists(space):
    raw = {"config_id": 7, "batchsize": 64, "model": "resnet50", "optimizer": "Adam", "scheduler": "StepLR",
           "optimizer_param": {"lr": 0.01, "weight_decay": 1e-4, "betas": [0.9, 0.99]},
           "scheduler_param": {"step_size": 5, "gamma": 0.2}}
    config = space.from_raw(raw)
    assert config["adam_beta1"] == 0.99 and config["steplr_gamma"] == 0.2
    assert "explr_gamma" not in config  # same key, but inactive for StepLR
    assert space.problems(config) == []
    assert space.to_configuration(config)["steplr_step_size"] == 5


def test_problems_name_what_is_wrong(space):
    config = space.from_raw({"batchsize": 500, "model": "vgg", "optimizer": "SGD", "scheduler": "StepLR",
                             "optimizer_param": {"lr": 0.01, "weight_decay": 1e-4}})
    text = " ".join(space.problems(config))
    assert "batchsize" in text and "vgg" in text and "sgd_momentum" in text and "steplr_gamma" in text


def test_flatten_record():
    assert flatten_record({"a": {"b": [1, 2]}, "c": 3}) == {"a.b.0": 1, "a.b.1": 2, "c": 3}


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"name": "x"}, "hyperparameters"),
        ({"hyperparameters": [{"name": "a", "type": "weird"}]}, "type must be"),
        ({"hyperparameters": [{"name": "a", "type": "float", "lower": 2, "upper": 1}]}, "below upper"),
        ({"hyperparameters": [{"name": "a", "type": "float", "lower": 0, "upper": 1, "log": True}]}, "lower > 0"),
        ({"hyperparameters": [{"name": "a", "type": "float", "lower": 0, "upper": 1, "condition": {"parent": "b", "values": [1]}}]}, "defined earlier"),
        ({"hyperparameters": [{"name": "a", "type": "categorical", "choices": []}]}, "choices"),
        ({"hyperparameters": [{"name": "a", "type": "float", "lower": 0, "upper": 1}, {"name": "a", "type": "float", "lower": 0, "upper": 1}]}, "twice"),
    ],
)
def test_malformed_spaces_raise_clear_errors(tmp_path, spec, message):
    path = tmp_path / "space.yml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigurationError, match=message):
        SearchSpace.from_yaml(path)


def test_invalid_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("hyperparameters: [\n  - {name: a")
    with pytest.raises(ConfigurationError, match="not valid YAML"):
        SearchSpace.from_yaml(bad)
    with pytest.raises(ConfigurationError, match="does not exist"):
        SearchSpace.from_yaml(tmp_path / "missing.yml")
