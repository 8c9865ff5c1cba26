"""Building blocks of attention models over time bins: position codes and causal masks.

:py:class:`SinusoidalPositionalEncoding` adds position codes to ``(B, T, D)``
sequences; :py:func:`causal_window_mask` forbids attention to the future (and,
optionally, to the far past).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from strfsolver.utils.checks import check_count

__all__ = ["SinusoidalPositionalEncoding", "causal_window_mask"]


class SinusoidalPositionalEncoding(nn.Module):
    """Adds ``sin``/``cos`` position codes to ``(B, T, D)`` sequences (Vaswani et al. 2017).

    ``pe[t, 2i] = sin(t / base^(2i / D))``, ``pe[t, 2i + 1] = cos(t / base^(2i / D))``,
    computed for any length ``T`` on the fly (no maximum length).

    Args:
        d_model: Feature size ``D``.
        base: Wavelength base.
    """

    def __init__(self, d_model: int, base: float = 10000.0):
        super().__init__()
        self.d_model, self.base = check_count(d_model, "d_model", 1), float(base)

    def encoding(self, n_times: int, device=None, dtype=None) -> Tensor:
        """The ``(T, D)`` table of position codes."""
        position = torch.arange(n_times, device=device, dtype=dtype or torch.get_default_dtype())[:, None]
        pairs = torch.arange(0, self.d_model, 2, device=device, dtype=position.dtype)
        angle = position / self.base ** (pairs / self.d_model)
        pe = torch.zeros(n_times, self.d_model, device=device, dtype=position.dtype)
        pe[:, 0::2] = torch.sin(angle)
        pe[:, 1::2] = torch.cos(angle[:, : self.d_model // 2])
        return pe

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, D)`` -> ``(B, T, D)``."""
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"SinusoidalPositionalEncoding expects (B, T, {self.d_model}), got {tuple(x.shape)}.")
        return x + self.encoding(x.shape[1], x.device, x.dtype)


def causal_window_mask(n_times: int, window: Optional[int] = None, device=None) -> Tensor:
    """Boolean ``(T, T)`` attention mask, ``True`` where attention is *forbidden*.

    Query ``i`` may attend key ``j`` iff ``j <= i`` and ``i - j < window``
    (``window=None``: the whole past). This is the boolean convention of
    ``nn.MultiheadAttention`` / ``nn.TransformerEncoder`` (``True`` = masked).

    Args:
        n_times: Sequence length ``T``.
        window: Number of bins each query sees (itself included), or ``None``.
        device: Device of the mask.
    """
    check_count(n_times, "n_times", 1)
    if window is not None:
        check_count(window, "window", 1)
    i = torch.arange(n_times, device=device)[:, None]
    j = torch.arange(n_times, device=device)[None, :]
    allowed = j <= i
    if window is not None:
        allowed = allowed & (i - j < window)
    return ~allowed
