"""Shared small data and models for the solver tests (CPU, seconds)."""

import pytest
import torch
from torch import nn

import strfsolver
from strfsolver.data import make_loader, synthetic_population


class CausalLinear(nn.Module):
    """Stand-in linear STRF model, used only while strfsolver.models has no "linear"."""

    def __init__(self, n_freqs, n_lags, n_neurons):
        super().__init__()
        self.n_neurons = n_neurons
        self.weight = nn.Parameter(torch.randn(n_neurons, n_freqs, n_lags) * 0.01)
        self.bias = nn.Parameter(torch.zeros(n_neurons))

    def strf(self):
        # conv1d correlates: kernel index k sees lag L - 1 - k
        return self.weight.flip(-1)[:, None]

    def forward(self, stims):
        padded = nn.functional.pad(stims, (self.weight.shape[-1] - 1, 0))
        drive = nn.functional.conv1d(padded, self.weight, self.bias)
        return drive[:, :, None, :]


def make_linear(n_freqs, n_lags, n_neurons):
    """The real "linear" model when it is registered, the stand-in otherwise."""
    if "linear" in strfsolver.models.get_options():
        return strfsolver.models.init("linear", n_freqs=n_freqs, n_lags=n_lags, n_neurons=n_neurons)
    return CausalLinear(n_freqs, n_lags, n_neurons)


SIZES = dict(n_neurons=6, n_stims=10, n_repeats=4, n_freqs=8, n_lags=6, n_times=80)


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
