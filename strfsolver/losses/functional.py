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
from strfsolver.utils._autograd import plain_autograd
from strfsolver.utils.checks import short_repr

__all__ = ["mse", "poisson_nll"]

Tensor = torch.Tensor


def _target_and_valid(pred, responses, mask, fill: bool = True) -> Tuple[Tensor, Tensor, Tensor]:
    """(pred (B, N, T), PSTH (B, N, T), valid (B, N, T)); the PSTH zero-filled where not valid
    unless ``fill=False`` (a caller that masks every value it derives from it saves that pass)."""
    return _split(*_check_inputs(pred, responses, mask), fill)


def _split(pred, responses, mask, fill: bool) -> Tuple[Tensor, Tensor, Tensor]:
    """:py:func:`_target_and_valid` of inputs already checked."""
    target = psth(responses)[:, :, 0]
    valid = ~torch.isnan(target)
    if mask is not None:
        valid = valid & mask
    return pred[:, :, 0], torch.where(valid, target, 0.0) if fill else target, valid


def _per_neuron_mean(sums: Tensor, valid: Tensor) -> Tensor:
    """Mean over each neuron's valid (b, t), from the ``(N,)`` sums of values that are zero elsewhere."""
    count = valid.sum((0, 2))
    mean = sums / count.clamp(min=1)
    return torch.where(count > 0, mean, torch.full_like(mean, torch.nan))


class _SquaredResiduals(torch.autograd.Function):
    """Per neuron, ``sum over (b, t) of where(valid, pred - target, 0) ** 2``, for ``pred`` ``(B, N, 1, T)``.

    The same values and gradients, bit for bit, as the composed ``where``,
    ``mul`` and ``sum`` (and the ``select`` of ``pred[:, :, 0]``), with fewer
    ``(B, N, T)`` buffers: the composed backward makes ``grad * residual``
    twice, their sum, its ``where`` and a zero-filled copy for the select,
    where this one makes ``grad * residual`` once and works on it in place
    (``a + a`` is what adding the two equal products gives). Together with
    :py:mod:`strfsolver.nn._fused_softplus` this halves a population step's
    peak (``benchmarks/bench_scale.py --done``).
    """

    @staticmethod
    def forward(ctx, pred: Tensor, target: Tensor, valid: Tensor) -> Tensor:
        residual = torch.sub(pred[:, :, 0], target)
        torch.where(valid, residual, residual.new_zeros(()), out=residual)
        if not any(ctx.needs_input_grad):
            # nothing to differentiate (validation): square in place, r * r as the composed product
            return residual.mul_(residual).sum((0, 2))
        # pred and target are the caller's (kept alive by it anyway): saving them costs nothing
        ctx.save_for_backward(pred, target, valid, residual)
        return (residual * residual).sum((0, 2))

    @staticmethod
    def backward(ctx, grad: Tensor):
        pred, target, valid, residual = ctx.saved_tensors
        need_pred, need_target = ctx.needs_input_grad[:2]
        if torch.is_grad_enabled():
            # create_graph=True: the composed form, which autograd can differentiate again
            wanted = [t for t, need in ((pred, need_pred), (target, need_target)) if need]
            with torch.enable_grad():
                again = torch.where(valid, pred[:, :, 0] - target, 0.0)
                grads = iter(torch.autograd.grad((again * again).sum((0, 2)), wanted, grad, create_graph=True))
            return (next(grads) if need_pred else None), (next(grads) if need_target else None), None
        # the saved residual is left as it is: a retain_graph caller may run backward again
        per_bin = grad.view(1, -1, 1) * residual
        per_bin.add_(per_bin)
        torch.where(valid, per_bin, per_bin.new_zeros(()), out=per_bin)
        return (per_bin.unsqueeze(2) if need_pred else None), (-per_bin if need_target else None), None


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
    # the checked (B, N, 1, T) prediction, in the promoted dtype: what the fused node differentiates
    full_pred, responses, mask = _check_inputs(pred, responses, mask)
    pred, target, valid = _split(full_pred, responses, mask, fill=False)
    # contiguous operands only: a transposed prediction (a LinearReadout's) would be summed in another order
    if plain_autograd(full_pred, target) and pred.is_contiguous() and target.is_contiguous():
        squares = _SquaredResiduals.apply(full_pred, target, valid)
    else:
        # the where picks only valid differences (a NaN target elsewhere reaches neither value nor gradient)
        residual = torch.where(valid, pred - target, 0.0)
        squares = (residual * residual).sum((0, 2))
    return _reduce(_per_neuron_mean(squares, valid), reduction)


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
    return _reduce(_per_neuron_mean(torch.where(valid, nll, 0.0).sum((0, 2)), valid), reduction)
