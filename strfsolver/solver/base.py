"""The abstract :py:class:`Solver`: a model, a criterion, an optimizer and one training loop.

A concrete solver says how a batch becomes a prediction
(:py:meth:`Solver._inference`). The other hooks a subclass may override are
declared here with their contracts: :py:meth:`Solver._loss` (the data loss of
a prediction), :py:meth:`Solver.step` (one update; it calls the two above),
:py:meth:`Solver._tracker` (per-neuron early stopping),
:py:meth:`Solver.validation`, :py:meth:`Solver.transform`,
:py:meth:`Solver.state_dict` / :py:meth:`Solver.load_state_dict` and
:py:meth:`Solver.on_epoch_end`. A solver whose hooks read every repeat of
``batch["responses"]`` sets ``reads_repeats = True``; otherwise :py:meth:`fit`
trains on PSTHs and caches validation statistics (:py:mod:`strfsolver.data.views`).

:py:meth:`Solver.fit` is the sequence of the loop's parts
(:py:mod:`strfsolver.solver.loop`): schedules, steps, validation, early
stopping, per-neuron tracking, history, loggers, checkpoints. Its state
between epochs is a typed :py:class:`~strfsolver.solver.state.TrainingState`.
See ``docs/solver.md``.
"""

from __future__ import annotations

import abc
import math
import time
import warnings
from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, Iterable, List, Optional, Sequence, Tuple, Type, Union

import numpy as np
import torch
from literate_dataclasses import dataclass, field
from torch import Tensor, nn

from strfsolver import losses as _losses
from strfsolver.utils import seeding as _random
from strfsolver.utils.checks import all_finite, check_count, check_real
from strfsolver.data import PaddedLoader, ValidationCache, check_batch, recorded_responses
from strfsolver.solver import checkpoint as _checkpoint
from strfsolver.solver import penalties as _penalties
from strfsolver.solver import schedules as _schedules
from strfsolver.solver import evaluation as _evaluation
from strfsolver.solver.data_checks import check_lags_fit_stimuli
from strfsolver.solver.logdir import claim_logdir
from strfsolver.solver.resume_options import recorded_options, warn_changed_options
from strfsolver.solver.custom_metrics import split_metrics
from strfsolver.solver import neuron_history as _neuron_history
from strfsolver.solver import recovery as _recovery
from strfsolver.solver import closure as _closure
from strfsolver.solver import aliases as _aliases
from strfsolver.solver.loop import (
    MODES, CheckpointWriter, EarlyStopping, Reporter, ScheduleRunner, check_monitor_key, copy_state, resolve_monitor, train_epoch,
)
from strfsolver.solver.diagnostics import FitWarning, diagnose
from strfsolver.solver.neurons import NeuronTracker, scores_of
from strfsolver.solver.state import TrainingState

__all__ = ["Solver", "DEFAULT_LR"]

Batch = Dict[str, Any]

#: learning rate of the default optimizer for a model that declares no ``default_lr``
DEFAULT_LR = 3e-3


def _solver_dataclass(cls):
    # eq=False: solvers compare (and hash) by identity, like the modules they hold
    return dataclass(cls, eq=False)


def _update_overflow(optimizer: torch.optim.Optimizer) -> Optional[str]:
    """Run ``optimizer.step()``; the cause of divergence when its update overflowed, else ``None``."""
    try:
        optimizer.step()
    except RuntimeError as error:
        # e.g. lr=1e38: Adam's step size lr / (1 - beta1) is beyond float32 and torch refuses it
        if "overflow" not in str(error):
            raise
        return f"the optimizer's update overflowed ({error}; lr={optimizer.param_groups[0]['lr']:g})"
    return None


def _nanmean(values: Tensor) -> float:
    # nanmean is NaN for an empty or all-NaN tensor already
    return float(values.detach().nanmean())


