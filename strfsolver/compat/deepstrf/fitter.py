"""deepSTRF's ``Fitter``, as a translation onto the ``"population"`` and ``"per-cell-best"`` solvers.

``Fitter(model, train_loader, val_loader, loss_fn=, val_metrics=, ckpt_path=, log_fn=,
track_per_cell_best=, ...)`` takes deepSTRF's arguments with deepSTRF's
defaults, and ``fit()`` returns deepSTRF's history: one dict per epoch with
``epoch``, ``train_loss`` and ``val_loss`` (floats) and ``val_<metric>`` (and,
with ``track_train_metrics``, ``train_<metric>``) as per-neuron ``(N,)``
tensors. The training itself is the registered solver's; what differs from a
plain ``strfsolver.solver.init("population", ...)`` is only what deepSTRF
does otherwise by default, set here explicitly:

- the optimizer is ``AdamW(lr=1e-3, weight_decay=1e-4)``, with no learning-rate
  decay on a plateau (``plateau_patience=0``);
- the stimuli are fed as they are (``standardize=False``), without a progress bar;
- ``max_epochs=1000``, ``patience=10``, ``monitor="val_cc_norm"``;
- with ``ckpt_path``, the best state (a plain ``state_dict``, ``torch.save``)
  is written to that file at every improvement; without ``track_per_cell_best``
  it is the state the model ends in (the solver keeps and restores the same
  state); with it, the model ends in that state with each neuron's readout
  overlaid from its own best epoch, so the file (the population's best state,
  as deepSTRF writes it) and the final model differ;
- with ``track_per_cell_best``, each neuron's readout comes from its own best
  epoch: for a strfsolver model the per-neuron tensors are found as
  ``"per-cell-best"`` finds them; for a deepSTRF-style model, they are the
  tensors of ``model.readout`` whose first axis has ``model.O`` entries;
- ``loss_fn``, ``optimizer`` and ``val_metrics`` may be set as attributes
  after construction, as in deepSTRF: ``fit()`` rebuilds the solver with them;
  ``val_metrics={}`` reports no metrics (monitor ``"val_loss"`` then).
"""

from __future__ import annotations

import functools
import io as _bytes_io
import math
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Union

import torch
from torch import Tensor, nn

import strfsolver.solver as _solvers
from strfsolver.losses.functional import mse as mse_loss
from strfsolver.metrics import available_metrics
from strfsolver.models import NeuralModel
from strfsolver.solver.fit_loop import GradientEpoch
from strfsolver.utils import io
from strfsolver.utils.checks import short_repr

__all__ = ["Fitter", "mse_loss", "print_epoch", "to_scalar"]

#: deepSTRF's default validation metrics, built in here (same formulas: Pearson r and Schoppe's cc_norm)
DEFAULT_METRICS = ("cc", "cc_norm")
#: suffix of the internal name of a user metric that has a built-in metric's name (``{"cc": my_cc}``)
#: or contains this suffix (so that two user names never share an internal name)
_OWN = "@val_metrics"
#: internal name of the placeholder metric of ``val_metrics={}`` (no user name maps to it; never reported)
_NONE = _OWN


def to_scalar(value: Any) -> float:
    """A per-neuron tensor's ``nanmean`` (deepSTRF's reduction of a monitored value); a number as it is."""
    if isinstance(value, Tensor):
        return math.nan if value.numel() == 0 else float(value.detach().double().nanmean())
    return float(value)


def print_epoch(epoch_dict: Mapping[str, Any]) -> None:
    """deepSTRF's default ``log_fn``: one line ``epoch    3 | train_loss=0.1234 | val_cc=0.5678 | ...``."""
    fields = [f"epoch {int(epoch_dict['epoch']):4d}"]
    fields += [f"{key}={to_scalar(value):.4f}" for key, value in epoch_dict.items() if key != "epoch"]
    print(" | ".join(fields))


def _same(a: tuple, b: tuple) -> bool:
    """``loss_fn``, ``optimizer`` and metric items of two configurations are the same objects."""
    if a[0] is not b[0] or a[1] is not b[1] or (a[2] is None) != (b[2] is None):
        return False
    if a[2] is None:
        return True
    return len(a[2]) == len(b[2]) and all(x[0] == y[0] and x[1] is y[1] for x, y in zip(a[2], b[2]))


