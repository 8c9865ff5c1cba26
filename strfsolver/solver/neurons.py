"""Per-neuron bookkeeping shared by the solvers that treat each neuron on its own.

- :py:func:`neuron_losses`: a criterion's ``(N,)`` values, one per neuron,
  with the number of valid bins each was computed on.
- :py:class:`NeuronLossMean`: those values averaged over batches by their
  bin counts, so the result is the loss of the concatenated data whatever
  the batch size, and a neuron missing from some batches is scored on the
  others (not NaN).
- :py:class:`NeuronTracker`: each neuron's best monitored value, patience
  counter and best state, in one of two modes: ``"freeze"`` (a neuron whose
  patience runs out stops training and is held at its best state:
  ``"single-cell"``) or ``"snapshot"`` (every neuron keeps training; its best
  slice of the per-neuron tensors is restored at the end: ``"per-cell-best"``).

Everything is vectorised over neurons (masks and ``torch.where``, no loop
over N) and lives on the model's device.

Per-neuron learning curves (every validated epoch's (N,) values, kept in the training
state and every checkpoint: :py:func:`per_neuron_values`, :py:func:`append_epoch`, :py:func:`long_form_rows`) are here too.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

import torch
from torch import Tensor, nn
from torch.func import vmap

from strfsolver.utils.checks import short_repr
from strfsolver.metrics import psth
from strfsolver.solver.state import NeuronTrainingState

__all__ = ["neuron_losses", "bin_counts", "NeuronLossMean", "NeuronTracker", "scores_of", "TRACKER_MODES", "per_neuron_values", "append_epoch", "long_form_rows"]

TRACKER_MODES = ("freeze", "snapshot")


def _along(mask: Tensor, like: Tensor, axis: int = 0) -> Tensor:
    """``mask`` (N,) shaped to broadcast against ``like`` along ``axis``."""
    shape = [1] * like.dim()
    shape[axis] = mask.shape[0]
    return mask.to(like.device).view(shape)


def bin_counts(responses: Tensor) -> Tensor:
    """``(N,)`` number of valid ``(stimulus, bin)`` positions of each neuron in a batch (non-NaN PSTH)."""
    target = responses if responses.shape[2] == 1 else psth(responses)
    return (~target.isnan()).sum(dim=(0, 2, 3))


def neuron_losses(criterion: Callable[..., Tensor], pred: Tensor, responses: Tensor) -> Tensor:
    """``(N,)`` criterion of each neuron alone (NaN for a neuron without valid bins).

    A criterion with a ``reduction`` attribute (the registered losses) is
    called with ``reduction="none"``; another callable is vmapped over the
    neuron axis, each call seeing one neuron as a population of one.

    Raises:
        ValueError: if the criterion can give no per-neuron values.
    """
    reduction = getattr(criterion, "reduction", None)
    if isinstance(reduction, str):
        criterion.reduction = "none"
        try:
            values = criterion(pred, responses)
        finally:
            criterion.reduction = reduction
    else:
        try:
            values = vmap(lambda p, r: criterion(p.unsqueeze(1), r.unsqueeze(1)), in_dims=(1, 1))(pred, responses)
        except RuntimeError as error:
            raise ValueError(
                f"the criterion {short_repr(criterion)} has no 'reduction' attribute and could not be vmapped over neurons "
                f"({error}); give it reduction='none' support (per-neuron values) to use a per-neuron solver."
            ) from None
    n_neurons = pred.shape[1]
    if not isinstance(values, Tensor) or tuple(values.shape) != (n_neurons,):
        shape = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
        raise ValueError(f"the per-neuron criterion returned {shape}; expected ({n_neurons},) values.")
    return values


class NeuronLossMean:
    """Per-neuron losses of many batches, averaged by each neuron's valid bins.

    For a loss that is a mean over a neuron's valid bins (``mse``,
    ``poisson``), the result is that neuron's loss on all the batches
    concatenated, the same for any batch size. A neuron without valid bins in
    a batch skips that batch; one without any gets NaN.
    """

    def __init__(self):
        self.total: Optional[Tensor] = None
        self.count: Optional[Tensor] = None

    @torch.no_grad()
    def update(self, values: Tensor, counts: Tensor) -> None:
        """Add a batch's ``(N,)`` per-neuron losses and their ``(N,)`` bin counts."""
        counts = counts.to(values.device, torch.float64)
        has = counts > 0
        add = torch.where(has, values.detach().double(), 0.0) * counts
        if self.total is None:
            self.total, self.count = add, counts
        else:
            self.total, self.count = self.total + add, self.count + counts

    def compute(self) -> Optional[Tensor]:
        """``(N,)`` float64 means, NaN for a neuron never seen; ``None`` before any update."""
        if self.total is None:
            return None
        return torch.where(self.count > 0, self.total / self.count.clamp(min=1), torch.nan)


