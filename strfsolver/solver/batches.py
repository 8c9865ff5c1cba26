"""Batches on their way into a model: device, dtype, masked responses, sequence starts.

Every path that feeds a model (a training step, a validation pass, a
prediction) prepares batches the same way, with these functions, so a batch
is never read in two ways.
"""

from __future__ import annotations

from typing import Any, Dict

import torch
from torch import Tensor, nn

from strfsolver.data import check_batch, recorded_responses

__all__ = ["model_dtype", "to_device", "prepare_batch", "begin_sequence", "recorded_bins", "PREPARED"]

#: the key a prepared batch carries, so that preparing it again costs nothing
PREPARED = "_prepared"


def model_dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype of the model's first parameter (float32 for a model without one)."""
    first = next(iter(model.parameters()), None)
    return first.dtype if first is not None and first.is_floating_point() else torch.float32


def to_device(batch: Dict[str, Any], device: torch.device) -> Dict[str, Any]:
    """A copy of the batch dict with its tensors on ``device`` (tensors already there are not copied)."""
    check_batch(batch)
    moved = dict(batch)
    for key, value in batch.items():
        if isinstance(value, Tensor) and value.device != device:
            moved[key] = value.to(device, non_blocking=True)
    return moved


def prepare_batch(batch: Dict[str, Any], device: torch.device, dtype: torch.dtype) -> Dict[str, Any]:
    """The batch on ``device``, floating stimuli in ``dtype``, and ``responses`` NaN wherever
    ``valid_mask`` clears them (docs/conventions.md §1).

    A prepared batch carries :data:`PREPARED`; preparing it again returns it as it is.
    """
    if isinstance(batch, dict) and batch.get(PREPARED):
        return batch
    batch = to_device(batch, device)
    stims = batch["stims"]
    if stims.is_floating_point() and stims.dtype != dtype:
        batch["stims"] = stims.to(dtype)  # a float64 model gets float64 stimuli
    if "responses" in batch:
        batch["responses"] = recorded_responses(batch)
    batch[PREPARED] = True
    return batch


def begin_sequence(model: nn.Module) -> None:
    """Begin one forward pass over a batch of whole stimuli: a step's, a validation's and a transform's.

    Resets a stateful (recurrent) model: the batch's stimuli are unrelated to the previous
    batch's, so each starts from a fresh state. Drops the parameter casts that an enclosing
    ``torch.autocast`` holds: autocast caches its low-precision copy of each parameter until
    its region ends, and the parameters change in place between forwards (an optimizer step,
    a loaded best state), so a fit run inside one region trained on the weights of its first
    batch (a ``"cnn2d"`` under bf16 autocast: validation ``cc_norm`` frozen at its first value).
    Within one forward the cache still serves (a recurrent model reuses its weights per bin).
    The in-place writes outside a step (the best state at the end of a fit, a loaded state, a
    ridge solution) drop the cache too, so a caller's own forward after them is current.
    """
    torch.clear_autocast_cache()
    reset = getattr(model, "reset_state", None)
    if callable(reset):
        reset()


def recorded_bins(responses: Tensor) -> Tensor:
    """``(B, N, 1, T)`` bool: the bins of a prepared batch's ``(B, N, R, T)`` responses (or PSTH) that
    some repeat recorded; padding and cleared entries, NaN there, are out. It masks the predictions
    the same way wherever they are summarised (the activity penalty, the epoch's prediction statistics)."""
    # NaN is the one mark of "not recorded" (datasets refuse infinities); x == x tests it several times
    # faster than isfinite() on the CPU, which matters at every step
    recorded = responses == responses
    return recorded if recorded.shape[2] == 1 else recorded.any(dim=2, keepdim=True)
