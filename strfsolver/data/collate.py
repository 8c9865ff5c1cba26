"""Pad a list of stimuli and responses into one batch (docs/conventions.md §1)."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

import torch
from torch import Tensor

from strfsolver.metrics import RepeatStatistics, SummarisedResponses

__all__ = ["neural_collate", "check_batch", "recorded_responses", "metric_responses"]


def check_batch(batch: Any) -> Dict[str, Any]:
    """``batch`` if it is a batch dict (docs/conventions.md §1) with at least ``stims`` and ``responses``.

    Raises:
        ValueError: naming what came instead, and how to build batches.
    """
    if isinstance(batch, dict) and "stims" in batch:
        return batch
    got = f"a dict with keys {sorted(batch)}" if isinstance(batch, dict) else type(batch).__name__
    raise ValueError(
        "a batch must be a dict with keys 'stims', 'responses', 'valid_mask' and 'meta' (use "
        f"strfsolver.data.make_loader or DataLoader(..., collate_fn=strfsolver.data.neural_collate)), got {got}."
    )


def _shape(value: Tensor) -> tuple:
    return tuple(value.shape)


def neural_collate(items: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Stack items of a :py:class:`~strfsolver.data.NeuralDataset` into a padded batch.

    Use as ``DataLoader(dataset, collate_fn=neural_collate)``. Stimuli are
    padded with zeros (silence) and responses with NaN (not recorded), up to
    the batch's longest stimulus and largest number of repeats.

    Args:
        items: Dicts with ``"stim"`` ``(F, T_b)`` or ``(C, F, T_b)``,
            ``"response"`` ``(N, R_b, T_b)`` and ``"meta"`` (a dict), as
            ``NeuralDataset.__getitem__`` returns them.

    Returns:
        ``{"stims": (B, F, T) or (B, C, F, T), "responses": (B, N, R, T),
        "valid_mask": (B, N, R, T) bool, "meta": list of B dicts}`` with
        ``T = max T_b``, ``R = max R_b`` and ``valid_mask = ~isnan(responses)``;
        items of a summarised dataset (with ``"repeat_stats"``) add the
        ``(B, N)`` :py:class:`~strfsolver.metrics.RepeatStatistics` under
        ``"repeat_stats"`` (see :py:func:`metric_responses`).

    Raises:
        ValueError: On an empty list, a missing key or items whose shapes do
            not fit together (naming the item and both shapes).
    """
    items = list(items)
    if not items:
        raise ValueError("neural_collate needs at least one item, got an empty list.")
    for b, item in enumerate(items):
        if not isinstance(item, dict) or "stim" not in item or "response" not in item:
            raise ValueError(
                f"item {b} must be a dict with keys 'stim' and 'response' (and 'meta'), got {type(item).__name__}"
                + (f" with keys {sorted(item)}" if isinstance(item, dict) else "")
                + "."
            )
    first_stim, first_response = items[0]["stim"], items[0]["response"]
    for b, item in enumerate(items):
        stim, response = item["stim"], item["response"]
        if not isinstance(stim, Tensor) or not isinstance(response, Tensor):
            raise ValueError(f"item {b}: 'stim' and 'response' must be tensors, got {type(stim).__name__} and {type(response).__name__}.")
        if stim.ndim not in (2, 3) or stim.shape[:-1] != first_stim.shape[:-1]:
            raise ValueError(
                f"item {b} has a stimulus of shape {_shape(stim)} but item 0 has {_shape(first_stim)}; "
                "expected the same (F, T) or (C, F, T) layout up to T."
            )
        if response.ndim != 3 or response.shape[0] != first_response.shape[0] or response.shape[-1] != stim.shape[-1]:
            raise ValueError(
                f"item {b} has responses of shape {_shape(response)} for a stimulus of shape {_shape(stim)} "
                f"(item 0: {_shape(first_response)}); expected ({first_response.shape[0]}, R, {stim.shape[-1]})."
            )
    bins = max(int(item["stim"].shape[-1]) for item in items)
    repeats = max(int(item["response"].shape[1]) for item in items)
    n = len(items)
    stims = first_stim.new_zeros((n,) + tuple(first_stim.shape[:-1]) + (bins,))
    responses = first_response.new_full((n, first_response.shape[0], repeats, bins), float("nan"))
    for b, item in enumerate(items):
        stim, response = item["stim"], item["response"]
        stims[b, ..., : stim.shape[-1]] = stim
        responses[b, :, : response.shape[1], : response.shape[2]] = response
    meta: List[Dict[str, Any]] = [item.get("meta", {}) for item in items]
    batch = {"stims": stims, "responses": responses, "valid_mask": ~responses.isnan(), "meta": meta}
    summarised = ["repeat_stats" in item for item in items]
    if any(summarised):
        if not all(summarised):
            raise ValueError(f"items {[b for b, s in enumerate(summarised) if not s][:4]} hold every repeat but others hold "
                             "their summary ('repeat_stats'); a batch takes items of one kind.")
        batch["repeat_stats"] = RepeatStatistics(*(torch.stack(fields) for fields in zip(*(item["repeat_stats"] for item in items))))
    return batch


def recorded_responses(batch: Dict[str, Any]) -> Tensor:
    """A batch's ``responses`` with NaN wherever its ``valid_mask`` is False.

    The loaders build ``valid_mask = ~isnan(responses)``, so this is the
    responses themselves; a caller that clears entries of the mask (to leave
    out onset bins, or a bad repeat) gets them treated as not recorded by every
    loss and metric that reads the result.
    """
    responses = batch["responses"]
    mask = batch.get("valid_mask")
    if mask is None:
        return responses
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != responses.shape:
        shape = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(
            f"batch['valid_mask'] must be a bool tensor of the responses' shape {tuple(responses.shape)}, got {shape}."
        )
    return responses.masked_fill(~mask, float("nan"))


def metric_responses(batch: Dict[str, Any]):
    """What a metric reads of a batch: its responses, or for a summarised batch its
    :py:class:`~strfsolver.metrics.SummarisedResponses` (PSTH and repeat statistics).

    Every built-in metric takes either (:py:meth:`~strfsolver.metrics.MetricAccumulator.update`);
    a summarised batch's ``responses`` alone is its PSTH, one repeat, from which no
    noise ceiling can be estimated, so code that scores a batch passes this instead.
    """
    responses = recorded_responses(batch)
    stats = batch.get("repeat_stats")
    if stats is None:
        return responses
    return SummarisedResponses(responses, stats.to(responses.device)).check()
