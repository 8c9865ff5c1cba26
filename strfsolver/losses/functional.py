"""Functional forms of the training losses (docs/conventions.md §3).

Both losses take ``pred (B, N, 1, T)`` and ``responses (B, N, R, T)`` (NaN
where missing). Responses with R > 1 are collapsed to their PSTH (nanmean
over repeats) first. Per neuron, the loss is the mean over that neuron's
valid ``(b, t)`` positions (where the PSTH is not NaN, and ``mask`` is True
when given); ``reduction`` then takes the nanmean (``"mean"``) or nansum
(``"sum"``) over neurons, or returns the ``(N,)`` per-neuron values
(``"none"``; NaN for a neuron without any valid position).

Invalid positions are replaced (by a ``where``) before anything derived
from them is reduced or fed to a function that could overflow, so a NaN in
the responses (or garbage in ``pred`` at padded bins) reaches neither the
value nor the gradient: the gradient there is exactly zero.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from strfsolver.metrics import _check_inputs, _check_reduction, _reduce, psth
from strfsolver.utils.checks import short_repr

__all__ = ["mse", "poisson_nll"]

Tensor = torch.Tensor


def _target_and_valid(pred, responses, mask, fill: bool = True) -> Tuple[Tensor, Tensor, Tensor]:
    """(pred (B, N, T), PSTH (B, N, T), valid (B, N, T)); the PSTH zero-filled where not valid
    unless ``fill=False`` (a caller that masks every value it derives from it saves that pass)."""
    pred, responses, mask = _check_inputs(pred, responses, mask)
    target = psth(responses)[:, :, 0]
    valid = ~torch.isnan(target)
    if mask is not None:
        valid = valid & mask
    return pred[:, :, 0], torch.where(valid, target, 0.0) if fill else target, valid


def _per_neuron_mean(values: Tensor, valid: Tensor) -> Tensor:
    """Mean over each neuron's valid (b, t); values already zero elsewhere."""
    count = valid.sum((0, 2))
    mean = values.sum((0, 2)) / count.clamp(min=1)
    return torch.where(count > 0, mean, torch.full_like(mean, torch.nan))


def mse(
    pred: Tensor,
    responses: Tensor,
    mask: Optional[Tensor] = None,
    reduction: str = "mean",
) -> Tensor:
    """Mean squared error between ``pred`` and the PSTH.

    Args:
        pred: ``(B, N, 1, T)`` predictions.
        responses: ``(B, N, R, T)`` responses, NaN where missing.
        mask: Optional bool ``(B, N, 1, T)`` or ``(B, N, T)``: positions to use
            (bins without any valid repeat are never used).
        reduction: ``"mean"`` (nanmean over neurons), ``"sum"`` or ``"none"``
            (``(N,)``).

    Returns:
        A scalar, or ``(N,)`` with ``"none"``.
    """
    _check_reduction(reduction)
    pred, target, valid = _target_and_valid(pred, responses, mask, fill=False)
    # the where picks only valid differences (a NaN target elsewhere reaches neither value nor gradient)
    residual = torch.where(valid, pred - target, 0.0)
    return _reduce(_per_neuron_mean(residual * residual, valid), reduction)


def poisson_nll(
    pred: Tensor,
    responses: Tensor,
    log_input: bool = False,
    mask: Optional[Tensor] = None,
    reduction: str = "mean",
    eps: float = 1e-8,
) -> Tensor:
    """Poisson negative log-likelihood of the PSTH, without the constant term.

    With ``log_input=False`` (``pred`` is the rate ``lambda >= 0``) the loss
    per position is ``lambda - y * log(lambda + eps)``; with
    ``log_input=True`` (``pred`` is the log-rate) it is
    ``exp(pred) - y * pred``. ``y`` is the PSTH (a mean count; the
    ``log(y!)`` term does not depend on ``pred`` and is left out).

    Args:
        pred: ``(B, N, 1, T)`` rates or log-rates.
        responses: ``(B, N, R, T)`` non-negative counts, NaN where missing.
        log_input: Whether ``pred`` is the log of the rate.
        mask: Optional bool ``(B, N, 1, T)`` or ``(B, N, T)``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        eps: Added to the rate inside the log (``log_input=False``), so a
            zero rate gives a finite loss.

    Returns:
        A scalar, or ``(N,)`` with ``"none"``.

    Raises:
        ValueError: on a negative rate (``log_input=False``) or a negative
            response at a valid position: the Poisson likelihood is not
            defined there.
    """
    _check_reduction(reduction)
    if not eps >= 0:
        raise ValueError(f"eps must be a non-negative number; got {short_repr(eps)}.")
    pred, target, valid = _target_and_valid(pred, responses, mask)
    # one synchronising check for both conditions
    bad_target = (target < 0).any()
    bad_rate = torch.zeros((), dtype=torch.bool, device=pred.device)
    if not log_input:
        bad_rate = (valid & (pred.detach() < 0)).any()
    if bool(bad_target | bad_rate):
        if bool(bad_target):
            raise ValueError(
                f"poisson loss needs non-negative responses (counts); got a minimum "
                f"PSTH value of {float(target.min()):.4g}."
            )
        low = float(torch.where(valid, pred.detach(), torch.inf).min())
        raise ValueError(
            f"poisson loss with log_input=False needs non-negative rates; got a minimum "
            f"prediction of {low:.4g} at a valid position. Use log_input=True or an "
            f"output nonlinearity that keeps rates >= 0."
        )
    if log_input:
        log_rate = torch.where(valid, pred, 0.0)  # exp of padding could overflow
        nll = torch.exp(log_rate) - target * log_rate
    else:
        rate = torch.where(valid, pred, 1.0)
        nll = rate - target * torch.log(rate + eps)
    return _reduce(_per_neuron_mean(torch.where(valid, nll, 0.0), valid), reduction)
