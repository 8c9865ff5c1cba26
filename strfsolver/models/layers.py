"""Building blocks of the encoding models: causal STRF convolutions and friends.

STRF convention (shared with :py:mod:`strfsolver.data.synthetic`): a kernel
``strf`` of shape ``(N, C, F, L)`` maps stimuli ``(B, C, F, T)`` to drives
``(B, N, 1, T)`` with

    drive[b, n, t] = sum_{c, f, l} strf[n, c, f, l] * stim[b, c, f, t - l]

where lag ``l = 0`` is the current bin and the stimulus is zero before
``t = 0``. :py:func:`causal_strf_conv` computes it for all ``N`` kernels with
a single ``conv2d`` (the kernel spans the whole frequency axis, so the output
has one frequency row).

Kernels are pluggable: :py:class:`FullSTRF` (one free weight per entry),
:py:class:`SeparableSTRF` (rank-k frequency x time factorisation) and
:py:class:`ParametricSTRF` (sum of 2-D Gaussians) are modules whose
``forward()`` takes no input and returns the ``(N, C, F, L)`` kernel;
:py:class:`CausalSTRFConv` applies any of them.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn
from strfsolver.checks import check_count

__all__ = [
    "causal_strf_conv",
    "FullSTRF",
    "SeparableSTRF",
    "ParametricSTRF",
    "make_strf_kernel",
    "CausalSTRFConv",
    "CausalLayerNorm",
    "LearnableExponentialDecay",
    "LocallyConnected1d",
    "SinusoidalPositionalEncoding",
    "causal_window_mask",
    "STRF_KERNELS",
]

#: names accepted by ``kernel=`` in STRF layers and models
STRF_KERNELS = ("full", "separable", "gaussian")


def _check_stims(x: Tensor, n_channels: int, n_freqs: int, where: str) -> None:
    if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] != n_channels or x.shape[2] != n_freqs:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{where} expects input of shape (B, {n_channels}, {n_freqs}, T), got {shape}.")


def causal_strf_conv(stims: Tensor, strf: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """Apply ``N`` STRFs to a batch of stimuli in one convolution.

    Args:
        stims: ``(B, C, F, T)`` stimuli.
        strf: ``(N, C, F, L)`` kernels, lag 0 = current bin.
        bias: Optional ``(N,)`` offsets added to each output row.

    Returns:
        ``(B, N, 1, T)`` drives, ``drive[b, n, 0, t] = bias[n] +
        sum_{c,f,l} strf[n, c, f, l] * stims[b, c, f, t - l]``.
    """
    if strf.dim() != 4:
        raise ValueError(f"strf must have shape (N, C, F, L), got {tuple(strf.shape)}.")
    _check_stims(stims, strf.shape[1], strf.shape[2], "causal_strf_conv")
    return _causal_strf_conv(stims, strf, bias)


def _causal_strf_conv(stims: Tensor, strf: Tensor, bias: Optional[Tensor]) -> Tensor:
    """:py:func:`causal_strf_conv` for callers that checked the shapes already."""
    n_lags = strf.shape[-1]
    # Left padding by L - 1 zeros makes output bin t see input bins t-L+1..t only;
    # conv2d correlates, so the lag axis is flipped to turn it into a convolution.
    padded = nnf.pad(stims, (n_lags - 1, 0))
    return nnf.conv2d(padded, strf.flip(-1), bias)


class FullSTRF(nn.Module):
    """A free ``(N, C, F, L)`` kernel: one weight per neuron, channel, band and lag.

    Args:
        n_out: Number of kernels ``N``.
        n_channels: Input channels ``C``.
        n_freqs: Frequency bands ``F``.
        n_lags: Lags ``L``.
        init_std: Standard deviation of the Gaussian initialisation; default
            ``0.1 / sqrt(C * F * L)``, small so that fits start near a flat drive.
    """

    def __init__(self, n_out: int, n_channels: int, n_freqs: int, n_lags: int, init_std: Optional[float] = None):
        super().__init__()
        shape = tuple(check_count(v, k, 1) for v, k in zip((n_out, n_channels, n_freqs, n_lags), ("n_out", "n_channels", "n_freqs", "n_lags")))
        std = 0.1 / math.sqrt(n_channels * n_freqs * n_lags) if init_std is None else float(init_std)
        self.weight = nn.Parameter(torch.randn(shape) * std)

    def forward(self) -> Tensor:
        """Returns the ``(N, C, F, L)`` kernel."""
        return self.weight


class SeparableSTRF(nn.Module):
    """Rank-``k`` kernel: ``strf[n,c,f,l] = sum_r spectral[n,r,c,f] * temporal[n,r,l]``.

    Args:
        n_out, n_channels, n_freqs, n_lags: Kernel shape ``(N, C, F, L)``.
        rank: Number of separable components ``k`` (1 by default).
        init_std: Standard deviation of both factors' initialisation
            (default ``(0.1 / sqrt(C F L)) ** 0.5``).
    """

    def __init__(self, n_out: int, n_channels: int, n_freqs: int, n_lags: int, rank: int = 1, init_std: Optional[float] = None):
        super().__init__()
        for v, k in zip((n_out, n_channels, n_freqs, n_lags, rank), ("n_out", "n_channels", "n_freqs", "n_lags", "rank")):
            check_count(v, k, 1)
        std = math.sqrt(0.1 / math.sqrt(n_channels * n_freqs * n_lags)) if init_std is None else float(init_std)
        self.rank = rank
        self.spectral = nn.Parameter(torch.randn(n_out, rank, n_channels, n_freqs) * std)
        self.temporal = nn.Parameter(torch.randn(n_out, rank, n_lags) * std)

    def forward(self) -> Tensor:
        """Returns the ``(N, C, F, L)`` kernel."""
        return torch.einsum("nrcf,nrl->ncfl", self.spectral, self.temporal)


class ParametricSTRF(nn.Module):
    """Kernel made of ``K`` learnable 2-D Gaussians per kernel and channel.

    Each Gaussian lives on the ``(F, L)`` grid in absolute grid coordinates:
    its centre ``(f0, l0)`` is in bins (frequency band, lag) and its widths
    ``(sf, sl)`` are in bins along each axis, so an asymmetric grid (``F !=
    L``) is covered in full. Each Gaussian is normalised to unit mass over the
    grid and scaled by a learnable amplitude:

        g_k[f, l] = exp(-(f - f0)^2 / (2 sf^2) - (l - l0)^2 / (2 sl^2))
        strf[n, c] = sum_k amplitude[n, c, k] * g_k / sum_{f,l} g_k

    Centres are ``lo + (hi - lo) * sigmoid(raw)`` with ``lo = -0.5`` and
    ``hi = size - 0.5`` (the edges of the grid), so every bin centre, corners
    included, is reached at a finite ``raw`` with a non-zero gradient. Widths
    are ``min_width + softplus(raw)``.

    Args:
        n_out, n_channels, n_freqs, n_lags: Kernel shape ``(N, C, F, L)``.
        n_gaussians: Gaussians ``K`` per kernel and channel.
        min_width: Smallest width in bins (keeps the normalisation finite).
        init_std: Standard deviation of the amplitudes' initialisation (0.1).
    """

    def __init__(
        self,
        n_out: int,
        n_channels: int,
        n_freqs: int,
        n_lags: int,
        n_gaussians: int = 1,
        min_width: float = 0.5,
        init_std: Optional[float] = None,
    ):
        super().__init__()
        for v, k in zip((n_out, n_channels, n_freqs, n_lags, n_gaussians), ("n_out", "n_channels", "n_freqs", "n_lags", "n_gaussians")):
            check_count(v, k, 1)
        if not min_width > 0:
            raise ValueError(f"min_width must be > 0 bins, got {min_width!r}.")
        self.n_freqs, self.n_lags, self.min_width = n_freqs, n_lags, float(min_width)
        shape = (n_out, n_channels, n_gaussians)
        # spread the initial centres over the whole grid, widths a sixth of each axis
        self.raw_center = nn.Parameter(torch.empty(*shape, 2).uniform_(-2.0, 2.0))
        init_width = torch.tensor([max(n_freqs / 6.0, 1.0), max(n_lags / 6.0, 1.0)]) - self.min_width
        self.raw_width = nn.Parameter(torch.log(torch.expm1(init_width.clamp_min(0.1))).expand(*shape, 2).clone())
        std = 0.1 if init_std is None else float(init_std)
        self.amplitude = nn.Parameter(torch.randn(shape) * std)
        self.register_buffer("_sizes", torch.tensor([float(n_freqs), float(n_lags)]), persistent=False)

    @property
    def centers(self) -> Tensor:
        """``(N, C, K, 2)`` centres ``(band, lag)`` in grid coordinates."""
        return -0.5 + self._sizes * torch.sigmoid(self.raw_center)

    @property
    def widths(self) -> Tensor:
        """``(N, C, K, 2)`` widths ``(along F, along L)`` in bins."""
        return self.min_width + nnf.softplus(self.raw_width)

    @torch.no_grad()
    def set_centers(self, centers: Tensor) -> None:
        """Place the Gaussians' centres (``(N, C, K, 2)`` or broadcastable, grid coordinates)."""
        centers = torch.as_tensor(centers, dtype=self.raw_center.dtype, device=self.raw_center.device)
        fraction = (centers + 0.5) / self._sizes
        if bool(((fraction <= 0) | (fraction >= 1)).any()):
            raise ValueError(
                f"centres must lie strictly inside the grid [-0.5, {self.n_freqs - 0.5}) x "
                f"[-0.5, {self.n_lags - 0.5}), got {centers.tolist()!r}."
            )
        self.raw_center.copy_(torch.logit(fraction).expand_as(self.raw_center))

    def forward(self) -> Tensor:
        """Returns the ``(N, C, F, L)`` kernel."""
        centers, widths = self.centers, self.widths
        f = torch.arange(self.n_freqs, device=centers.device, dtype=centers.dtype)
        lag = torch.arange(self.n_lags, device=centers.device, dtype=centers.dtype)
        along_f = -0.5 * ((f - centers[..., :1]) / widths[..., :1]) ** 2  # (N, C, K, F)
        along_l = -0.5 * ((lag - centers[..., 1:]) / widths[..., 1:]) ** 2  # (N, C, K, L)
        log_g = along_f[..., :, None] + along_l[..., None, :]  # (N, C, K, F, L)
        # softmax over the grid == normalising exp(log_g) to unit mass, without underflow
        g = torch.softmax(log_g.flatten(-2), dim=-1).view_as(log_g)
        return torch.einsum("nck,nckfl->ncfl", self.amplitude, g)


