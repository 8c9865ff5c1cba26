"""What every prefilter shares: its constructor arguments and input checks.

A prefilter maps ``(B, C, F, T)`` spectrograms to ``(B, C', F, T)``, causally
(bin t depends on input bins <= t), and is built from the stimulus
description ``(n_freqs, dt_ms, n_channels)`` plus its own options; a
model passes those three when it builds a prefilter by name.
``out_channels`` tells the model how many channels its core will see.
"""

from __future__ import annotations

import numbers

from torch import Tensor, nn
from strfsolver.utils.checks import short_repr

__all__ = ["Prefilter"]


class Prefilter(nn.Module):
    """Base class of registered prefilters.

    Args:
        n_freqs: Bands ``F``.
        dt_ms: Bin width in ms.
        n_channels: Input channels ``C``.

    Attributes:
        out_channels: Channels of the output.
    """

    #: output channels per input channel
    channels_per_input = 1

    #: whether what the prefilter does depends on the bin width (time constants in ms): a fit refuses
    #: data of another ``dt_ms`` than the one it was built with (:py:func:`strfsolver.solver.data_checks.check_fit_data`)
    depends_on_bin_width = True

    def __init__(self, n_freqs: int, dt_ms: float = 5.0, n_channels: int = 1):
        super().__init__()
        for value, name in ((n_freqs, "n_freqs"), (n_channels, "n_channels")):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {short_repr(value)}.")
        if isinstance(dt_ms, bool) or not isinstance(dt_ms, numbers.Real) or not dt_ms > 0:
            raise ValueError(f"dt_ms must be a number > 0, got {short_repr(dt_ms)}.")
        self.n_freqs, self.dt_ms, self.n_channels = int(n_freqs), float(dt_ms), int(n_channels)
        self.out_channels = self.n_channels * self.channels_per_input

    def _check(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] != self.n_channels or x.shape[2] != self.n_freqs:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{type(self).__name__} expects (B, {self.n_channels}, {self.n_freqs}, T) input, got {shape}.")

    def extra_repr(self) -> str:
        return f"n_freqs={self.n_freqs}, dt_ms={self.dt_ms}, n_channels={self.n_channels}, out_channels={self.out_channels}"
