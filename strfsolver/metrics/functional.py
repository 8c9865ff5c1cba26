"""One-shot metrics of whole tensors, differentiable with respect to ``pred``.

The definitions are in :py:mod:`strfsolver.metrics`.
"""

from __future__ import annotations

from typing import Optional

import torch

from strfsolver.metrics.checks import _check_inputs, _check_reduction, _check_responses, _reduce
from strfsolver.metrics.formulas import _eps, _finalize, _needs
from strfsolver.metrics.statistics import _stats
from strfsolver.utils.checks import short_repr

__all__ = [
    "METHODS",
    "psth",
    "corrcoef",
    "normalized_corrcoef",
    "signal_power",
    "total_power",
    "noise_power",
    "snr",
    "fve",
]

METHODS = ("schoppe", "hsu")

Tensor = torch.Tensor


def _metric(name: str, pred, responses, mask, reduction: str) -> Tensor:
    """One-shot path shared by the public functions."""
    _check_reduction(reduction)
    if pred is None:
        responses = _check_responses(responses)
        dtype = responses.dtype
    else:
        pred, responses, mask = _check_inputs(pred, responses, mask)
        dtype = pred.dtype
    stats = _stats(pred, responses, mask, **_needs([name]))
    return _reduce(_finalize(stats, [name], _eps(dtype))[name], reduction)


def psth(responses: Tensor) -> Tensor:
    """Peri-stimulus time histogram: the mean over valid repeats.

    Args:
        responses: ``(B, N, R, T)``, NaN where missing.

    Returns:
        ``(B, N, 1, T)``; NaN where no repeat of that bin is valid.
    """
    responses = _check_responses(responses)
    if responses.shape[2] == 1:
        return responses
    # clamp(x, 1, 1) is 1 where recorded (infinities included) and NaN where not,
    # the same rule as every other statistic here
    count = responses.clamp(1.0, 1.0).nansum(2, keepdim=True)
    return torch.where(count > 0, responses.nansum(2, keepdim=True) / count.clamp(min=1), torch.nan)


def corrcoef(
    pred: Tensor, responses: Tensor, mask: Optional[Tensor] = None, reduction: str = "none"
) -> Tensor:
    """Pearson correlation of ``pred`` and the PSTH per neuron (differentiable).

    The correlation runs over all valid ``(b, t)`` positions of a neuron
    together (stimuli concatenated).

    Args:
        pred: ``(B, N, 1, T)`` predictions.
        responses: ``(B, N, R, T)`` responses, NaN where missing.
        mask: Optional bool ``(B, N, 1, T)`` or ``(B, N, T)``; restricts the
            positions (bins without any valid repeat are never used).
        reduction: ``"none"`` -> ``(N,)``, ``"mean"`` / ``"sum"`` -> nanmean /
            nansum over neurons.

    Returns:
        ``(N,)`` or a scalar; NaN for neurons with < 2 valid positions or a
        ~0 variance. Gradients with respect to ``pred`` are finite.
    """
    return _metric("cc", pred, responses, mask, reduction)