class NeuronTracker:
    """Each neuron's best monitored value, patience and best state.

    Args:
        mode: ``"freeze"`` or ``"snapshot"`` (see the module documentation).
        improves: ``improves(scores, best, best_epoch) -> (N,) bool``, the
            early-stopping rule applied to every neuron at once.
        patience: Evaluated epochs without improvement before a neuron is
            frozen (``"freeze"`` only); ``None`` never freezes.
        axes: ``{state_dict name: neuron axis}`` of the tensors that belong
            to the neurons (a frozen stack has every tensor on axis 0).
    """

    def __init__(self, mode: str, improves: Callable[[Tensor, Tensor, Tensor], Tensor], patience: Optional[int], axes: Dict[str, int]):
        if mode not in TRACKER_MODES:
            raise ValueError(f"mode must be one of {TRACKER_MODES}, got {short_repr(mode)}.")
        self.mode, self.improves, self.patience, self.axes = mode, improves, patience, dict(axes)

    def _start(self, state: NeuronTrainingState, model: nn.Module, n_neurons: int) -> None:
        device = next(iter(model.state_dict().values())).device
        state.neuron_best_score = torch.full((n_neurons,), torch.nan, dtype=torch.float64, device=device)
        state.neuron_best_epoch = torch.full((n_neurons,), -1, dtype=torch.long, device=device)
        state.neuron_bad_epochs = torch.zeros(n_neurons, dtype=torch.long, device=device)
        state.neuron_stopped_epoch = torch.full((n_neurons,), -1, dtype=torch.long, device=device)
        current = model.state_dict()
        state.neuron_best_model = {name: current[name].detach().clone() for name in self.axes}

    def active(self, state: NeuronTrainingState) -> Optional[Tensor]:
        """``(N,)`` bool mask of the neurons still training, or ``None`` while every neuron is."""
        stopped = state.neuron_stopped_epoch
        if stopped is None:
            return None
        active = stopped < 0
        return None if bool(active.all()) else active

    @torch.no_grad()
    def update(self, state: NeuronTrainingState, scores: Tensor, epoch: int, model: nn.Module) -> Dict[str, int]:
        """Take an evaluated epoch's ``(N,)`` monitored values; returns the epoch dict's additions.

        Improved neurons get a new best state; in ``"freeze"`` mode, neurons
        whose patience ran out are frozen at their best and the fit is over
        once every neuron is (``state.stopped``).
        """
        if state.neuron_best_score is None:
            self._start(state, model, int(scores.shape[0]))
        scores = scores.to(state.neuron_best_score.device, torch.float64)
        stopped = state.neuron_stopped_epoch
        active = stopped < 0
        improved = self.improves(scores, state.neuron_best_score, state.neuron_best_epoch) & active
        state.neuron_best_score = torch.where(improved, scores, state.neuron_best_score)
        state.neuron_best_epoch = torch.where(improved, epoch, state.neuron_best_epoch)
        current, best = model.state_dict(), state.neuron_best_model
        for name, axis in self.axes.items():
            best[name] = torch.where(_along(improved, current[name], axis), current[name].detach(), best[name])
        state.neuron_bad_epochs = torch.where(improved, 0, state.neuron_bad_epochs + active.long())
        row = {"n_improved": int(improved.sum())}
        if self.mode == "freeze":
            newly = torch.zeros_like(active)
            if self.patience is not None:
                newly = active & (state.neuron_bad_epochs >= self.patience)
                state.neuron_stopped_epoch = torch.where(newly, epoch, stopped)
                if bool(newly.any()):
                    # a frozen neuron shows its best state from now on
                    self._overlay(model, best, newly)
                if bool((state.neuron_stopped_epoch >= 0).all()):
                    state.stopped, state.stop_reason = True, "all neurons stopped"
            row.update(n_active=int((state.neuron_stopped_epoch < 0).sum()), n_stopped=int(newly.sum()))
        return row

    @torch.no_grad()
    def hold(self, state: NeuronTrainingState, model: nn.Module) -> None:
        """Put frozen neurons back to their best state (after an optimizer step moved them)."""
        active = self.active(state)
        if self.mode == "freeze" and active is not None:
            self._overlay(model, state.neuron_best_model, ~active)

    @torch.no_grad()
    def restore(self, state: NeuronTrainingState, model: nn.Module) -> None:
        """Give every neuron its best state (on top of the model's current state)."""
        if state.neuron_best_model is not None:
            model.load_state_dict(state.neuron_best_model, strict=False)

    def _overlay(self, model: nn.Module, values: Dict[str, Tensor], mask: Tensor) -> None:
        current = model.state_dict()
        for name, axis in self.axes.items():
            current[name].copy_(torch.where(_along(mask, current[name], axis), values[name], current[name]))


def scores_of(monitor: str, validation: Optional[Dict[str, Any]], training: Dict[str, Tensor]) -> Tuple[Tensor, str]:
    """The ``(N,)`` values of ``monitor`` (``val_<x>`` or ``train_<x>``) for the epoch just evaluated.

    Raises:
        KeyError: if the monitor has no per-neuron values.
    """
    prefix, _, key = monitor.partition("_")
    source = (validation or {}) if prefix == "val" else training if prefix == "train" else {}
    key = "neuron_loss" if key == "loss" else key
    if key not in source:
        raise KeyError(
            f"monitor {short_repr(monitor)} has no per-neuron values; a per-neuron solver monitors val_loss, train_loss "
            "or a per-neuron metric (val_<metric>, or train_<metric> with track_train_metrics=True)."
        )
    return source[key].detach().reshape(-1), key


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
            raise ValueError(f"the per-neuron history's {short_repr(key)} has {history[key].shape[1]} neurons, this epoch {value.shape[1]}.")
    return {key: torch.cat([history[key], row[key]]) for key in history}


def long_form_rows(epoch: int, values: Mapping[str, Tensor]) -> List[Tuple[int, int, str, float]]:
    """``(epoch, neuron, metric, value)`` tuples of one epoch, metric by metric, neurons in order."""
    rows: List[Tuple[int, int, str, float]] = []
    for metric, tensor in values.items():
        rows.extend((epoch, neuron, metric, value) for neuron, value in enumerate(tensor.tolist()))
    return rows
