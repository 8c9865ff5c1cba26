"""Per-neuron learning curves: every evaluated epoch's per-neuron values, kept as ``(epochs, N)`` tensors.

The epoch dicts of :py:attr:`~strfsolver.solver.Solver.log` hold the mean
over neurons, which hides a neuron that peaks early while the population
mean still rises. A fit therefore also keeps, for every validated epoch,
the ``(N,)`` values of each metric (and of the per-neuron loss, where the
criterion gives one) in its training state, so they are saved in every
checkpoint and survive a resume:

    ``{"epoch": (E,) long, "val_<metric>": (E, N) float64, ..., "val_loss": (E, N)}``

``epoch`` follows the numbering of the epoch dicts; ``-1`` is the evaluation
of the initial model that ``fit(..., validate_initial=True)`` asks for.
:py:attr:`~strfsolver.solver.Solver.history_neurons_` returns a copy.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import torch
from torch import Tensor

__all__ = ["per_neuron_values", "append_epoch", "long_form_rows"]


def per_neuron_values(validation: Mapping[str, Any], metrics: Iterable[str]) -> Dict[str, Tensor]:
    """The ``(N,)`` values of one validation, keyed as in the epoch dicts (``val_<metric>``, ``val_loss``)."""
    values = {f"val_{name}": validation[name] for name in metrics}
    if validation.get("neuron_loss") is not None:
        values["val_loss"] = validation["neuron_loss"]
    return {key: torch.as_tensor(value).detach().to("cpu", torch.float64).reshape(-1) for key, value in values.items()}


def append_epoch(history: Optional[Dict[str, Tensor]], epoch: int, values: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """``history`` with one more row (a new dict; ``None`` starts one).

    Raises:
        ValueError: if the keys or the number of neurons differ from the rows before.
    """
    row = {"epoch": torch.tensor([epoch], dtype=torch.long)}
    row.update({key: value.reshape(1, -1) for key, value in values.items()})
    if not history:
        return row
    if set(history) != set(row):
        raise ValueError(f"the per-neuron history has {sorted(history)} but this epoch gives {sorted(row)}.")
    for key, value in row.items():
        if value.shape[1:] != history[key].shape[1:]:
            raise ValueError(f"the per-neuron history's {key!r} has {history[key].shape[1]} neurons, this epoch {value.shape[1]}.")
    return {key: torch.cat([history[key], row[key]]) for key in history}


def long_form_rows(epoch: int, values: Mapping[str, Tensor]) -> List[Tuple[int, int, str, float]]:
    """``(epoch, neuron, metric, value)`` tuples of one epoch, metric by metric, neurons in order."""
    rows: List[Tuple[int, int, str, float]] = []
    for metric, tensor in values.items():
        rows.extend((epoch, neuron, metric, value) for neuron, value in enumerate(tensor.tolist()))
    return rows
