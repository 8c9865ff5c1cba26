"""Shared small data and models for the solver tests (CPU, seconds)."""

import pytest
import torch

import strfsolver
from solver_helpers import SIZES, CausalLinear, make_linear  # noqa: F401  (the fixtures use them)
from strfsolver.data import make_loader, synthetic_population


@pytest.fixture(scope="session")
def population():
    return synthetic_population(**SIZES, seed=3)


@pytest.fixture(scope="session")
def splits(population):
    train, valid = population.dataset.split([0.7, 0.3], seed=0)
    return train, valid


@pytest.fixture
def loaders(splits):
    train, valid = splits
    return make_loader(train, batch_size=3, shuffle=True, seed=1), make_loader(valid, batch_size=4)


@pytest.fixture
def new_model():
    def build(seed=0, n_neurons=SIZES["n_neurons"]):
        torch.manual_seed(seed)
        return make_linear(SIZES["n_freqs"], SIZES["n_lags"], n_neurons)

    return build