def make_strf_kernel(
    kernel: Union[str, nn.Module],
    n_out: int,
    n_channels: int,
    n_freqs: int,
    n_lags: int,
    rank: int = 1,
    n_gaussians: int = 1,
    init_std: Optional[float] = None,
) -> nn.Module:
    """Build a kernel module by name (``"full"``, ``"separable"``, ``"gaussian"``) or check a given one.

    A module given directly must return an ``(n_out, n_channels, n_freqs, n_lags)``
    tensor when called without arguments.
    """
    if isinstance(kernel, nn.Module):
        shape = tuple(kernel().shape)
        if shape != (n_out, n_channels, n_freqs, n_lags):
            raise ValueError(
                f"kernel module returns shape {shape}, expected (N, C, F, L) = {(n_out, n_channels, n_freqs, n_lags)}."
            )
        return kernel
    if kernel == "full":
        return FullSTRF(n_out, n_channels, n_freqs, n_lags, init_std=init_std)
    if kernel == "separable":
        return SeparableSTRF(n_out, n_channels, n_freqs, n_lags, rank=rank, init_std=init_std)
    if kernel == "gaussian":
        return ParametricSTRF(n_out, n_channels, n_freqs, n_lags, n_gaussians=n_gaussians, init_std=init_std)
    raise ValueError(f"Unknown STRF kernel {kernel!r}; options are {list(STRF_KERNELS)} or an nn.Module.")


