"""The lagged (STRF) design of one stimulus and its products, with and without building it.

For features ``x`` of shape ``(P, T)`` and ``L`` lags, row ``t`` of the
design is ``z_t[p * L + l] = x[p, t - l]``, with ``x[p, t] = 0`` for ``t < 0``
(lag 0 is the current bin; every stimulus starts from a zero history).
:func:`lagged_gram`, :func:`lagged_cross` and :func:`lagged_sum` compute
``Z^T Z``, ``Z^T Y^T`` and ``Z^T 1`` from shifted products of ``x`` alone;
:func:`lagged_design` builds ``Z`` (the reference, and chunks of rows for
masked bins).
"""

from __future__ import annotations

import torch
from torch import Tensor
from strfsolver.utils.checks import short_repr

__all__ = ["lagged_design", "lagged_gram", "lagged_cross", "lagged_sum", "CHUNK_ELEMENTS"]

#: elements of one chunk of design rows (32 MiB in float64): bounds the memory
#: of the masked Grams and of leave-one-bin-out scoring whatever D is
CHUNK_ELEMENTS = 1 << 22


def _lag_index(bins: Tensor, n_lags: int) -> Tensor:
    """Columns of the front-padded features that hold ``x[:, t - l]``: ``(len(bins), L)``."""
    lags = torch.arange(n_lags, device=bins.device)
    return bins.unsqueeze(1) + (n_lags - 1) - lags.unsqueeze(0)


def design_rows(padded: Tensor, bins: Tensor, n_lags: int) -> Tensor:
    """Rows ``z_t`` of the lagged design for some bins.

    Args:
        padded: ``(P, L - 1 + T)`` features with ``L - 1`` zero columns in front,
            so that negative times read zeros without a branch.
        bins: ``(K,)`` long tensor of bin indices ``t`` in ``[0, T)``.
        n_lags: L.

    Returns:
        ``(K, P * L)`` tensor, column ``p * L + l`` holding ``x[p, t - l]``.
    """
    rows = padded[:, _lag_index(bins, n_lags)]  # (P, K, L)
    return rows.permute(1, 0, 2).reshape(bins.numel(), -1)


def pad_history(features: Tensor, n_lags: int) -> Tensor:
    """``(P, T)`` features with ``L - 1`` zero bins in front (the zero history): ``(P, L - 1 + T)``."""
    return torch.nn.functional.pad(features, (n_lags - 1, 0))


def lagged_design(features: Tensor, n_lags: int) -> Tensor:
    """The explicit lagged design matrix of one stimulus (reference; small problems and tests).

    Args:
        features: ``(P, T)``.
        n_lags: L >= 1.

    Returns:
        ``(T, P * L)``: row t is ``z_t``, column ``p * L + l`` is ``x[p, t - l]``
        (zero for ``t < l``).
    """
    features = _as_features(features)
    bins = torch.arange(features.shape[1], device=features.device)
    return design_rows(pad_history(features, n_lags), bins, n_lags)


#: stimuli up to this many bins get their Gram as ``Z^T Z`` of their own design rows: the
#: lag structure trades ``O(T D^2)`` flops for ``O(L^2 P^2)`` memory-bound block
#: updates, which on a 2-core CPU pay off from about a thousand bins on (measured at
#: P = 32-128, L = 20-30: 0.13 s vs 0.04 s at T = 500, 0.13 s vs 0.48 s at T = 2,000)
EXPLICIT_MAX_BINS = 1024


