"""A 1-D layer with unshared weights: :py:class:`LocallyConnected1d`."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn

from strfsolver.utils.checks import check_count

__all__ = ["LocallyConnected1d"]


class LocallyConnected1d(nn.Module):
    """1-D layer with unshared weights: each output position has its own filter.

    Input ``(B, C_in, P)`` -> output ``(B, C_out, P_out)`` with
    ``P_out = (P + 2 padding - kernel_size) // stride + 1``; unlike
    ``Conv1d`` the weights differ between positions (e.g. frequency bands).

    Args:
        in_channels: ``C_in``.
        out_channels: ``C_out``.
        in_length: ``P``.
        kernel_size: Filter length.
        stride: Step between positions.
        padding: Zeros added at both ends.
        bias: Learn one offset per output position and channel.
    """

    def __init__(self, in_channels: int, out_channels: int, in_length: int, kernel_size: int, stride: int = 1, padding: int = 0, bias: bool = True):
        super().__init__()
        for v, k in zip((in_channels, out_channels, in_length, kernel_size, stride), ("in_channels", "out_channels", "in_length", "kernel_size", "stride")):
            check_count(v, k, 1)
        check_count(padding, "padding", 0)
        self.in_channels, self.out_channels, self.in_length = in_channels, out_channels, in_length
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.out_length = (in_length + 2 * padding - kernel_size) // stride + 1
        if self.out_length < 1:
            raise ValueError(f"kernel_size {kernel_size} is longer than the padded input ({in_length} + 2 x {padding}).")
        fan_in = in_channels * kernel_size
        self.weight = nn.Parameter(torch.randn(self.out_length, out_channels, fan_in) / math.sqrt(fan_in))
        self.bias = nn.Parameter(torch.zeros(out_channels, self.out_length)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C_in, P)`` -> ``(B, C_out, P_out)``."""
        if x.dim() != 3 or x.shape[1] != self.in_channels or x.shape[2] != self.in_length:
            raise ValueError(f"LocallyConnected1d expects (B, {self.in_channels}, {self.in_length}), got {tuple(x.shape)}.")
        patches = nnf.pad(x, (self.padding, self.padding)).unfold(2, self.kernel_size, self.stride)  # (B, C_in, P_out, k)
        patches = patches.permute(0, 2, 1, 3).reshape(x.shape[0], self.out_length, -1)  # (B, P_out, C_in k)
        out = torch.einsum("bpk,pok->bop", patches, self.weight)
        return out if self.bias is None else out + self.bias