class CausalSTRFConv(nn.Module):
    """``n_out`` causal STRFs applied to ``(B, C, F, T)`` inputs -> ``(B, n_out, 1, T)``.

    Pads ``n_lags - 1`` zero bins on the left, so output bin ``t`` depends
    on input bins ``t - n_lags + 1 .. t`` only.

    Args:
        n_freqs: Bands ``F`` of the input.
        n_lags: Lags ``L`` of each kernel.
        n_out: Number of kernels (output rows).
        n_channels: Input channels ``C``.
        kernel: ``"full"``, ``"separable"``, ``"gaussian"`` or a kernel module.
        bias: Add a learnable offset per output row.
        rank: Rank of a separable kernel.
        n_gaussians: Gaussians per kernel of a Gaussian kernel.
        init_std: Initialisation scale passed to the kernel.
    """

    def __init__(
        self,
        n_freqs: int,
        n_lags: int,
        n_out: int,
        n_channels: int = 1,
        kernel: Union[str, nn.Module] = "full",
        bias: bool = True,
        rank: int = 1,
        n_gaussians: int = 1,
        init_std: Optional[float] = None,
    ):
        super().__init__()
        self.n_freqs, self.n_lags, self.n_out, self.n_channels = n_freqs, n_lags, n_out, n_channels
        self.kernel = make_strf_kernel(kernel, n_out, n_channels, n_freqs, n_lags, rank=rank, n_gaussians=n_gaussians, init_std=init_std)
        self.bias = nn.Parameter(torch.zeros(n_out)) if bias else None

    def strf(self) -> Tensor:
        """The ``(n_out, C, F, L)`` kernel."""
        return self.kernel()

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, F, T)`` -> ``(B, n_out, 1, T)``."""
        _check_stims(x, self.n_channels, self.n_freqs, type(self).__name__)
        return _causal_strf_conv(x, self.kernel(), self.bias)


class CausalLayerNorm(nn.Module):
    """Layer normalisation over channels and bands, separately at every time bin.

    Statistics never mix time bins, so the layer is causal (unlike batch
    normalisation over time). Input ``(B, C, F, T)``; mean and variance over
    ``(C, F)``; optional per-``(C, F)`` affine.

    Args:
        n_channels: Channels ``C``.
        n_freqs: Bands ``F``.
        eps: Added to the variance.
        affine: Learn a scale and an offset per ``(C, F)``.
    """

    def __init__(self, n_channels: int, n_freqs: int, eps: float = 1e-5, affine: bool = True):
        super().__init__()
        self.n_channels, self.n_freqs, self.eps = n_channels, n_freqs, eps
        self.weight = nn.Parameter(torch.ones(n_channels, n_freqs, 1)) if affine else None
        self.bias = nn.Parameter(torch.zeros(n_channels, n_freqs, 1)) if affine else None

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, F, T)`` -> ``(B, C, F, T)``."""
        _check_stims(x, self.n_channels, self.n_freqs, type(self).__name__)
        mean = x.mean(dim=(1, 2), keepdim=True)
        var = x.var(dim=(1, 2), keepdim=True, unbiased=False)
        y = (x - mean) / torch.sqrt(var + self.eps)
        if self.weight is not None:
            y = y * self.weight + self.bias
        return y


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
            raise ValueError(f"dt_ms must be > 0, got {dt_ms!r}.")
        if initial not in ("zero", "first"):
            raise ValueError(f"initial must be 'zero' or 'first', got {initial!r}.")
        tau = torch.as_tensor(tau_ms, dtype=torch.get_default_dtype())
        if bool((tau <= 0).any()):
            raise ValueError(f"tau_ms must be > 0 ms, got {tau.tolist()!r}.")
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
