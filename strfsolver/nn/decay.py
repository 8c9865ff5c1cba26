"""Causal leaky integration with a learnable time constant: :py:class:`LearnableExponentialDecay`.

The adaptation prefilters (:py:mod:`strfsolver.prefilters.adaptation`) and the
models build on it.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn

from strfsolver.utils.checks import check_count
from strfsolver.utils.checks import short_repr

__all__ = ["LearnableExponentialDecay"]


class LearnableExponentialDecay(nn.Module):
    """Causal leaky integration along time with a learnable time constant per row.

    With ``a = exp(-dt / tau)`` (per-bin decay), the output is the recursion

        m[t] = a * m[t - 1] + (1 - a) * x[t]          (include_current=True)
        m[t] = a * m[t - 1] + (1 - a) * x[t - 1]      (include_current=False)

    i.e. an exponentially weighted average of the input up to ``t`` (or of
    the strictly past bins), with unit total weight. The initial state
    ``m[-1]`` is 0 (``initial="zero"``) or the first input bin
    (``initial="first"``, no onset transient at the start of a stimulus).

    The recursion is evaluated exactly in blocks of ``block`` bins: within a
    block with a lower-triangular matrix product (all blocks at once), then a
    short sequential carry between blocks. Future bins enter with an exact
    zero weight, so the layer is causal to the last bit.

    With ``kernel_size=K`` the average is truncated to deepSTRF's ``K``-tap
    form (the adaptation filter ``x[t] - m[t]`` then has ``K`` taps): the
    ``K - 1`` most recent averaged bins (``t - 1 ... t - K + 1`` for
    ``include_current=False``, ``t ... t - K + 2`` otherwise), weighted by
    ``a^k`` and renormalised to sum to 1. ``K = 2`` past-only is the previous
    bin alone (``m[t] = x[t - 1]``); before the first bin the input is the
    first bin (``initial="first"``) or 0.

    Args:
        shape: Shape of the time-constant tensor; it broadcasts against the
            input's leading dimensions, e.g. ``(C, F)`` for ``(B, C, F, T)``.
        tau_ms: Initial time constant(s) in ms (number or tensor broadcastable to ``shape``).
        dt_ms: Bin width in ms.
        learnable: Make ``tau`` a parameter (stored as its log) or a fixed buffer.
        include_current: Average bins ``<= t`` (True) or ``< t`` (False).
        initial: ``"zero"`` or ``"first"``.
        block: Block length of the evaluation.
        kernel_size: ``None``: the infinite exponential average; an integer
            ``K >= 2``: the ``K - 1`` most recent averaged bins only.
    """

    def __init__(
        self,
        shape: Sequence[int],
        tau_ms: Union[float, Tensor] = 100.0,
        dt_ms: float = 5.0,
        learnable: bool = True,
        include_current: bool = True,
        initial: str = "zero",
        block: int = 64,
        kernel_size: Optional[int] = None,
    ):
        super().__init__()
        self.kernel_size = None if kernel_size is None else check_count(kernel_size, "kernel_size", 2)
        if not dt_ms > 0:
            raise ValueError(f"dt_ms must be > 0, got {short_repr(dt_ms)}.")
        if initial not in ("zero", "first"):
            raise ValueError(f"initial must be 'zero' or 'first', got {short_repr(initial)}.")
        tau = torch.as_tensor(tau_ms, dtype=torch.get_default_dtype())
        if bool((tau <= 0).any()):
            raise ValueError(f"tau_ms must be > 0 ms, got {short_repr(tau.tolist())}.")
        log_tau = torch.log(tau).expand(tuple(shape)).clone()
        if learnable:
            self.log_tau = nn.Parameter(log_tau)
        else:
            self.register_buffer("log_tau", log_tau)
        self.dt_ms, self.include_current, self.initial, self.block = float(dt_ms), include_current, initial, check_count(block, "block", 1)

    @property
    def tau_ms(self) -> Tensor:
        """Time constants in ms (shape ``shape``)."""
        return torch.exp(self.log_tau)

    def forward(self, x: Tensor) -> Tensor:
        """``(..., T)`` -> ``(..., T)`` exponential moving average along the last axis."""
        lead = x.shape[:-1]
        n_times = x.shape[-1]
        n_param_dims = self.log_tau.dim()
        if len(lead) < n_param_dims:
            raise ValueError(
                f"LearnableExponentialDecay with time constants of shape {tuple(self.log_tau.shape)} expects "
                f"input (..., {', '.join(map(str, self.log_tau.shape))}, T), got {tuple(x.shape)}."
            )
        param_shape = lead[len(lead) - n_param_dims:]
        try:
            log_a = (-self.dt_ms / self.tau_ms).expand(param_shape).reshape(-1).to(x.dtype)  # (G,)
        except RuntimeError:
            raise ValueError(
                f"time constants of shape {tuple(self.log_tau.shape)} do not broadcast against input {tuple(x.shape)}."
            ) from None
        if n_times == 0:
            return x
        if self.kernel_size is not None:
            return self._truncated(x.reshape(-1, log_a.shape[0], n_times), log_a).reshape(*lead, n_times)
        k = min(self.block, n_times)
        n_blocks = -(-n_times // k)
        rows = x.reshape(-1, log_a.shape[0], n_times)  # (B', G, T)
        rows = nnf.pad(rows, (0, n_blocks * k - n_times)).view(rows.shape[0], rows.shape[1], n_blocks, k)
        idx = torch.arange(k, device=x.device, dtype=x.dtype)
        diff = idx[:, None] - idx[None, :]  # i - j
        # W[g, i, j] = (1 - a) a^(i - j) for j <= i, exactly 0 above the diagonal
        powers = torch.exp(log_a[:, None, None] * diff.clamp_min(0))
        weights = torch.where(diff >= 0, (1 - torch.exp(log_a))[:, None, None] * powers, torch.zeros((), dtype=x.dtype, device=x.device))
        local = torch.einsum("gij,bgnj->bgni", weights, rows)  # every block from a zero state
        carry_gain = torch.exp(log_a[:, None] * (idx + 1))  # a^(i+1): how the previous state reaches bin i
        first_bin = rows[:, :, 0, 0]
        state = first_bin if self.initial == "first" else torch.zeros_like(first_bin)
        outputs = []
        for n in range(n_blocks):
            block_out = local[:, :, n] + carry_gain * state[..., None]
            outputs.append(block_out)
            state = block_out[..., -1]
        out = torch.cat(outputs, dim=-1)[..., :n_times]
        if not self.include_current:
            # the past-only average at t is the inclusive average at t - 1
            start = first_bin[..., None] if self.initial == "first" else torch.zeros_like(out[..., :1])
            out = torch.cat([start, out[..., :-1]], dim=-1)
        return out.reshape(*lead, n_times)

    def _truncated(self, rows: Tensor, log_a: Tensor) -> Tensor:
        """The ``kernel_size``-tap average of ``(B', G, T)`` rows."""
        taps = self.kernel_size - 1  # bins averaged
        lag0 = 0 if self.include_current else 1
        n_times = rows.shape[-1]
        weights = torch.exp(log_a[:, None] * torch.arange(taps, device=rows.device, dtype=rows.dtype))  # (G, taps)
        weights = weights / weights.sum(dim=1, keepdim=True)
        reach = taps - 1 + lag0
        if self.initial == "first":
            padded = torch.cat([rows[..., :1].expand(*rows.shape[:-1], reach), rows], dim=-1)
        else:
            padded = nnf.pad(rows, (reach, 0))
        out = torch.zeros_like(rows)
        for k in range(taps):  # a few taps, not one per neuron or bin
            lag = lag0 + k
            out = out + weights[:, k, None] * padded[..., reach - lag : reach - lag + n_times]
        return out