@_solver_dataclass
class Solver(abc.ABC):
    """Fit a model to neural responses, batch by batch, with early stopping.

    A solver is built from a model and options, then :py:meth:`fit` on
    loaders of batch dicts (``stims``, ``responses``, ``valid_mask``,
    ``meta``; see :py:func:`strfsolver.data.make_loader`). Concrete solvers
    are registered by name, e.g. ``strfsolver.solver.init("population",
    model=model)``; a custom one subclasses this class and implements
    :py:meth:`_inference`.

    Epoch dicts (the :py:attr:`log`, one per epoch) hold plain values:
    ``epoch``, ``train_loss`` (the data loss, batch-size weighted mean over
    the epoch's steps), ``train_penalty`` (with penalties), ``train_<metric>``
    (with ``track_train_metrics``), ``val_loss`` and ``val_<metric>`` (on
    validated epochs), ``lr`` (of the first parameter group, during the
    epoch's last step), ``seconds``, and on the last epoch ``stop_reason``
    (``"max_epochs"``, ``"patience"`` or ``"all neurons stopped"``) and, when
    the fit shows a symptom of poor settings, ``diagnosis`` (advice, see
    :py:mod:`strfsolver.solver.diagnostics`). Metric
    values in the dict are the ``nanmean`` over neurons; the per-neuron
    ``(N,)`` tensors of the most recent validation are kept in
    :py:attr:`last_validation_`.

    Args:
        (fields)

    Attributes set while fitting: ``training_state_``
    (:py:class:`~strfsolver.solver.state.TrainingState`), ``best_epoch_``,
    ``best_score_``, ``stop_reason_``, ``diagnosis_`` (a list of advice
    sentences, also warned as :py:class:`~strfsolver.solver.diagnostics.FitWarning`),
    ``last_validation_`` (the dict of the
    last :py:meth:`validation` in :py:meth:`fit`) and ``monitor_`` /
    ``mode_`` (the monitor actually used, see ``monitor``).
    """

    #: Whether the hooks read each repeat of ``batch["responses"]``. When False
    #: (and the criterion does not either), ``fit`` trains on each stimulus'
    #: PSTH, computed once, and caches a fixed-order validation loader's
    #: statistics: the same losses and metrics from R times less data.
    reads_repeats: ClassVar[bool] = False
    #: The training-state class this solver keeps between epochs.
    state_class: ClassVar[Type[TrainingState]] = TrainingState

    model: nn.Module = field(doc="The ``nn.Module`` to fit; ``model(stims)`` gives ``(B, N, 1, T)``.")
    criterion: Union[str, Callable[..., Tensor]] = field(
        default="mse",
        doc="The data loss: a registered name of :py:mod:`strfsolver.losses` (``\"mse\"``, "
        "``\"poisson\"``) or a callable ``criterion(pred, responses) -> scalar``, reduced over neurons.",
    )
    optimizer: Optional[Union[torch.optim.Optimizer, Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]]] = field(
        default=None,
        doc="A ``torch.optim.Optimizer`` over the model's parameters, a factory ``params -> optimizer``, "
        "or ``None`` for ``AdamW(lr=lr, weight_decay=weight_decay)``, built when first needed.",
    )
    lr: Optional[float] = field(
        default=None,
        doc="Learning rate of the default optimizer. ``None``: the model's ``default_lr`` "
        "(:py:attr:`strfsolver.models.NeuralModel.default_lr`: 3e-3, 1e-2 for ``\"nrf\"``, whose hidden "
        "units learn slowly) or :data:`DEFAULT_LR` for a model without one; the rate used is "
        ":py:attr:`lr_` and the ``lr`` of every epoch dict. These defaults were chosen on stimuli of "
        "other families and scales than the package's own (``benchmarks/bench_defaults.py``).",
    )
    weight_decay: float = field(default=1e-4, doc="Decoupled weight decay of the default optimizer.")
    metrics: Any = field(
        default=("cc", "cc_norm"),
        doc="Per-neuron validation metrics: names of :py:class:`strfsolver.metrics.MetricAccumulator` (streamed) "
        "and/or a mapping ``name -> callable(pred, responses) -> (N,)`` evaluated on the whole NaN-padded "
        "validation set (:py:mod:`strfsolver.solver.custom_metrics`); each gives ``val_<name>`` in the epoch "
        "dicts and may be the ``monitor``. Stored as the tuple of names; the callables are in ``metric_functions``.",
    )
    device: Optional[Union[str, torch.device]] = field(
        default=None,
        doc="Where to train; the model is moved there and batches are moved there when they are elsewhere. "
        "``None``: the device of the model's parameters.",
    )
    max_epochs: int = field(default=500, doc="Number of epochs of :py:meth:`fit` unless it is given one (early stopping ends fits).")
    patience: Optional[int] = field(
        default=20,
        doc="Stop after this many evaluated epochs (>= 1) without improvement of ``monitor``; ``None`` never stops early.",
    )
    monitor: str = field(
        default="val_cc_norm",
        doc="Key of the epoch dict that decides the best epoch. Without a validation loader a ``val_<x>`` "
        "monitor falls back to ``train_<x>`` when the epoch dicts have it (``train_loss``, or a tracked "
        "train metric) and otherwise to ``train_loss`` with ``mode=\"min\"``, with a warning.",
    )
    mode: str = field(default="max", doc="``\"max\"``: a larger monitored value is better; ``\"min\"``: smaller.")
    min_delta: float = field(default=0.0, doc="An epoch improves on the best one only if better by more than this (>= 0).")
    plateau_patience: Optional[int] = field(
        default=None,
        doc="Multiply the learning rate by ``lr_decay`` after this many evaluated epochs without improvement "
        "(and again after as many more), before ``patience`` ends the fit. ``None``: ``patience // 2`` (at least 1) "
        "when there is a patience; ``0``: never. Off when a schedule sets the learning rate.",
    )
    lr_decay: float = field(default=0.5, doc="Factor of the learning rate on a plateau (in (0, 1)).")
    schedule: Any = field(
        default=None,
        doc="Hyperparameter schedules (:py:mod:`strfsolver.solver.schedules`): one, a list, or a "
        "``torch.optim.lr_scheduler`` object; ``None`` keeps every hyperparameter fixed.",
    )
    penalties: Sequence[Any] = field(
        default=(),
        doc="Penalties added to the loss (:py:mod:`strfsolver.solver.penalties`): instances, "
        "registered names, or any callable ``penalty(model) -> scalar``.",
    )
    grad_clip: Optional[float] = field(default=None, doc="Clip the gradients' global L2 norm to this value (> 0); ``None``: no clipping.")
    track_train_metrics: bool = field(
        default=False,
        doc="Also accumulate ``metrics`` on the training batches (``train_<metric>``; this reads the repeats); "
        "the train loss is always reported.",
    )
    loggers: Sequence[Callable[[Dict[str, Any]], Any]] = field(
        default=(),
        doc="Callables receiving every epoch dict; optional ``finalize(final_metrics)`` and ``close()`` run "
        "when the fit ends (see :py:mod:`strfsolver.solver.loggers`).",
    )
    tqdm_on: bool = field(default=True, doc="Show a progress bar over epochs with the loss and the monitored value.")
    standardize: bool = field(
        default=True,
        doc="When a fit starts afresh, standardize the stimuli per band with the training stimuli's mean and "
        "standard deviation, kept in the model (:py:mod:`strfsolver.models.standardize`; a model whose "
        "standardizer is already fitted keeps it). ``False`` feeds the stimuli as they are.",
    )
    init: Optional[str] = field(
        default=None,
        doc="``None`` (train from the model's initial values) or ``\"ridge\"``: a fresh fit of a model whose first "
        "stage is an STRF (``\"linear\"``, ``\"ln\"``) starts from the cross-validated ridge STRF of the training "
        "data, the output nonlinearity set to pass its drive through (:py:func:`strfsolver.solver.ridge.ridge_initialize`).",
    )

    # ------------------------------------------------------------------
    # construction and checks
    # ------------------------------------------------------------------
    def __post_init__(self):
        if not isinstance(self.model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(self.model).__name__}.")
        if self.device is None:
            first = next(iter(self.model.parameters()), None)
            self.device = first.device if first is not None else torch.device("cpu")
        try:
            self.device = torch.device(self.device)
        except (RuntimeError, TypeError) as error:
            raise ValueError(f"device must name a torch device such as 'cpu' or 'cuda:0', got {self.device!r}: {error}") from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={str(self.device)!r} but this torch has no usable CUDA device; use device='cpu'.")
        self.model.to(self.device)
        if isinstance(self.criterion, str):
            self.criterion = _losses.init(self.criterion)
        if not callable(self.criterion):
            raise ValueError(f"criterion must be a loss name or a callable (pred, responses) -> loss, got {self.criterion!r}.")
        if isinstance(self.criterion, nn.Module):
            self.criterion.to(self.device)
        # unknown names raise a ValueError now rather than after an epoch
        self.metrics, self.metric_functions = split_metrics(self.metrics)
        self.penalties = [_penalties.init(p) if isinstance(p, str) else p for p in self.penalties]
        for i, penalty in enumerate(self.penalties):
            if not callable(penalty):
                raise ValueError(f"penalties[{i}] must be a Penalty, a registered penalty name or a callable, got {penalty!r}.")
        self.loggers = list(self.loggers)
        self._check_config()
        if self.init is not None:
            from strfsolver.solver.ridge import check_ridge_model

            if self.init != "ridge":
                raise ValueError(f"init must be None or 'ridge', got {self.init!r}.")
            check_ridge_model(self.model, "init='ridge'", linear_only=False)
        self.log: List[Dict[str, Any]] = []
        self.last_validation_: Optional[Dict[str, Any]] = None
        self.initial_validation_: Optional[Dict[str, Any]] = None
        self.final_validation_: Optional[Dict[str, Dict[str, Any]]] = None
        self.logdir_: Optional[Path] = None
        self.training_state_: TrainingState = self.state_class()
        self.monitor_, self.mode_ = self.monitor, self.mode
        self._loader_states: Dict[str, Any] = {}
        # owned by a running fit, released when it ends
        self._neuron_tracker: Optional[NeuronTracker] = None
        self._validation_cache: Optional[ValidationCache] = None

    def _check_config(self) -> None:
        if not (self.optimizer is None or isinstance(self.optimizer, torch.optim.Optimizer) or callable(self.optimizer)):
            raise ValueError(f"optimizer must be a torch.optim.Optimizer, a factory params -> optimizer, or None; got {self.optimizer!r}.")
        check_real(self.lr, "lr", 0.0, low_open=True, allow_none=True)
        check_real(self.weight_decay, "weight_decay", 0.0)
        if self.mode not in MODES:
            raise ValueError(f"mode must be 'max' or 'min', got {self.mode!r}.")
        check_count(self.patience, "patience", 1, allow_none=True)
        check_count(self.max_epochs, "max_epochs", 1)
        if not isinstance(self.standardize, bool):
            raise ValueError(f"standardize must be True or False, got {self.standardize!r}.")
        if not isinstance(self.monitor, str) or not self.monitor:
            raise ValueError(f"monitor must be a key of the epoch dicts such as 'val_cc_norm', got {self.monitor!r}.")
        check_real(self.min_delta, "min_delta", 0.0)
        check_count(self.plateau_patience, "plateau_patience", 0, allow_none=True)
        check_real(self.lr_decay, "lr_decay", 0.0, 1.0, low_open=True, high_open=True)
        check_real(self.grad_clip, "grad_clip", 0.0, low_open=True, allow_none=True)

    @property
    def builtin_metrics(self) -> Tuple[str, ...]:
        """The names of ``metrics`` that are built in (streamed), without the custom ones."""
        return tuple(name for name in self.metrics if name not in self.metric_functions)

    @property
    def best_epoch_(self) -> Optional[int]:
        """The best evaluated epoch of the last fit (``None`` before one)."""
        return self.training_state_.best_epoch

    @property
    def best_score_(self) -> Optional[float]:
        """The monitored value at :py:attr:`best_epoch_`."""
        return self.training_state_.best_score

    @property
    def best_epochs_(self) -> Optional[Tensor]:
        """``(N,)`` epoch at which each neuron had its own best monitored score, for the solvers
        that track each neuron (``"single-cell"``, ``"per-cell-best"``); ``None`` otherwise or before a fit."""
        value = getattr(self.training_state_, "neuron_best_epoch", None)
        return None if value is None else value.detach().cpu().clone()

    @property
    def best_scores_(self) -> Optional[Tensor]:
        """``(N,)`` each neuron's own best monitored score (see :py:attr:`best_epochs_`)."""
        value = getattr(self.training_state_, "neuron_best_score", None)
        return None if value is None else value.detach().cpu().clone()

    @property
    def stop_reason_(self) -> Optional[str]:
        """Why the last fit ended: ``"max_epochs"``, ``"patience"`` or ``"all neurons stopped"``."""
        return self.training_state_.stop_reason

    # ------------------------------------------------------------------
    # parameters, optimizer, hyperparameters
    # ------------------------------------------------------------------
    def parameters(self) -> Iterable[nn.Parameter]:
        """The trainable parameters: the model's, then the criterion's (if it has any)."""
        yield from (p for p in self.model.parameters() if p.requires_grad)
        if isinstance(self.criterion, nn.Module):
            yield from (p for p in self.criterion.parameters() if p.requires_grad)

    @property
    def lr_(self) -> float:
        """The learning rate the default optimizer starts from: ``lr``, or the model's default."""
        if self.lr is not None:
            return float(self.lr)
        return float(getattr(self.model, "default_lr", None) or DEFAULT_LR)

    @property
    def num_parameters(self) -> int:
        """Number of trainable values (model and criterion)."""
        return sum(p.numel() for p in self.parameters())

    @property
    def _dtype(self) -> torch.dtype:
        first = next(iter(self.model.parameters()), None)
        return first.dtype if first is not None and first.is_floating_point() else torch.float32

    def _ensure_optimizer(self) -> torch.optim.Optimizer:
        if self.optimizer is None:
            self.optimizer = torch.optim.AdamW(self.parameters(), lr=self.lr_, weight_decay=self.weight_decay)
        elif not isinstance(self.optimizer, torch.optim.Optimizer):
            if not callable(self.optimizer):
                raise ValueError(f"optimizer must be a torch.optim.Optimizer, a factory params -> optimizer, or None; got {self.optimizer!r}.")
            built = self.optimizer(self.parameters())
            if not isinstance(built, torch.optim.Optimizer):
                raise ValueError(f"the optimizer factory returned {type(built).__name__}, expected a torch.optim.Optimizer.")
            self.optimizer = built
        if not getattr(self, "_optimizer_checked", False):
            own = {id(p) for p in self.parameters()}
            foreign = sum(1 for group in self.optimizer.param_groups for p in group["params"] if id(p) not in own)
            if foreign:
                raise ValueError(
                    f"the optimizer updates {foreign} tensor(s) that are not the model's trainable parameters, so "
                    "training would leave the model unchanged; build it on solver.model.parameters() (or pass a "
                    "factory params -> optimizer)."
                )
            self._optimizer_checked = True
        return self.optimizer

    def _schedules(self) -> List[Any]:
        return _schedules.check_schedules(self)

    def set_hyperparameter(self, target: str, value: float) -> None:
        """Set the hyperparameter a schedule names (see :py:mod:`strfsolver.solver.schedules`).

        Args:
            target: ``"lr"`` or another optimizer parameter-group key (``"lr@readout"``:
                one named group), ``"model.<attribute>"``, a penalty's name (sets its
                ``weight``) or a solver attribute.
            value: The new value.
        """
        _schedules.set_target(self, target, value)

    @property
    def current_lr(self) -> float:
        """Learning rate of the optimizer's first parameter group."""
        return float(self._ensure_optimizer().param_groups[0]["lr"])

    # ------------------------------------------------------------------
    # the hooks of one batch
    # ------------------------------------------------------------------
    def _to_device(self, batch: Batch) -> Batch:
        """The batch with its tensors on :py:attr:`device` (tensors already there are not copied)."""
        check_batch(batch)
        moved = dict(batch)
        for key, value in batch.items():
            if isinstance(value, Tensor) and value.device != self.device:
                moved[key] = value.to(self.device, non_blocking=True)
        return moved

    def _prepare(self, batch: Batch) -> Batch:
        """The batch on the device, with entries its ``valid_mask`` clears set to NaN in ``responses``.

        Prepared batches carry the key ``"_prepared"``, so preparing one again
        (``fit`` prepares, then ``step`` does) costs nothing.
        """
        if batch.get("_prepared") if isinstance(batch, dict) else False:
            return batch
        batch = self._to_device(batch)
        stims, dtype = batch["stims"], self._dtype
        if stims.is_floating_point() and stims.dtype != dtype:
            batch["stims"] = stims.to(dtype)  # a float64 model gets float64 stimuli
        if "responses" in batch:
            batch["responses"] = recorded_responses(batch)
        batch["_prepared"] = True
        return batch

    def _begin_sequence(self) -> None:
        # every batch holds whole stimuli unrelated to the previous batch's:
        # a stateful (recurrent) model starts each from a fresh state
        reset = getattr(self.model, "reset_state", None)
        if callable(reset):
            reset()

    @abc.abstractmethod
    def _inference(self, batch: Batch) -> Tensor:
        """The model's prediction for a batch (overridable hook).

        Args:
            batch: A batch dict on :py:attr:`device`; :py:meth:`transform`
                passes one with ``"stims"`` only.

        Returns:
            ``(B, N, 1, T)`` predictions.
        """

    def _loss(self, pred: Tensor, batch: Batch) -> Union[Tensor, Dict[str, Tensor]]:
        """The data loss of a prediction (overridable hook; :py:meth:`step` calls it).

        Args:
            pred: ``(B, N, 1, T)`` from :py:meth:`_inference`.
            batch: The batch, with ``responses`` ``(B, N, R, T)`` (or its
                PSTH ``(B, N, 1, T)``, see ``reads_repeats``).

        Returns:
            The scalar to back-propagate, or a dict with it under ``"loss"``
            and optionally ``"data_loss"`` (the scalar to report, when it is
            not the same) and ``"neuron_loss"`` (``(N,)`` per-neuron values).
            Default: :py:meth:`compute_loss`.
        """
        return self.compute_loss(pred, batch)

    def compute_loss(self, pred: Tensor, batch: Batch) -> Union[Tensor, Dict[str, Tensor]]:
        """The data loss under the name deepSTRF and CEBRA subclasses override
        (:py:mod:`strfsolver.solver.aliases`); returns what :py:meth:`_loss` returns.
        Default: ``criterion(pred, batch["responses"])``."""
        return self.criterion(pred, batch["responses"])

    def _penalty(self) -> Optional[Tensor]:
        if not self.penalties:
            return None
        total = self.penalties[0](self.model)
        for penalty in self.penalties[1:]:
            total = total + penalty(self.model)
        return torch.as_tensor(total, dtype=self._dtype, device=self.device)

    def _clip_gradients(self) -> None:
        """Clip the gradients to ``grad_clip`` (overridable: per-neuron solvers clip each neuron)."""
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_(list(self.parameters()), self.grad_clip)

    def _after_update(self) -> None:
        """Called after every optimizer step; holds frozen neurons (per-neuron solvers) and cuts
        the graph of stateful models (``model.detach()``)."""
        if self._neuron_tracker is not None:
            self._neuron_tracker.hold(self.training_state_, self.model)
        detach = getattr(self.model, "detach", None)
        if callable(detach):
            detach()

    def step(self, batch: Batch) -> Dict[str, Any]:
        """One gradient update on one batch (overridable hook).

        Zero the gradients, predict (:py:meth:`_inference`), compute the data
        loss (:py:meth:`_loss`) plus the penalties, back-propagate, clip
        (:py:meth:`_clip_gradients`), update the parameters and run
        :py:meth:`_after_update`. A non-finite loss is not back-propagated:
        the parameters stay as they were and :py:meth:`fit` raises
        :py:class:`TrainingDivergedError`.

        Args:
            batch: A batch dict.

        Returns:
            ``{"loss": total (float), "data_loss": float, "penalty": float,
            "pred": detached (B, N, 1, T) prediction}`` (and ``"neuron_loss"``
            when :py:meth:`_loss` gives it). A custom ``step`` must return a
            dict with at least ``"loss"``; :py:meth:`fit` also uses
            ``"data_loss"`` (else ``"loss"``) for ``train_loss`` and
            ``"pred"`` for the train metrics.

        An optimizer whose ``step`` needs a closure (``torch.optim.LBFGS``) gets
        one that re-evaluates the batch (:py:mod:`strfsolver.solver.closure`).
        """
        optimizer = self._ensure_optimizer()
        if _closure.needs_closure(optimizer):
            return _closure.closure_step(self, batch)
        self.model.train()
        batch = self._prepare(batch)
        self._begin_sequence()
        optimizer.zero_grad(set_to_none=True)
        pred = self._inference(batch)
        parts = self._loss(pred, batch)
        parts = dict(parts) if isinstance(parts, dict) else {"loss": parts}
        data_loss = parts["loss"]
        penalty = self._penalty()
        loss = data_loss if penalty is None else data_loss + penalty
        reported = parts.get("data_loss", data_loss)
        numbers = [loss, reported] + ([] if penalty is None else [penalty])
        # one host sync per step for all the reported numbers
        values = torch.stack([p.detach().double().reshape(()) for p in numbers]).tolist()
        cause = None
        if math.isfinite(values[0]):
            loss.backward()
            self._clip_gradients()
            grads = [p.grad for p in self.parameters() if p.grad is not None]
            # a NaN gradient under a finite loss must not reach the parameters (nor a checkpoint)
            if not all_finite(grads):
                values[0] = math.nan
            else:
                cause = _update_overflow(optimizer)
        self._after_update()
        out = {"loss": values[0], "data_loss": values[1], "penalty": values[2] if penalty is not None else 0.0, "pred": pred.detach()}
        if cause is not None:
            out["loss"], out["diverged"] = math.inf, cause
        if "neuron_loss" in parts:
            out["neuron_loss"] = parts["neuron_loss"].detach()
        return out

    def _tracker(self, stopping: EarlyStopping) -> Optional[NeuronTracker]:
        """The per-neuron tracker of this solver's fits (overridable hook); ``None``: the neurons
        share one early stopping (the default)."""
        return None

    # ------------------------------------------------------------------
    # evaluation and prediction
    # ------------------------------------------------------------------
    def _criterion_reads_repeats(self) -> bool:
        builtin = isinstance(self.criterion, (_losses.MSELoss, _losses.PoissonLoss))
        return bool(getattr(self.criterion, "reads_repeats", not builtin))

    def _uses_psth(self, loader: Any, training: bool) -> bool:
        if self.reads_repeats or self._criterion_reads_repeats():
            return False
        # train metrics need the repeats of the training batches (signal power), not of the validation ones
        if training:
            return isinstance(loader, PaddedLoader) and not self.track_train_metrics
        # custom metrics see every repeat, which the cache's PSTHs no longer hold
        return ValidationCache.applies_to(loader) and not self.metric_functions

    def validation(self, loader: Iterable[Batch]) -> Dict[str, Any]:
        """Loss and per-neuron metrics on a loader, in eval mode (overridable hook).

        Metrics are streamed (:py:class:`~strfsolver.metrics.MetricAccumulator`):
        per-neuron sufficient statistics on the device, no prediction kept.

        Args:
            loader: Batches of whole stimuli.

        Returns:
            ``{"loss": float, "neuron_loss": (N,), <metric>: (N,), ...}``, float64
            tensors on the CPU. ``neuron_loss`` is each neuron's loss over all
            its valid bins (the same for any batching; NaN only for a neuron
            never recorded); for the built-in losses ``loss`` is its reduction
            over neurons (the criterion's ``reduction``), for another
            criterion the batch-size weighted mean of its values.
        """
        if _aliases.overrides(self, Solver, "evaluate"):
            return self.evaluate(loader)
        return self._validate(loader)

    def evaluate(self, loader: Iterable[Batch]) -> Dict[str, Any]:
        """:py:meth:`validation` under the name CEBRA and flyvis use; a subclass may override
        either (:py:mod:`strfsolver.solver.aliases`)."""
        return self._validate(loader)

    def _validate(self, loader: Iterable[Batch]) -> Dict[str, Any]:
        cache = self._validation_cache
        return self._evaluate(loader, cache if cache is not None and cache.loader is loader else None)

    def _evaluate(self, loader: Iterable[Batch], cache: Optional[ValidationCache]) -> Dict[str, Any]:
        return _evaluation.evaluate(self, loader, cache)

    @torch.no_grad()
    def transform(self, stims: Union[Tensor, np.ndarray, Sequence[Union[Tensor, np.ndarray]]], batch_size: int = 32):
        """Predictions of the model in eval mode, computed in chunks (overridable hook).

        Args:
            stims: A ``(B, F, T)`` (or ``(B, C, F, T)``) tensor, or a list of
                ``(F, T_i)`` (or ``(C, F, T_i)``) stimuli of any lengths.
            batch_size: Stimuli per forward pass (> 0).

        Returns:
            For a tensor, ``(B, N, 1, T)``; for a list, a list of
            ``(N, 1, T_i)``; on :py:attr:`device`. Stimuli of a list are
            zero-padded at their end within a chunk, which a causal model
            ignores.
        """
        return _evaluation.predict(self, stims, batch_size)

    # ------------------------------------------------------------------
    # states and files
    # ------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        """Everything needed to continue training (overridable hook): model, optimizer,
        schedules, penalties, criterion, the training state (epoch, step, best score and
        epoch, patience counter, best model state), RNG states, loader states and the
        history. Storable with :py:func:`strfsolver.io.save_state`."""
        schedulers = []
        for item in self._schedules() if self.optimizer is not None else []:
            schedulers.append(item.scheduler.state_dict() if isinstance(item, _schedules.TorchScheduler) else {})
        return {
            "solver": type(self).__name__,
            "model": self.model.state_dict(),
            "criterion": self.criterion.state_dict() if isinstance(self.criterion, nn.Module) else {},
            "optimizer": self.optimizer.state_dict() if isinstance(self.optimizer, torch.optim.Optimizer) else None,
            "schedulers": schedulers,
            "penalties": [p.state_dict() if hasattr(p, "state_dict") else {} for p in self.penalties],
            "progress": self.training_state_.state_dict(),
            "monitor": [self.monitor_, self.mode_],
            "rng": _random.get_rng_state(),
            "loaders": dict(self._loader_states),
            "history": [dict(row) for row in self.log],
            "options": recorded_options(self),
        }

    def load_state_dict(self, state: Dict[str, Any], strict: bool = True) -> None:
        """Restore what :py:meth:`state_dict` returned (overridable hook; RNG and loader
        states are restored by ``fit(..., resume=True)`` only).

        Args:
            state: A solver state.
            strict: Refuse a state without its model, optimizer, progress or
                history part, and model tensors missing from or unknown to the
                model. ``False`` loads the parts present (and the model tensors
                present), leaving the others as they are.

        Raises:
            ValueError: if the model's tensors do not fit (naming them and both
                shapes), or, with ``strict``, the state lacks a part.
        """
        for key in ("model", "optimizer", "progress", "history") if strict else ():
            if key not in state:
                raise ValueError(f"the solver state has no {key!r} entry; it has {sorted(state)}.")
        if "model" in state:
            _checkpoint.check_model_state(self.model, state["model"], strict=strict)
            self.model.load_state_dict(state["model"], strict=strict)
        if isinstance(self.criterion, nn.Module) and state.get("criterion"):
            self.criterion.load_state_dict(state["criterion"])
        if state.get("optimizer") is not None:
            self._ensure_optimizer().load_state_dict(state["optimizer"])
        saved_schedulers = state.get("schedulers", [])
        for i, item in enumerate(self._schedules() if saved_schedulers else []):
            if isinstance(item, _schedules.TorchScheduler) and i < len(saved_schedulers) and saved_schedulers[i]:
                item.scheduler.load_state_dict(saved_schedulers[i])
        for penalty, saved in zip(self.penalties, state.get("penalties", [])):
            if saved and hasattr(penalty, "load_state_dict"):
                penalty.load_state_dict(saved)
        if "progress" in state:
            training_state = self.state_class()
            training_state.load_state_dict(state["progress"])
            self.training_state_ = training_state
        if "monitor" in state:
            self.monitor_, self.mode_ = state["monitor"]
        if "loaders" in state or strict:
            self._loader_states = dict(state.get("loaders", {}))
        if "history" in state:
            self.log = [dict(row) for row in state["history"]]

    def save(self, logdir: Union[str, Path], filename: str = "checkpoint.safetensors") -> Path:
        """Write :py:meth:`state_dict` to ``logdir/filename`` atomically; returns the path."""
        path = Path(logdir) / filename
        _checkpoint.save_checkpoint(path, self.state_dict())
        return path

    def load(self, logdir: Union[str, Path], filename: Optional[str] = None, strict: bool = True) -> None:
        """Load a checkpoint of ``logdir`` into this solver.

        Args:
            logdir: The folder given to :py:meth:`fit` or :py:meth:`save`.
            filename: A file of it (e.g. ``checkpoint_best.safetensors``). ``None``:
                what ``fit(logdir=...)`` wrote last (:py:data:`~strfsolver.solver.checkpoint.LAST`),
                with the best state put back into the model as ``fit`` does when
                that fit had ended, else ``checkpoint.safetensors`` of :py:meth:`save`.
            strict: See :py:meth:`load_state_dict`.

        Raises:
            FileNotFoundError: if there is no such checkpoint (the message lists the folder).
        """
        path = _recovery.find_fit_checkpoint(logdir) if filename is None else Path(logdir) / filename
        self.load_state_dict(_checkpoint.load_checkpoint(path, device=self.device), strict=strict)
        if filename is None and path.name == _checkpoint.LAST and self.training_state_.stop_reason is not None:
            self._neuron_tracker = self._tracker(EarlyStopping(self.mode_, self.patience, self.min_delta))
            try:
                self._restore_best()
            finally:
                self._neuron_tracker = None

    def recover(self, which: Union[str, int] = "best", parts: Sequence[str] = ("model",), logdir: Optional[Union[str, Path]] = None) -> None:
        """Put chosen parts of a kept state back into this solver (flyvis's ``recover``).

        Args:
            which: ``"best"``, ``"last"`` or the index of a checkpoint kept with
                ``fit(..., keep_every=k)`` (the number of epochs done; 0 is the initial model).
            parts: Some of :py:data:`strfsolver.solver.recovery.PARTS`: ``"model"``,
                ``"optimizer"``, ``"schedulers"``, ``"penalties"``, ``"criterion"``,
                ``"progress"`` (the training state), ``"monitor"``, ``"history"``, ``"loaders"``.
            logdir: The folder; default: that of the last ``fit(logdir=...)``.

        Raises:
            ValueError: for unknown parts, a ``which`` of another kind, or no logdir.
            FileNotFoundError: if that checkpoint does not exist (the message lists those that do).
        """
        logdir = self.logdir_ if logdir is None else Path(logdir)
        if logdir is None:
            raise ValueError("recover() needs logdir=..., or a fit(logdir=...) before it.")
        state = _checkpoint.load_checkpoint(_recovery.checkpoint_path(logdir, which), device=self.device)
        chosen = _recovery.select_parts(state, parts)
        if "model" in chosen:
            _checkpoint.check_model_state(self.model, chosen["model"], strict=True)
        self.load_state_dict(chosen, strict=False)

    def _resume(self, path: Path, loader, valid_loader) -> bool:
        if not path.is_file():
            return False
        state = _checkpoint.load_checkpoint(path, device=self.device)
        self.load_state_dict(state)
        warn_changed_options(self, state.get("options"), str(path))
        if self.log and not self.training_state_.stopped:
            # the fit goes on: its last epoch so far is not where it ends
            self.log[-1].pop("stop_reason", None)
            self.training_state_.stop_reason = None
        _random.set_rng_state(state["rng"])
        for key, value in (("train", loader), ("valid", valid_loader)):
            saved = state.get("loaders", {}).get(key)
            if saved is not None and callable(getattr(value, "load_state_dict", None)):
                value.load_state_dict(saved)
        return True

    def _capture_loader_states(self, loader, valid_loader) -> None:
        self._loader_states = {}
        for key, value in (("train", loader), ("valid", valid_loader)):
            if value is not None and callable(getattr(value, "state_dict", None)):
                self._loader_states[key] = value.state_dict()

    # ------------------------------------------------------------------
    # fitting
    # ------------------------------------------------------------------
    def on_epoch_end(self, epoch: Dict[str, Any]) -> None:
        """Called after every epoch with its dict, after the loggers (overridable hook; no-op).
        An override taking two arguments, ``on_epoch_end(epoch, epoch_dict)``, gets the epoch
        number and the dict (:py:mod:`strfsolver.solver.aliases`)."""

    def _resolve_monitor(self, has_validation: bool) -> Tuple[str, str]:
        return resolve_monitor(self, has_validation)

    def _fit_standardizer(self, loader: Iterable[Batch]) -> None:
        """Set the model's stimulus standardization from the training stimuli (see ``standardize``)."""
        from strfsolver.nn.standardize import is_standardized, loader_stimuli, set_standardization, stimulus_statistics

        if self.standardize and is_standardized(self.model) is False:
            set_standardization(self.model, *stimulus_statistics(loader_stimuli(loader)))

    def _start_fresh(self) -> None:
        self.training_state_ = self.state_class()
        self.log = []
        for penalty in self.penalties:
            if callable(getattr(penalty, "setup", None)):
                penalty.setup(self.model)

    def fit(
        self,
        loader: Iterable[Batch],
        valid_loader: Optional[Iterable[Batch]] = None,
        *,
        max_epochs: Optional[int] = None,
        logdir: Optional[Union[str, Path]] = None,
        save_frequency: Optional[int] = None,
        valid_frequency: int = 1,
        save_hook: Optional[Callable[[int, "Solver"], Any]] = None,
        resume: bool = False,
        keep_every: Optional[int] = None,
        validate_initial: bool = False,
        test_loader: Optional[Iterable[Batch]] = None,
    ) -> List[Dict[str, Any]]:
        """Train for up to ``max_epochs`` epochs with early stopping; keep the best state.

        Each epoch runs :py:meth:`step` on every batch of ``loader``, then,
        every ``valid_frequency`` epochs and after the last one,
        :py:meth:`validation` on ``valid_loader``. An evaluated epoch whose
        ``monitor`` value improves (see ``mode``, ``min_delta``) becomes the
        best; after ``patience`` evaluated epochs without improvement training
        stops. The best state is put back into the model at the end.

        Args:
            loader: Training batches (a :py:class:`~strfsolver.data.PaddedLoader`
                or a ``DataLoader`` with ``collate_fn=neural_collate``).
            valid_loader: Validation batches, or ``None`` (see ``monitor``).
            max_epochs: Overrides the solver's ``max_epochs``.
            logdir: Folder for checkpoints (:py:data:`~strfsolver.solver.checkpoint.LAST`
                and :py:data:`~strfsolver.solver.checkpoint.BEST`); ``None``
                writes nothing.
            save_frequency: Write the last state every this many epochs
                (default 1); it is also written when training ends.
            valid_frequency: Validate every this many epochs.
            save_hook: ``save_hook(epoch, solver)`` after each write of the last state.
            resume: Continue from ``logdir``'s last state if there is one
                (else start afresh): a run interrupted and resumed ends with
                the same parameters, bit for bit on the CPU, as an
                uninterrupted one, loader shuffles included.
            keep_every: Also keep the state after every this many epochs under its
                index, ``logdir/checkpoints/000012.safetensors`` (index = epochs
                done; ``000000`` is the initial model), for :py:meth:`recover`.
            validate_initial: Validate the initial model before the first update;
                its per-neuron values are the ``epoch == -1`` row of
                :py:attr:`history_neurons_` and the dict is kept in ``initial_validation_``.
            test_loader: Evaluated, with ``valid_loader``, on the best state when the
                fit ends (``final_validation_``, the loggers' ``finalize``).

        Returns:
            :py:attr:`log`, one dict per epoch (resumed epochs included).

        Raises:
            KeyError: if ``monitor`` is not a key of an evaluated epoch's dict
                (the message lists the keys).
            TrainingDivergedError: on a NaN or infinite loss, after restoring
                the best state.
            ValueError: on invalid arguments or a checkpoint that does not fit,
                and before anything runs, on a ``logdir`` that is a file or
                not writable.
            LogdirInUseError: if another running fit holds ``logdir``.
        """
        options = dict(max_epochs=max_epochs, logdir=logdir, save_frequency=save_frequency, valid_frequency=valid_frequency,
                       save_hook=save_hook, resume=resume, keep_every=keep_every, validate_initial=validate_initial, test_loader=test_loader)
        if logdir is None:
            return self._fit(loader, valid_loader, **options)
        self._check_config()  # a bad option is reported before the folder is touched
        with claim_logdir(logdir, resume=resume, last_name=_checkpoint.LAST):
            return self._fit(loader, valid_loader, **options)

    def _fit(self, loader, valid_loader, *, max_epochs, logdir, save_frequency, valid_frequency, save_hook, resume,
             keep_every, validate_initial, test_loader) -> List[Dict[str, Any]]:
        self._check_config()
        check_lags_fit_stimuli(self.model, loader)
        max_epochs = check_count(self.max_epochs if max_epochs is None else max_epochs, "max_epochs", 1)
        check_count(valid_frequency, "valid_frequency", 1)
        save_frequency = check_count(1 if save_frequency is None else save_frequency, "save_frequency", 1)
        if resume and logdir is None:
            raise ValueError("resume=True needs the logdir of the run to continue.")
        check_count(keep_every, "keep_every", 1, allow_none=True)
        if keep_every is not None and logdir is None:
            raise ValueError("keep_every needs a logdir to write the indexed checkpoints into.")
        self.logdir_ = None if logdir is None else Path(logdir)
        has_validation = valid_loader is not None
        self.monitor_, self.mode_ = self._resolve_monitor(has_validation)
        check_monitor_key(self, self.monitor_, has_validation)
        self._ensure_optimizer()
        schedules = ScheduleRunner(self._schedules(), self.set_hyperparameter)
        stopping = EarlyStopping(self.mode_, self.patience, self.min_delta)
        writer = None if logdir is None else CheckpointWriter(Path(logdir), save_frequency, save_hook)
        if not (resume and self._resume(writer.last, loader, valid_loader)):
            if logdir is not None:
                _recovery.clear_indexed(logdir)  # an earlier run's: recover(k) must name this run's epoch k
            self._start_fresh()
            self._fit_standardizer(loader)
            if self.init == "ridge":
                from strfsolver.solver.ridge import ridge_initialize

                ridge_initialize(self.model, loader, self._prepare)
        state = self.training_state_
        if state.best_model is None:
            state.best_model = copy_state(self.model)
        self._neuron_tracker = self._tracker(stopping)
        train_batches = loader.psth_view() if self._uses_psth(loader, training=True) else loader
        if has_validation and self._uses_psth(valid_loader, training=False):
            self._validation_cache = ValidationCache(valid_loader, self.builtin_metrics, self._prepare)
        reporter = Reporter(self.loggers, self.tqdm_on, max_epochs, state.epoch, self.monitor_)
        final = None
        try:
            if state.epoch == 0:
                if validate_initial and has_validation:
                    self.initial_validation_ = self.validation(valid_loader)
                    self._record_neurons(-1, self.initial_validation_, reporter)
                if keep_every is not None:
                    _recovery.save_indexed(self.logdir_, 0, self.state_dict())
            while state.epoch < max_epochs and not state.stopped:
                epoch, start = state.epoch, time.perf_counter()
                schedules.begin_epoch(epoch)
                row, train_values = self._train_epoch(train_batches, epoch, schedules)
                row = {"epoch": epoch, **row}
                evaluated = not self.monitor_.startswith("val_")
                if has_validation and ((epoch + 1) % valid_frequency == 0 or epoch + 1 == max_epochs):
                    self.last_validation_ = self.validation(valid_loader)
                    self._record_neurons(epoch, self.last_validation_, reporter)
                    row["val_loss"] = self.last_validation_["loss"]
                    row.update({f"val_{name}": _nanmean(self.last_validation_[name]) for name in self.metrics})
                    evaluated = True
                row["seconds"] = time.perf_counter() - start
                improved = evaluated and self._end_evaluated_epoch(row, stopping, schedules, train_values)
                schedules.end_epoch()
                state.epoch = epoch + 1
                if state.epoch >= max_epochs and not state.stopped:
                    state.stop_reason = "max_epochs"
                if state.stopped or state.epoch >= max_epochs:
                    row["stop_reason"] = state.stop_reason
                self.log.append(row)
                reporter(row)
                _aliases.call_on_epoch_end(self.on_epoch_end, row)
                if writer is not None:
                    self._capture_loader_states(loader, valid_loader)
                    writer.after_epoch(self, epoch, improved, finished=state.stopped or state.epoch >= max_epochs)
                    if keep_every is not None and state.epoch % keep_every == 0:
                        _recovery.save_indexed(self.logdir_, state.epoch, self.state_dict())
            self._restore_best()
            best = state.best_epoch
            final = dict(self.log[best]) if best is not None and best < len(self.log) else {}
            final["best_epoch"], final["stop_reason"] = best, state.stop_reason
            self._diagnose(loader if has_validation else None, final)
            if test_loader is not None or any(callable(getattr(x, "finalize", None)) for x in self.loggers):
                final.update(self._final_evaluation(valid_loader, test_loader))
        finally:
            reporter.close(final)
            self._neuron_tracker = self._validation_cache = None
        return self.log

    def _diagnose(self, train_loader: Optional[Iterable[Batch]], final: Dict[str, Any]) -> None:
        """Advice on the finished fit (:py:func:`~strfsolver.solver.diagnostics.diagnose`): kept in
        ``diagnosis_``, added to the last epoch dict and ``final``, and warned."""
        train_score = None
        name = self.monitor_[len("val_"):] if self.monitor_.startswith("val_") else None
        if isinstance(train_loader, PaddedLoader) and name in self.metrics and self.mode_ == "max" and self.log:
            # the best state on its own training stimuli; the loader's epoch is put back, so a
            # later fit (or a resumed one) shuffles exactly as it would have
            epoch = train_loader.epoch
            try:
                train_score = _nanmean(self.validation(train_loader)[name])
            finally:
                train_loader.set_epoch(epoch)
        patience = self.patience
        self.diagnosis_ = diagnose(self.log, self.monitor_, self.training_state_.stop_reason,
                                   self.training_state_.best_epoch, train_score, patience)
        if self.diagnosis_:
            self.log[-1]["diagnosis"] = final["diagnosis"] = " ".join(self.diagnosis_)
            for sentence in self.diagnosis_:
                warnings.warn(sentence, FitWarning, stacklevel=4)

    def _record_neurons(self, epoch: int, validation: Dict[str, Any], reporter: Reporter) -> None:
        values = _neuron_history.per_neuron_values(validation, self.metrics)
        state = self.training_state_
        state.neuron_history = _neuron_history.append_epoch(state.neuron_history, epoch, values)
        reporter.neurons(epoch, values)

    @property
    def history_neurons_(self) -> Optional[Dict[str, Tensor]]:
        """Every validated epoch's per-neuron values: ``{"epoch": (E,), "val_<metric>": (E, N), ...}``
        (:py:mod:`strfsolver.solver.neuron_history`); ``None`` before a validated epoch."""
        history = self.training_state_.neuron_history
        return None if history is None else {key: value.clone() for key, value in history.items()}

    def _final_evaluation(self, valid_loader, test_loader) -> Dict[str, Any]:
        """The best state on validation and test: ``final_validation_`` and the ``finalize`` extras."""
        self.final_validation_ = {}
        for split, split_loader in (("valid", valid_loader), ("test", test_loader)):
            if split_loader is not None:
                self.final_validation_[split] = self.validation(split_loader)
        out: Dict[str, Any] = {"neurons": {}}
        for split, values in self.final_validation_.items():
            out["neurons"][split] = _neuron_history.per_neuron_values(values, self.metrics)
            out[f"final_{split}_loss"] = values["loss"]
            out.update({f"final_{split}_{name}": _nanmean(values[name]) for name in self.metrics})
        return out

    def _end_evaluated_epoch(self, row: Dict[str, Any], stopping: EarlyStopping, schedules: ScheduleRunner, train_values: Dict[str, Tensor]) -> bool:
        """Early stopping (on the mean over neurons) and per-neuron tracking of an evaluated epoch."""
        if self.monitor_ not in row:
            raise KeyError(
                f"monitor {self.monitor_!r} is not in the epoch dict; available keys: {sorted(row)}. "
                "Set monitor= to one of them (val_* keys need a valid_loader)."
            )
        score = float(row[self.monitor_])
        state = self.training_state_
        improved = stopping.update(state, score, row["epoch"], lambda: copy_state(self.model))
        schedules.evaluated(score)
        plateau = self._plateau_patience(schedules)
        if plateau and not improved and not state.stopped and state.bad_epochs % plateau == 0:
            # a noisy validation score stalls before the fit has converged: a smaller step, not the end
            for group in self.optimizer.param_groups:
                group["lr"] *= self.lr_decay
        if self._neuron_tracker is not None:
            scores, _ = scores_of(self.monitor_, self.last_validation_, train_values)
            row.update(self._neuron_tracker.update(self.training_state_, scores, row["epoch"], self.model))
        return improved

    def _plateau_patience(self, schedules: ScheduleRunner) -> int:
        if self._neuron_tracker is not None and self._neuron_tracker.mode == "freeze":
            # one neuron's plateau cannot lower the rate of the stacked optimizer alone
            return 0
        if self.plateau_patience is not None:
            return self.plateau_patience
        sets_lr = any(s.target.partition("@")[0] == "lr" for s in schedules.per_epoch + schedules.per_step) or bool(schedules.torch)
        if self.patience is None or sets_lr:
            return 0
        return max(1, self.patience // 2)

    def _restore_best(self) -> None:
        state = self.training_state_
        if state.best_model is not None:
            self.model.load_state_dict(state.best_model)
        if self._neuron_tracker is not None:
            self._neuron_tracker.restore(state, self.model)

    def _train_epoch(self, batches, epoch: int, schedules: ScheduleRunner) -> Tuple[Dict[str, float], Dict[str, Tensor]]:
        return train_epoch(self, batches, epoch, schedules)
