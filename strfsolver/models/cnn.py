"""``"cnn2d"``: a causal 2-D convolutional core and a per-time-bin linear readout.

The core stacks 2-D convolutions over (frequency, time). Each layer is padded
symmetrically in frequency ("same" size) and only on the left in time, so the
output at bin t sees input bins <= t; the first layer spans ``n_lags`` bins,
the others ``time_kernel``. A :py:class:`~strfsolver.nn.layers.CausalLayerNorm`
(per time bin) and an activation follow each convolution. The readout maps
the ``channels[-1] * F`` features of each bin to the neurons.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch.nn.functional as nnf
from torch import Tensor, nn

from strfsolver.models._registry import register
from strfsolver.models.base import NeuralModel
from strfsolver.nn.layers import CausalLayerNorm
from strfsolver.models.readouts import LinearReadout
from strfsolver.utils.checks import short_repr

__all__ = ["CausalConv2d", "CNN2DModel"]

_ACTIVATIONS = {"elu": nn.ELU, "relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


class CausalConv2d(nn.Module):
    """``Conv2d`` over ``(F, T)``: "same" padding in frequency, causal (left) padding in time.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        freq_kernel: Kernel size along frequency.
        time_kernel: Kernel size along time (bins t - time_kernel + 1 .. t).
    """

    def __init__(self, in_channels: int, out_channels: int, freq_kernel: int, time_kernel: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, (freq_kernel, time_kernel))
        self.freq_pad = ((freq_kernel - 1) // 2, freq_kernel - 1 - (freq_kernel - 1) // 2)
        self.time_pad = time_kernel - 1

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C_in, F, T)`` -> ``(B, C_out, F, T)``."""
        return self.conv(nnf.pad(x, (self.time_pad, 0, *self.freq_pad)))


@register("cnn2d")
class CNN2DModel(NeuralModel):
    """Causal 2-D CNN core + linear readout.

    Args:
        n_freqs: Bands ``F``.
        n_lags: Time extent of the first layer's kernels, in bins.
        n_neurons: Neurons ``N``.
        n_channels: Stimulus channels ``C``.
        channels: Output channels of each convolutional layer.
        freq_kernel: Kernel size along frequency (every layer).
        time_kernel: Kernel size along time of the layers after the first.
        layer_norm: Add a per-time-bin layer normalisation after each convolution.
        hidden_activation: ``"elu"``, ``"relu"``, ``"gelu"``, ``"tanh"`` or ``"sigmoid"``.
        readout_hidden: Size of an optional hidden layer of the readout.
        activation: Per-neuron output activation (``"softplus"`` by default).
        non_negative: Keep a parametric output activation >= 0.
        prefiltering, prefiltering_options, dt_ms: See :py:class:`NeuralModel`.
    """

    def __init__(
        self,
        n_freqs: int,
        n_lags: int,
        n_neurons: int,
        n_channels: int = 1,
        channels: Sequence[int] = (8, 8),
        freq_kernel: int = 5,
        time_kernel: int = 3,
        layer_norm: bool = True,
        hidden_activation: str = "elu",
        readout_hidden: Optional[int] = None,
        activation: Optional[Union[str, nn.Module]] = "softplus",
        non_negative: bool = True,
        prefiltering: Optional[Union[str, nn.Module]] = None,
        prefiltering_options: Optional[dict] = None,
        dt_ms: float = 5.0,
    ):
        super().__init__(n_freqs, n_lags, n_neurons, n_channels=n_channels, prefiltering=prefiltering,
                         prefiltering_options=prefiltering_options, dt_ms=dt_ms)
        channels = list(channels)
        if not channels or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in channels):
            raise ValueError(f"channels must be a non-empty sequence of integers >= 1, got {short_repr(channels)}.")
        for value, name in ((freq_kernel, "freq_kernel"), (time_kernel, "time_kernel")):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {short_repr(value)}.")
        if hidden_activation not in _ACTIVATIONS:
            raise ValueError(f"hidden_activation must be one of {sorted(_ACTIVATIONS)}, got {short_repr(hidden_activation)}.")
        layers = []
        in_channels = self.feature_channels
        for index, out_channels in enumerate(channels):
            layers.append(CausalConv2d(in_channels, out_channels, freq_kernel, self.n_lags if index == 0 else time_kernel))
            if layer_norm:
                layers.append(CausalLayerNorm(out_channels, self.feature_freqs))
            layers.append(_ACTIVATIONS[hidden_activation]())
            in_channels = out_channels
        self.core = nn.Sequential(*layers)
        self.readout = LinearReadout(channels[-1] * self.feature_freqs, self.n_neurons, hidden=readout_hidden,
                                     activation=activation, non_negative=non_negative)
