"""Input checks of the metrics (shapes, dtypes, devices, masks) and the reduction over neurons."""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from strfsolver.utils.checks import short_repr

__all__ = ["REDUCTIONS"]

REDUCTIONS = ("none", "mean", "sum")

Tensor = torch.Tensor


def _shape(tensor) -> Tuple[int, ...]:
    return tuple(tensor.shape)


def _as_tensor(name: str, value) -> Tensor:
    if isinstance(value, Tensor):
        return value
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(
            f"{name} must be a torch.Tensor (or an array-like), got {type(value).__name__}."
        ) from None


def _check_reduction(reduction) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"reduction must be one of {', '.join(map(repr, REDUCTIONS))}; got {short_repr(reduction)}."
        )


def _check_responses(responses, name: str = "responses") -> Tensor:
    responses = _as_tensor(name, responses)
    if responses.ndim != 4:
        raise ValueError(
            f"{name} must have shape (B, N, R, T) (4 dimensions: stimuli, neurons, "
            f"repeats, bins); got shape {_shape(responses)} ({responses.ndim} dimensions)."
        )
    if responses.shape[0] == 0 or responses.shape[1] == 0:
        raise ValueError(
            f"{name} must hold at least one stimulus and one neuron (B, N >= 1); got shape "
            f"{_shape(responses)}."
        )
    if not responses.is_floating_point():
        # integer spike counts cannot hold NaN, so they have no missing data
        responses = responses.to(torch.get_default_dtype())
    return responses


def _check_mask(mask, batch: int, neurons: int, bins: int, device) -> Optional[Tensor]:
    if mask is None:
        return None
    mask = _as_tensor("mask", mask)
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor; got dtype {mask.dtype}.")
    if _shape(mask) == (batch, neurons, 1, bins):
        mask = mask[:, :, 0]
    elif _shape(mask) != (batch, neurons, bins):
        hint = ""
        if mask.ndim == 4 and _shape(mask)[:2] == (batch, neurons) and mask.shape[3] == bins:
            hint = (
                " A per-repeat mask is not needed: missing repeats are the NaNs "
                "in responses."
            )
        raise ValueError(
            f"mask must have shape (B, N, 1, T) = {(batch, neurons, 1, bins)} or "
            f"(B, N, T) = {(batch, neurons, bins)}; got shape {_shape(mask)}.{hint}"
        )
    if mask.device != device:
        mask = mask.to(device)
    return mask


def _check_inputs(pred, responses, mask, promote_pred: bool = True) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """Validate shapes, promote both tensors to one floating dtype (a floating ``pred`` stays as it
    is with ``promote_pred=False``: for a caller that converts it block by block)."""
    responses = _check_responses(responses)
    pred = _as_tensor("pred", pred)
    batch, neurons, _, bins = _shape(responses)
    expected = (batch, neurons, 1, bins)
    if _shape(pred) != expected:
        raise ValueError(
            f"pred must have shape (B, N, 1, T) = {expected} to match responses of "
            f"shape (B, N, R, T) = {_shape(responses)}; got pred of shape {_shape(pred)}."
        )
    if pred.device != responses.device:
        raise ValueError(
            f"pred is on {pred.device} but responses are on {responses.device}; "
            f"expected both on the same device."
        )
    dtype = responses.dtype
    if pred.is_floating_point():
        dtype = torch.promote_types(pred.dtype, responses.dtype)
    if promote_pred or not pred.is_floating_point():
        pred = pred.to(dtype)
    responses = responses.to(dtype)
    return pred, responses, _check_mask(mask, batch, neurons, bins, responses.device)


def _reduce(values: Tensor, reduction: str) -> Tensor:
    """nanmean / nansum over neurons, safe for gradients."""
    if reduction == "none":
        return values
    finite = ~torch.isnan(values)
    total = torch.where(finite, values, 0.0).sum()
    if reduction == "sum":
        return total
    return total / finite.sum()
