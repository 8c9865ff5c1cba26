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

from strfsolver.utils.checks import check_count

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
            raise ValueError(f"min_width must be > 0 bins, got {short_repr(min_width)}.")
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
                f"[-0.5, {self.n_lags - 0.5}), got {short_repr(centers.tolist())}."
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
    raise ValueError(f"Unknown STRF kernel {short_repr(kernel)}; options are {list(STRF_KERNELS)} or an nn.Module.")


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


# the other building blocks have their own modules; the names stay importable
# from here, where they all lived before (strfsolver.models.layers)
from strfsolver.nn.attention import SinusoidalPositionalEncoding, causal_window_mask  # noqa: E402
from strfsolver.nn.decay import LearnableExponentialDecay  # noqa: E402
from strfsolver.nn.local import LocallyConnected1d  # noqa: E402
from strfsolver.utils.checks import short_repr
