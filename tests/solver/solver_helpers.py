"""Plain helpers of the solver tests (a causal linear stand-in model and the population sizes).

They live here, not in ``conftest.py``, so that ``from solver_helpers import ...`` names one
module whichever test folders are collected together (every folder has a ``conftest``).
"""

import torch
from torch import nn

import strfsolver


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
