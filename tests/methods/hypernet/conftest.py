"""A small digits split shared by the hypernet unit tests (loaded once)."""

import pytest
import torch

from transfertune.methods.hypernet import LogisticRegression, load_split


@pytest.fixture(scope="session")
def digits():
    torch.set_num_threads(1)
    return load_split("digits", n_train=50, n_val=100, n_test=200, seed=0)


@pytest.fixture(scope="session")
def target():
    return LogisticRegression(64, 10)