def _no_metric(pred: Tensor, responses: Tensor) -> Tensor:
    """The placeholder of ``val_metrics={}``: zeros, one per neuron."""
    return torch.zeros(pred.shape[1], dtype=torch.float64)


class _KeepTrainValues(GradientEpoch):
    """The solver's own training epoch, which also hands its per-neuron training metrics to the Fitter."""

    def __init__(self, sink: Dict[str, Tensor]):
        self.sink = sink

    def __call__(self, loop, batches, epoch):
        row, values = super().__call__(loop, batches, epoch)
        self.sink.clear()
        self.sink.update(values)
        return row, values


class Fitter:
    """deepSTRF's training loop, run by a registered strfsolver solver.

    Args:
        model: Any ``nn.Module`` mapping a batch's ``stims`` to ``(B, N, 1, T)``.
        train_loader, val_loader: Loaders of batch dicts (``stims``, ``responses``), e.g.
            :py:func:`strfsolver.data.make_loader` or a ``DataLoader`` with ``neural_collate``.
        loss_fn: ``(pred, responses) -> scalar``; default :py:func:`mse_loss` (the ``"mse"`` loss).
        val_metrics: ``{name: fn(pred, responses) -> (N,)}``, evaluated on the whole NaN-padded
            validation set; default deepSTRF's ``cc`` and ``cc_norm`` (the built-in metrics).
        optimizer: A ``torch.optim.Optimizer``; default ``AdamW(lr=1e-3, weight_decay=1e-4)``.
        device: Where to train (default ``"cpu"``, as deepSTRF).
        max_epochs, patience, monitor, mode: Early stopping, as in deepSTRF (the monitored
            value is the ``nanmean`` over neurons; ``patience`` counts epochs without improvement).
        ckpt_path: File for the best ``state_dict`` (``torch.save``), written at every improvement
            (the model's final state unless ``track_per_cell_best`` overlays each neuron's own best).
        log_fn: ``log_fn(epoch_dict)`` after every epoch (default :py:func:`print_epoch`).
        track_train_metrics: Also compute ``val_metrics`` on each epoch's training predictions.
        track_per_cell_best: Each neuron's readout from its own best epoch (``"per-cell-best"``).

    Attributes: ``solver`` (the registered solver doing the work), ``optimizer`` (the one it
    uses), ``history`` (the last fit's epoch dicts) and the arguments; ``loss_fn``, ``optimizer``
    and ``val_metrics`` set after construction are taken by the next ``fit()``.
    """

    def __init__(
        self,
        model: nn.Module,
        train_loader: Any,
        val_loader: Any,
        *,
        loss_fn: Callable[[Tensor, Tensor], Tensor] = mse_loss,
        val_metrics: Optional[Dict[str, Callable[[Tensor, Tensor], Tensor]]] = None,
        optimizer: Optional[torch.optim.Optimizer] = None,
        device: Union[str, torch.device] = "cpu",
        max_epochs: int = 1000,
        patience: int = 10,
        monitor: str = "val_cc_norm",
        mode: str = "max",
        ckpt_path: Optional[Union[str, Path]] = None,
        log_fn: Callable[[Mapping[str, Any]], None] = print_epoch,
        track_train_metrics: bool = True,
        track_per_cell_best: bool = False,
    ) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {short_repr(mode)}.")
        if not callable(log_fn):
            raise ValueError(f"log_fn must be a callable epoch_dict -> None, got {short_repr(log_fn)}.")
        if val_metrics is not None and not isinstance(val_metrics, Mapping):
            raise ValueError(f"val_metrics must be a dict name -> callable(pred, responses) -> (N,), got {short_repr(val_metrics)}.")
        self.device = torch.device(device)
        self.model = model.to(self.device) if isinstance(model, nn.Module) else model
        self.train_loader, self.val_loader = train_loader, val_loader
        self.loss_fn, self.log_fn = loss_fn, log_fn
        self.val_metrics = dict(val_metrics) if val_metrics is not None else None
        self.max_epochs, self.patience, self.monitor, self.mode = max_epochs, patience, monitor, mode
        self.ckpt_path = None if ckpt_path is None else Path(ckpt_path)
        self.track_train_metrics, self.track_per_cell_best = track_train_metrics, track_per_cell_best
        self.history: List[Dict[str, Any]] = []
        self._train_values: Dict[str, Tensor] = {}
        self.optimizer = optimizer
        self._built_with: Optional[tuple] = None
        self._ensure_solver()

    # --- deepSTRF's hooks: override in a subclass, as there -------------------
    def compute_loss(self, pred: Tensor, responses: Tensor) -> Tensor:
        """The training loss of a batch (default ``loss_fn(pred, responses)``)."""
        return self.loss_fn(pred, responses)

    def on_epoch_end(self, epoch: int, epoch_dict: Dict[str, Any]) -> None:
        """Called after every epoch with its dict (default: ``log_fn(epoch_dict)``)."""
        self.log_fn(epoch_dict)

    # --- deepSTRF's calls -----------------------------------------------------
    def fit(self) -> List[Dict[str, Any]]:
        """Train until ``max_epochs`` or early stopping; the model ends in its best state.

        Returns:
            One dict per epoch: ``epoch``, ``train_loss``, ``val_loss`` (floats),
            ``val_<metric>`` and with ``track_train_metrics`` ``train_<metric>``
            (``(N,)`` tensors on the CPU).
        """
        # deepSTRF reads its attributes at fit time: a changed loss_fn, optimizer or val_metrics rebuilds the solver
        solver = self._ensure_solver()
        keys = ["train_loss", "val_loss"] + [f"{split}_{name}" for split in ("val", "train") for name in self._names
                                              if split == "val" or self.track_train_metrics]
        if self.monitor not in keys:  # deepSTRF's KeyError, before the first epoch rather than after it
            raise KeyError(f"monitor key {short_repr(self.monitor)} not in epoch dict; available keys: {sorted(keys)}")
        solver.patience, solver.track_train_metrics = self.patience, self.track_train_metrics
        solver.monitor, solver.mode = self._internal_key(self.monitor), self.mode
        self.history = []
        solver.fit(self.train_loader, self.val_loader, max_epochs=self.max_epochs)
        return self.history

    def evaluate(self, loader: Any) -> Dict[str, Any]:
        """Loss and metrics on a loader, without a prefix: ``{"loss": float, <metric>: (N,)}``."""
        values = self.solver.validation(loader)
        return {"loss": float(values["loss"]), **{name: values[internal] for name, internal in self._names.items()}}

    # --- translation ----------------------------------------------------------
    def _metric_names(self) -> Dict[str, str]:
        """deepSTRF's metric name -> the solver's (a user's ``cc`` is not the built-in ``cc``).

        One-to-one: a user name that is built in or contains ``_OWN`` gets ``_OWN`` appended, any other is
        kept; a kept name has no ``_OWN``, so it never equals an appended one, and no name maps to ``_NONE``.
        """
        if self.val_metrics is None:
            return {name: name for name in DEFAULT_METRICS}
        builtin = set(available_metrics())
        return {name: f"{name}{_OWN}" if name in builtin or _OWN in name else name for name in self.val_metrics}

    def _configuration(self) -> tuple:
        """What the solver is built from and deepSTRF reads at fit time (compared by identity)."""
        metrics = None if self.val_metrics is None else tuple(self.val_metrics.items())
        return (self.loss_fn, self.optimizer, metrics)

    def _ensure_solver(self):
        """The solver, (re)built when ``loss_fn``, ``optimizer`` or ``val_metrics`` differ from its build's."""
        now = self._configuration()
        if self._built_with is not None and _same(now, self._built_with):
            return self.solver
        if not callable(self.loss_fn):
            raise ValueError(f"loss_fn must be a callable (pred, responses) -> loss, got {short_repr(self.loss_fn)}.")
        if self.val_metrics is not None:
            if not isinstance(self.val_metrics, Mapping):
                raise ValueError(f"val_metrics must be a dict name -> callable(pred, responses) -> (N,), got {short_repr(self.val_metrics)}.")
            for name, function in self.val_metrics.items():
                if not isinstance(name, str) or not name:
                    raise ValueError(f"val_metrics: every metric name must be a non-empty string, got {short_repr(name)}.")
                if not callable(function):
                    raise ValueError(f"val_metrics: {short_repr(name)} must map to a callable (pred, responses) -> (N,), got {short_repr(function)}.")
        self._names = self._metric_names()
        self.solver = self._build_solver(self.optimizer)
        self.optimizer = self.solver.ensure_optimizer()  # the optimizer actually used (AdamW built here when None)
        self._built_with = self._configuration()
        return self.solver

    def _internal_key(self, key: str) -> str:
        for prefix in ("val_", "train_"):
            if isinstance(key, str) and key.startswith(prefix) and key[len(prefix):] in self._names:
                return prefix + self._names[key[len(prefix):]]
        return key

    def _build_solver(self, optimizer: Optional[torch.optim.Optimizer]):
        if self.val_metrics is None:
            metrics: Any = DEFAULT_METRICS
        elif not self.val_metrics:  # deepSTRF's "no metrics": the solver needs one, a placeholder never reported
            metrics = {_NONE: _no_metric}
        else:
            metrics = {self._names[name]: function for name, function in self.val_metrics.items()}
        default_loss = self.loss_fn is mse_loss and type(self).compute_loss is Fitter.compute_loss
        options = dict(
            model=self.model,
            # the built-in "mse" is the same loss and lets the solver train on PSTHs; anything else goes through compute_loss
            criterion="mse" if default_loss else self.compute_loss,
            optimizer=optimizer, lr=1e-3, weight_decay=1e-4, metrics=metrics, device=self.device,
            max_epochs=self.max_epochs, patience=self.patience, monitor=self._internal_key(self.monitor), mode=self.mode,
            plateau_patience=0, track_train_metrics=self.track_train_metrics, standardize=False, progress=False,
            loggers=[self._relay],
        )
        if self.track_per_cell_best:
            solver = _solvers.init("per-cell-best", neuron_parameters=self._readout_tensors(), **options)
        else:
            solver = _solvers.init("population", **options)
        # the solver's own epoch, which also passes its per-neuron training metrics (deepSTRF's train_<metric> tensors)
        solver.epoch_runner = functools.partial(_KeepTrainValues, self._train_values)
        return solver

    def _readout_tensors(self) -> Optional[Dict[str, int]]:
        """``neuron_parameters`` for ``"per-cell-best"``: ``None`` (found by the solver) for a strfsolver
        model; deepSTRF's rule otherwise: the tensors of ``model.readout`` whose first axis has ``model.O`` entries."""
        if isinstance(self.model, NeuralModel):
            return None
        readout, n_neurons = getattr(self.model, "readout", None), getattr(self.model, "O", None)
        if not isinstance(readout, nn.Module) or isinstance(n_neurons, bool) or not isinstance(n_neurons, int):
            raise ValueError(
                f"track_per_cell_best=True needs a strfsolver NeuralModel or a deepSTRF-style model with a readout module "
                f"(model.readout) and its number of neurons (model.O); {type(self.model).__name__} has "
                f"readout={type(readout).__name__}, O={short_repr(n_neurons)}."
            )
        own = {f"readout.{name}": 0 for name, tensor in readout.state_dict().items() if tensor.dim() >= 1 and tensor.shape[0] == n_neurons}
        if not own:
            raise ValueError(f"track_per_cell_best=True: no tensor of model.readout has a first axis of model.O = {n_neurons} entries.")
        return own

    def _relay(self, row: Dict[str, Any]) -> None:
        """The solver's epoch dict -> deepSTRF's (per-neuron tensors), to ``on_epoch_end``; then the checkpoint."""
        solver = self.solver
        epoch_dict: Dict[str, Any] = {"epoch": row["epoch"], "train_loss": row["train_loss"]}
        if self.track_train_metrics:
            epoch_dict.update({f"train_{name}": self._train_values[internal].clone() for name, internal in self._names.items()})
        if "val_loss" in row:
            validation = solver.last_validation_
            epoch_dict["val_loss"] = row["val_loss"]
            epoch_dict.update({f"val_{name}": validation[internal].clone() for name, internal in self._names.items()})
        self.history.append(epoch_dict)
        self.on_epoch_end(row["epoch"], epoch_dict)
        if self.ckpt_path is not None and solver.training_state_.best_epoch == row["epoch"]:
            # this epoch improved on the monitor: the model holds the best state so far, as deepSTRF saves it
            buffer = _bytes_io.BytesIO()
            torch.save(solver.model.state_dict(), buffer)
            io.atomic_write_bytes(self.ckpt_path, buffer.getvalue())