def lagged_gram(features: Tensor, n_lags: int, method: str = "auto") -> Tensor:
    """``sum_t z_t z_t^T`` of one stimulus from the lag structure, without the design.

    Block ``(l1, l2 = l1 + d)`` of the Gram (``P x P``) is
    ``sum_{u=d}^{T-1-l1} x[:, u] x[:, u - d]^T``: the full cross-product of the
    features with themselves shifted by ``d`` (one ``(P, T) @ (T, P)`` product
    per lag difference, L of them), minus the ``l1`` terms at the end of the
    stimulus that lag ``l1`` never reaches. The corrections of one diagonal are
    a cumulative sum of outer products, ``O(L^2 P^2)`` in all, against the
    ``O(T D^2)`` of an explicit ``X^T X``.

    Args:
        features: ``(P, T)``; any ``T >= 1``, including ``T < L``.
        n_lags: L >= 1.
        method: ``"lags"`` (the above), ``"design"`` (``Z^T Z`` of this
            stimulus' own ``(T, P L)`` design rows) or ``"auto"``: the design
            for stimuli of at most :data:`EXPLICIT_MAX_BINS` bins, where it is faster.

    Returns:
        ``(P * L, P * L)`` symmetric Gram in the features' dtype.
    """
    x = _as_features(features)
    n_feat, n_times = x.shape
    if method not in ("auto", "lags", "design"):
        raise ValueError(f"method must be 'auto', 'lags' or 'design', got {short_repr(method)}.")
    if method == "design" or (method == "auto" and n_times <= EXPLICIT_MAX_BINS):
        design = lagged_design(x, n_lags)
        return design.T @ design
    # blocks[l1, l2] is the (P, P) block of lags (l1, l2): filled as whole blocks, permuted once at the end
    blocks = x.new_zeros(n_lags, n_lags, n_feat, n_feat)
    for d in range(min(n_lags, n_times)):
        n_blocks = n_lags - d  # l1 = 0 .. L - 1 - d
        full = x[:, d:] @ x[:, : n_times - d].T
        diagonal = full.expand(n_blocks, n_feat, n_feat).clone()
        # tail term k is x[:, T-1-k] x[:, T-1-k-d]^T; lag l1 misses the first l1 of them,
        # and terms with T-1-k < d do not exist (that product was never in ``full``)
        last = min(n_blocks - 2, n_times - 1 - d)
        if last >= 0:
            ks = torch.arange(last + 1, device=x.device)
            tail = torch.einsum("pk,qk->kpq", x[:, n_times - 1 - ks], x[:, n_times - 1 - ks - d]).cumsum(0)
            diagonal[1 : last + 2] -= tail
            diagonal[last + 2 :] -= tail[-1]
        l1 = torch.arange(n_blocks, device=x.device)
        blocks[l1, l1 + d] = diagonal
        if d > 0:
            blocks[l1 + d, l1] = diagonal.transpose(1, 2)
    # (l1, l2, p, q) -> (p, l1, q, l2): feature index p * L + l
    return blocks.permute(2, 0, 3, 1).reshape(n_feat * n_lags, n_feat * n_lags)


def lagged_cross(features: Tensor, targets: Tensor, n_lags: int) -> Tensor:
    """``sum_t z_t y_t^T`` of one stimulus as L shifted products, without the design.

    Args:
        features: ``(P, T)``.
        targets: ``(N, T)``, finite (put zeros at bins that must not count).
        n_lags: L >= 1.

    Returns:
        ``(P * L, N)``; entry ``(p * L + l, n)`` is ``sum_t x[p, t - l] y[n, t]``.
    """
    x = _as_features(features)
    n_feat, n_times = x.shape
    cross = x.new_zeros(n_feat, n_lags, targets.shape[0])
    for lag in range(min(n_lags, n_times)):
        cross[:, lag] = x[:, : n_times - lag] @ targets[:, lag:].T
    return cross.reshape(n_feat * n_lags, -1)


def lagged_sum(features: Tensor, n_lags: int) -> Tensor:
    """``sum_t z_t`` of one stimulus: ``(P * L,)``, entry ``p * L + l`` is ``sum_{u < T - l} x[p, u]``."""
    x = _as_features(features)
    n_feat, n_times = x.shape
    cumulative = x.cumsum(1)
    sums = x.new_zeros(n_feat, n_lags)
    for lag in range(min(n_lags, n_times)):
        sums[:, lag] = cumulative[:, n_times - 1 - lag]
    return sums.reshape(-1)


def _as_features(features: Tensor) -> Tensor:
    if not isinstance(features, Tensor) or features.dim() != 2:
        raise ValueError(f"features must be a (P, T) tensor; got {getattr(features, 'shape', type(features).__name__)}")
    return features
