"""Fixtures of the models tests: tiny models, so the whole suite runs in seconds.

Helpers are fixtures (not imported names) because test folders share no package.
"""

import pytest
import torch

import strfsolver

SIZES = dict(B=2, F=8, T=40, N=3, L=5)

#: small options per registered model, so every test builds them quickly
SMALL = {
    "cnn2d": dict(channels=(4, 4), freq_kernel=3),
    "linear": {},
    "ln": {},
    "nrf": dict(n_hidden=4),
    "statenet": dict(front_channels=4, hidden_size=6),
    "transformer": dict(d_model=8, n_heads=2, n_layers=1, dim_feedforward=16),
}


@pytest.fixture
def sizes():
    return dict(SIZES)


@pytest.fixture
def build():
    """``build(name, seed=0, **options)``: a small registered model with the sizes above, seeded."""

    def make(name, seed=0, **options):
        torch.manual_seed(seed)
        base = dict(n_freqs=SIZES["F"], n_lags=SIZES["L"], n_neurons=SIZES["N"])
        return strfsolver.models.init(name, **{**base, **SMALL.get(name, {}), **options})

    return make


@pytest.fixture
def stims():
    """``(B, F, T)`` positive random stimuli."""
    return torch.rand(SIZES["B"], SIZES["F"], SIZES["T"], generator=torch.Generator().manual_seed(1))