def normalized_corrcoef(
    pred: Tensor,
    responses: Tensor,
    method: str = "schoppe",
    mask: Optional[Tensor] = None,
    reduction: str = "none",
) -> Tensor:
    """Correlation normalized by the neuron's noise ceiling.

    ``"schoppe"`` (Schoppe et al. 2016):
    ``cc_norm = cov(pred, psth) / sqrt(var(pred) * SP)`` with unbiased
    covariance and variance over all valid ``(b, t)`` and ``SP`` the
    neuron's :func:`signal_power`. NaN where ``SP <= 0``, ``var(pred)`` is ~0
    or fewer than 2 positions are valid.

    ``"hsu"`` (Hsu, Borst & Theunissen 2004): ``corrcoef / CCmax``. The
    repeats are split into even and odd indices along R; each half's PSTH is
    the nanmean of its repeats; ``CC_half`` is the Pearson correlation of the
    two half-PSTHs over all ``(b, t)`` where both are valid; the
    Spearman-Brown correction gives ``CCmax = sqrt(2 CC_half / (1 + CC_half))``
    (the correlation a PSTH of all repeats would reach with the noise-free
    response). NaN where ``CC_half <= 0`` or within rounding of zero (below ``sqrt(eps)``).

    A neuron without any stimulus with at least two valid repeats has no
    ceiling to estimate: its raw :func:`corrcoef` is returned, for both
    methods. Values are not clipped to 1.

    Args:
        pred: ``(B, N, 1, T)`` predictions.
        responses: ``(B, N, R, T)`` responses, NaN where missing.
        method: ``"schoppe"`` or ``"hsu"``.
        mask: Optional bool ``(B, N, 1, T)`` or ``(B, N, T)``; restricts the
            positions where pred is compared. The ceiling uses all responses.
        reduction: ``"none"``, ``"mean"`` or ``"sum"`` (over neurons).

    Returns:
        ``(N,)`` per-neuron values, or their nanmean / nansum. Differentiable
        with respect to ``pred``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}; got {short_repr(method)}.")
    name = "cc_norm" if method == "schoppe" else "cc_norm_hsu"
    return _metric(name, pred, responses, mask, reduction)


def signal_power(responses: Tensor, reduction: str = "none") -> Tensor:
    """Signal power per neuron (Sahani & Linden 2003), in squared response units.

    ``SP_b = (R_v var_t(psth) - mean_r var_t(response_r)) / (R_v - 1)`` per
    stimulus, averaged over stimuli weighted by their number of valid bins
    ``T_v``; see :py:mod:`strfsolver.metrics` for how partially valid bins are used.

    Args:
        responses: ``(B, N, R, T)``, NaN where missing.
        reduction: ``"none"`` -> ``(N,)``, ``"mean"`` / ``"sum"`` over neurons.

    Returns:
        ``(N,)`` (NaN for a neuron without a stimulus with ``R_v >= 2`` and
        ``T_v >= 2``), or the nanmean / nansum. Can be negative: it is an
        unbiased estimate.
    """
    return _metric("signal_power", None, responses, None, reduction)


def total_power(responses: Tensor, reduction: str = "none") -> Tensor:
    """Total power ``mean_r var_t(response_r)`` per neuron, weighted as signal power.

    Args:
        responses: ``(B, N, R, T)``, NaN where missing.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.

    Returns:
        ``(N,)`` or a scalar.
    """
    return _metric("total_power", None, responses, None, reduction)


def noise_power(responses: Tensor, reduction: str = "none") -> Tensor:
    """Noise power ``TP - SP`` per neuron, weighted as signal power.

    Args:
        responses: ``(B, N, R, T)``, NaN where missing.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.

    Returns:
        ``(N,)`` or a scalar.
    """
    return _metric("noise_power", None, responses, None, reduction)


def snr(responses: Tensor, reduction: str = "none") -> Tensor:
    """Signal-to-noise power ratio ``SP / NP`` per neuron; NaN where ``NP <= 0``.

    Args:
        responses: ``(B, N, R, T)``, NaN where missing.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.

    Returns:
        ``(N,)`` or a scalar.
    """
    return _metric("snr", None, responses, None, reduction)


def fve(
    pred: Tensor, responses: Tensor, mask: Optional[Tensor] = None, reduction: str = "none"
) -> Tensor:
    """Fraction of the PSTH's variance explained by ``pred``.

    ``1 - sum (pred - psth)^2 / sum (psth - mean(psth))^2`` over the valid
    ``(b, t)`` of each neuron. Can be negative (a prediction worse than the
    PSTH's mean).

    Args:
        pred: ``(B, N, 1, T)`` predictions.
        responses: ``(B, N, R, T)`` responses, NaN where missing.
        mask: Optional bool ``(B, N, 1, T)`` or ``(B, N, T)``.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.

    Returns:
        ``(N,)`` or a scalar; NaN where the PSTH has ~0 variance or fewer
        than 2 valid positions.
    """
    return _metric("fve", pred, responses, mask, reduction)
