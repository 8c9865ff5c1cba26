"""Readouts: from features to one prediction per neuron, ``(B, N, 1, T)``.

- :py:class:`STRFReadout` gives each neuron its own causal STRF over the
  features, its own normalisation and its own output activation. No
  parameter is shared between neurons: the gradient of neuron n's output
  with respect to neuron m's parameters is exactly zero for ``m != n``.
- :py:class:`LinearReadout` projects the features of each time bin onto the
  neurons (optionally through a shared hidden layer); without a hidden
  layer, neuron n's weights are row n of the projection and again shared
  with no other neuron.
"""

from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor, nn

from strfsolver.nn.activations import make_activation
from strfsolver.nn.layers import _causal_strf_conv, _check_stims, make_strf_kernel
from strfsolver.utils.checks import short_repr

__all__ = ["STRFReadout", "LinearReadout", "NORMALIZATIONS"]

#: per-neuron kernel normalisations of :py:class:`STRFReadout`
NORMALIZATIONS = ("none", "weight")


class STRFReadout(nn.Module):
    """Per-neuron STRF, normalisation and activation: ``(B, C, F, T)`` -> ``(B, N, 1, T)``.

    ``out[b, n, 0, t] = act_n(bias[n] + sum_{c,f,l} k[n,c,f,l] x[b,c,f,t-l])``
    with ``k`` the (normalised) kernel of neuron n.

    Args:
        n_freqs: Bands ``F`` of the features.
        n_lags: Lags ``L``.
        n_neurons: Neurons ``N``.
        n_channels: Feature channels ``C``.
        kernel: ``"full"``, ``"separable"``, ``"gaussian"`` or a kernel module
            returning ``(N, C, F, L)``.
        rank: Rank of a separable kernel.
        n_gaussians: Gaussians per neuron and channel of a Gaussian kernel.
        normalization: ``"none"`` or ``"weight"``: each neuron's kernel is
            ``g[n] * v[n] / ||v[n]||`` (weight normalisation, Salimans &
            Kingma 2016) with a per-neuron learnable norm ``g[n]``.
        activation: Output activation name (see
            :py:data:`strfsolver.nn.activations.ACTIVATIONS`), ``None`` or a module.
        non_negative: Passed to a parametric activation.
        bias: Learn a per-neuron offset.
        init_std: Initialisation scale of the kernel.
        batch_norm: Batch-normalise each neuron's drive before the activation
            (deepSTRF's option): per-neuron statistics over the batch's stimuli
            and bins (zero-padded bins included), running averages in eval mode.
            :py:meth:`strf` stays the kernel before it.
        baseline: Passed to a parametric activation (a learned baseline, >= 0
            under ``non_negative``).
    """

    def __init__(
        self,
        n_freqs: int,
        n_lags: int,
        n_neurons: int,
        n_channels: int = 1,
        kernel: Union[str, nn.Module] = "full",
        rank: int = 1,
        n_gaussians: int = 1,
        normalization: str = "none",
        activation: Optional[Union[str, nn.Module]] = None,
        non_negative: bool = True,
        bias: bool = True,
        init_std: Optional[float] = None,
        batch_norm: bool = False,
        baseline: Optional[bool] = None,
    ):
        super().__init__()
        if not isinstance(batch_norm, bool):
            raise ValueError(f"batch_norm must be True or False, got {short_repr(batch_norm)}.")
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {list(NORMALIZATIONS)}, got {short_repr(normalization)}.")
        self.n_freqs, self.n_lags, self.n_neurons, self.n_channels = n_freqs, n_lags, n_neurons, n_channels
        self.kernel = make_strf_kernel(kernel, n_neurons, n_channels, n_freqs, n_lags, rank=rank, n_gaussians=n_gaussians, init_std=init_std)
        self.normalization = normalization
        if normalization == "weight":
            with torch.no_grad():
                norms = self.kernel().flatten(1).norm(dim=1)
            self.norm = nn.Parameter(norms.clone())
        self.bias = nn.Parameter(torch.zeros(n_neurons)) if bias else None
        # BatchNorm2d over (B, N, 1, T): channel n is neuron n, so no statistic mixes neurons
        self.batch_norm = nn.BatchNorm2d(n_neurons) if batch_norm else None
        self.activation = make_activation(activation, n_neurons, non_negative=non_negative, baseline=baseline)

    def strf(self) -> Tensor:
        """The effective ``(N, C, F, L)`` kernels (after normalisation)."""
        kernel = self.kernel()
        if self.normalization == "weight":
            scale = self.norm / kernel.flatten(1).norm(dim=1).clamp_min(1e-12)
            kernel = kernel * scale.view(-1, 1, 1, 1)
        return kernel

    def drive(self, features: Tensor) -> Tensor:
        """The pre-activation ``(B, N, 1, T)`` drive."""
        _check_stims(features, self.n_channels, self.n_freqs, type(self).__name__)
        return _causal_strf_conv(features, self.strf(), self.bias)

    def forward(self, features: Tensor) -> Tensor:
        """``(B, C, F, T)`` -> ``(B, N, 1, T)``."""
        drive = self.drive(features)
        if self.batch_norm is not None:
            drive = self.batch_norm(drive)
        return self.activation(drive)


