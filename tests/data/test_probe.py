"""The probe phi_e: saved and read back as a state dict, a mismatch is one line, trained further
in place, its penultimate features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transfertune.data import load_source
from transfertune.data.adversarial import (
    ClassifierConfig,
    load_probe,
    probe_features,
    save_probe,
    train_model,
    update_probe,
)
from transfertune.data.sources import ArraySource
from transfertune.errors import ConfigurationError

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.int64)
    return ArraySource("toy", X, y, "classification", ["a", "b"], None)


def test_probe_round_trips_through_its_state_dict(tmp_path, table):
    config = ClassifierConfig(hidden=8, epochs=3)
    model = train_model(table, config, CPU, seed=0, progress=False)
    path = save_probe(tmp_path / "probe.pt", model, config, table.sample_shape)
    again, read_config = load_probe(path)
    assert read_config == config
    np.testing.assert_array_equal(probe_features(again, table.X), probe_features(model, table.X))
    assert again.train_metric == pytest.approx(model.train_metric)
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temporary file


def test_probe_features_are_the_penultimate_layer(table):
    model = train_model(table, ClassifierConfig(hidden=8, epochs=1), CPU, seed=0, progress=False)
    features = probe_features(model, table.X)
    assert features.shape == (200, 8)
    with torch.no_grad():
        logits = model.net(torch.as_tensor(table.X))
        last = model.net.net[-1]
        np.testing.assert_allclose(torch.as_tensor(features, dtype=torch.float32) @ last.weight.T + last.bias, logits, atol=1e-5)
    assert (features >= 0).all()  # after the last ReLU


def test_a_state_dict_that_does_not_match_the_probe_is_one_line(tmp_path, table):
    config = ClassifierConfig(hidden=8, epochs=1)
    model = train_model(table, config, CPU, seed=0, progress=False)
    path = save_probe(tmp_path / "probe.pt", model, config, table.sample_shape)
    with pytest.raises(ConfigurationError, match=r"does not match the probe network MLP: .*net.1.weight \(8, 5\) != \(8, 7\)") as info:
        load_probe(path, sample_shape=(7,))
    assert "\n" not in str(info.value)
    saved = torch.load(path, weights_only=True)
    del saved["state_dict"]["net.3.bias"]
    torch.save(saved, tmp_path / "broken.pt")
    with pytest.raises(ConfigurationError, match=r"missing \['net.3.bias'\]"):
        load_probe(tmp_path / "broken.pt")
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_probe(tmp_path / "absent.pt")


def test_update_trains_the_same_network_further_and_leaves_the_callers_rng_alone(table):
    config = ClassifierConfig(hidden=8, epochs=1, lr=0.01)
    model = train_model(table, config, CPU, seed=0, progress=False)
    before = {k: v.clone() for k, v in model.net.state_dict().items()}
    net = model.net
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    update_probe(model, table, config, epochs=3, seed=1, progress=False)
    torch.testing.assert_close(torch.rand(3), expected)
    assert model.net is net
    assert any(not torch.equal(before[k], v) for k, v in model.net.state_dict().items())
    assert all(not p.requires_grad for p in model.net.parameters())  # back in eval mode for the attack


def test_image_probe_round_trips(tmp_path):
    digits = load_source("digits", limit=120)
    config = ClassifierConfig(hidden=8, epochs=1)
    model = train_model(digits, config, CPU, seed=0, progress=False)
    again, _ = load_probe(save_probe(tmp_path / "p.pt", model, config, digits.sample_shape))
    np.testing.assert_array_equal(probe_features(again, digits.X), probe_features(model, digits.X))