class LinearReadout(nn.Module):
    """Per-time-bin projection of ``(B, C, F, T)`` features onto ``N`` neurons.

    ``out[b, :, 0, t] = act(W h(x[b, :, :, t]) + bias)`` where ``h`` is the
    identity or, with ``hidden``, a shared ``Linear -> hidden_activation``
    layer. It looks at one time bin at a time, so it keeps the core's causality.

    Args:
        n_features: ``C * F`` of the input features.
        n_neurons: Neurons ``N``.
        hidden: Size of an optional hidden layer (shared between neurons).
        hidden_activation: ``"relu"``, ``"leaky-relu"`` (deepSTRF's hidden
            layer), ``"elu"``, ``"gelu"`` or ``"tanh"``.
        negative_slope: The slope of ``"leaky-relu"`` below zero.
        activation: Per-neuron output activation (name, ``None`` or module).
        non_negative: Passed to a parametric activation.
        bias: Learn a per-neuron offset.
    """

    _HIDDEN = {"relu": nn.ReLU, "leaky-relu": nn.LeakyReLU, "elu": nn.ELU, "gelu": nn.GELU, "tanh": nn.Tanh}

    def __init__(
        self,
        n_features: int,
        n_neurons: int,
        hidden: Optional[int] = None,
        hidden_activation: str = "relu",
        activation: Optional[Union[str, nn.Module]] = None,
        non_negative: bool = True,
        bias: bool = True,
        negative_slope: float = 0.01,
    ):
        super().__init__()
        if hidden_activation not in self._HIDDEN:
            raise ValueError(f"hidden_activation must be one of {sorted(self._HIDDEN)}, got {short_repr(hidden_activation)}.")
        if not (isinstance(negative_slope, (int, float)) and 0.0 <= negative_slope < 1.0):
            raise ValueError(f"negative_slope must be a number in [0, 1), got {short_repr(negative_slope)}.")
        self.n_features, self.n_neurons = n_features, n_neurons
        if hidden is None:
            self.hidden = nn.Identity()
            width = n_features
        else:
            layer = nn.LeakyReLU(float(negative_slope)) if hidden_activation == "leaky-relu" else self._HIDDEN[hidden_activation]()
            self.hidden = nn.Sequential(nn.Linear(n_features, hidden), layer)
            width = hidden
        self.projection = nn.Linear(width, n_neurons, bias=bias)
        self.activation = make_activation(activation, n_neurons, non_negative=non_negative)

    def forward(self, features: Tensor) -> Tensor:
        """``(B, C, F, T)`` with ``C * F == n_features`` -> ``(B, N, 1, T)``."""
        if features.dim() != 4 or features.shape[1] * features.shape[2] != self.n_features:
            raise ValueError(
                f"LinearReadout expects (B, C, F, T) features with C * F = {self.n_features}, got {tuple(features.shape)}."
            )
        per_bin = features.flatten(1, 2).transpose(1, 2)  # (B, T, C F)
        out = self.projection(self.hidden(per_bin))  # (B, T, N)
        return self.activation(out.transpose(1, 2).unsqueeze(2))
