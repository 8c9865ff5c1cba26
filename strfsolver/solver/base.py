"""The abstract :py:class:`Solver`: one training loop for every model.

A solver owns a model, a criterion, an optimizer and everything around the
gradient steps: validation with streamed per-neuron metrics, early stopping
on a monitored score, restoring the best state, checkpoints and resume,
hyperparameter schedules, penalties, divergence checks and logging.

A concrete solver only says how a batch becomes a prediction
(:py:meth:`Solver._inference`); a custom one may also replace the gradient
update (:py:meth:`Solver.step`). The rest is shared. See ``docs/solver.md``.
"""

from __future__ import annotations

import abc
import math
import numbers
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import tqdm
from literate_dataclasses import dataclass, field
from torch import Tensor, nn

from strfsolver import losses as _losses
from strfsolver import random as _random
from strfsolver.data import NeuralDataset, PaddedLoader, make_loader
from strfsolver.metrics import MetricAccumulator, psth
from strfsolver.solver import checkpoint as _checkpoint
from strfsolver.solver import penalties as _penalties
from strfsolver.solver import schedules as _schedules
from strfsolver.solver.errors import TrainingDivergedError

__all__ = ["Solver"]

Batch = Dict[str, Any]
MODES = ("max", "min")


def _solver_dataclass(cls):
    # eq=False: solvers compare (and hash) by identity, like the modules they hold
    return dataclass(cls, eq=False)


def _is_count(value: Any, minimum: int) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Integral) and value >= minimum


def _nanmean(values: Tensor) -> float:
    # nanmean is NaN for an empty or all-NaN tensor already
    return float(values.detach().nanmean())


def _copy_state(module: nn.Module) -> Dict[str, Tensor]:
    return {name: t.detach().clone() for name, t in module.state_dict().items()}


class _PsthBatches:
    """A :py:class:`PaddedLoader`'s batches, in its order, with PSTHs in place of the repeats.

    Built once per loader. Each ``iter()`` serves the loader's current epoch
    and advances the loader's own epoch counter, so its ``state_dict()`` (and
    thus resume) is the same as if the loader itself had been iterated.
    """

    def __init__(self, loader: PaddedLoader):
        self.loader = loader
        dataset = loader.dataset
        # the stimuli passed validation already: share them rather than copy and re-check
        psths = NeuralDataset._trusted(dataset.stims, [psth(r.unsqueeze(0))[0] for r in dataset.responses], dataset.dt_ms, dataset.meta)
        self.psth_loader = make_loader(
            psths, batch_size=loader.batch_size, shuffle=loader.shuffle, seed=loader.seed, device=loader.device, drop_last=loader.drop_last
        )

    def __len__(self) -> int:
        return len(self.psth_loader)

    def __iter__(self):
        epoch = self.loader.epoch
        # the seed may have changed through load_state_dict
        self.psth_loader.seed = self.loader.seed
        self.psth_loader.set_epoch(epoch)
        self.loader.set_epoch(epoch + 1)
        return iter(self.psth_loader)


@_solver_dataclass
class Solver(abc.ABC):
    """Fit a model to neural responses, batch by batch, with early stopping.

    A solver is built from a model and options, then :py:meth:`fit` on
    loaders of batch dicts (``stims``, ``responses``, ``valid_mask``,
    ``meta``; see :py:func:`strfsolver.data.make_loader`). Concrete solvers
    are registered by name, e.g. ``strfsolver.solver.init("population",
    model=model)``; a custom one subclasses this class and implements
    :py:meth:`_inference`.

    Epoch dicts (the :py:attr:`log`, one per epoch) hold plain floats:
    ``epoch``, ``train_loss`` (the data loss, batch-size weighted mean over
    the epoch's steps), ``train_penalty`` (with penalties), ``train_<metric>``
    (with ``track_train_metrics``), ``val_loss`` and ``val_<metric>`` (on
    validated epochs), ``lr`` (of the first parameter group, during the
    epoch's last step) and ``seconds``. Metric values in the dict are the
    ``nanmean`` over neurons; the per-neuron ``(N,)`` tensors of the most
    recent validation are kept in :py:attr:`last_validation_`.

    Args:
        (fields)

    Attributes set while fitting: ``last_validation_`` (the dict returned
    by the last :py:meth:`validation` in :py:meth:`fit`), ``best_epoch_``,
    ``best_score_`` and ``monitor_`` / ``mode_`` (the monitor actually used,
    see ``monitor``).
    """

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
    lr: float = field(default=1e-3, doc="Learning rate of the default optimizer.")
    weight_decay: float = field(default=1e-4, doc="Decoupled weight decay of the default optimizer.")
    metrics: Sequence[str] = field(
        default=("cc", "cc_norm"),
        doc="Per-neuron validation metrics, names of :py:class:`strfsolver.metrics.MetricAccumulator`; "
        "each gives ``val_<name>`` in the epoch dicts.",
    )
    device: Optional[Union[str, torch.device]] = field(
        default=None,
        doc="Where to train; the model is moved there and batches are moved there when they are elsewhere. "
        "``None``: the device of the model's parameters.",
    )
    max_epochs: int = field(default=100, doc="Number of epochs of :py:meth:`fit` unless it is given one.")
    patience: Optional[int] = field(
        default=10,
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
        doc="Also accumulate ``metrics`` on the training batches (``train_<metric>``); the train loss is always reported.",
    )
    psth_training: Optional[bool] = field(
        default=None,
        doc="Serve training batches with each stimulus' PSTH ``(B, N, 1, T)``, computed once, in place of its "
        "repeats. The built-in losses collapse repeats to the PSTH anyway, so losses and gradients are unchanged "
        "while each step reads R times less data. A validation loader in fixed order is then cached too: its "
        "PSTHs and the prediction-free part of its metrics are computed on the first validation only. ``None`` (auto): on when the training loader is a "
        ":py:class:`~strfsolver.data.PaddedLoader`, the criterion is a built-in loss, ``step`` is not overridden "
        "and ``track_train_metrics`` is off; ``True``: on whenever the loader is a PaddedLoader; ``False``: off. "
        "Set it to ``False`` if a custom ``_inference`` reads the repeats of ``batch[\"responses\"]``.",
    )
    loggers: Sequence[Callable[[Dict[str, Any]], Any]] = field(
        default=(),
        doc="Callables receiving every epoch dict; optional ``finalize(final_metrics)`` and ``close()`` run "
        "when the fit ends (see :py:mod:`strfsolver.solver.loggers`).",
    )
    log: List[Dict[str, Any]] = field(
        default_factory=list, repr=False, doc="The history: one dict per epoch of the current fit (restored on resume)."
    )
    tqdm_on: bool = field(default=True, doc="Show a progress bar over epochs with the loss and the monitored value.")

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
        self.model.to(self.device)
        if isinstance(self.criterion, str):
            self.criterion = _losses.init(self.criterion)
        if not callable(self.criterion):
            raise ValueError(f"criterion must be a loss name or a callable (pred, responses) -> loss, got {self.criterion!r}.")
        if isinstance(self.criterion, nn.Module):
            self.criterion.to(self.device)
        self.metrics = (self.metrics,) if isinstance(self.metrics, str) else tuple(self.metrics)
        MetricAccumulator(self.metrics)  # raises ValueError on unknown names, now rather than after an epoch
        self.penalties = [_penalties.init(p) if isinstance(p, str) else p for p in self.penalties]
        for i, penalty in enumerate(self.penalties):
            if not callable(penalty):
                raise ValueError(f"penalties[{i}] must be a Penalty, a registered penalty name or a callable, got {penalty!r}.")
        self.loggers = list(self.loggers)
        self._check_config()
        self.last_validation_: Optional[Dict[str, Any]] = None
        self.best_epoch_: Optional[int] = None
        self.best_score_: Optional[float] = None
        self.monitor_, self.mode_ = self.monitor, self.mode
        self._progress = self._fresh_progress()
        self._loader_states: Dict[str, Any] = {}

    def _check_config(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be 'max' or 'min', got {self.mode!r}.")
        if self.patience is not None and not _is_count(self.patience, 1):
            raise ValueError(f"patience must be an integer >= 1 or None (no early stopping), got {self.patience!r}.")
        if not _is_count(self.max_epochs, 1):
            raise ValueError(f"max_epochs must be an integer >= 1, got {self.max_epochs!r}.")
        if not isinstance(self.monitor, str) or not self.monitor:
            raise ValueError(f"monitor must be a key of the epoch dicts such as 'val_cc_norm', got {self.monitor!r}.")
        if isinstance(self.min_delta, bool) or not isinstance(self.min_delta, numbers.Real) or not self.min_delta >= 0:
            raise ValueError(f"min_delta must be a number >= 0, got {self.min_delta!r}.")
        if self.grad_clip is not None and (
            isinstance(self.grad_clip, bool) or not isinstance(self.grad_clip, numbers.Real) or not self.grad_clip > 0
        ):
            raise ValueError(f"grad_clip must be a number > 0 or None, got {self.grad_clip!r}.")

    @staticmethod
    def _fresh_progress() -> Dict[str, Any]:
        return {"epoch": 0, "step": 0, "best_score": None, "best_epoch": None, "bad_epochs": 0, "stopped": False, "best_model": None}

    # ------------------------------------------------------------------
    # parameters, optimizer, hyperparameters
    # ------------------------------------------------------------------
    def parameters(self) -> Iterable[nn.Parameter]:
        """The trainable parameters: the model's, then the criterion's (if it has any)."""
        yield from (p for p in self.model.parameters() if p.requires_grad)
        if isinstance(self.criterion, nn.Module):
            yield from (p for p in self.criterion.parameters() if p.requires_grad)

    @property
    def num_parameters(self) -> int:
        """Number of trainable values (model and criterion)."""
        return sum(p.numel() for p in self.parameters())

    def _ensure_optimizer(self) -> torch.optim.Optimizer:
        if self.optimizer is None:
            self.optimizer = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        elif not isinstance(self.optimizer, torch.optim.Optimizer):
            if not callable(self.optimizer):
                raise ValueError(f"optimizer must be a torch.optim.Optimizer, a factory params -> optimizer, or None; got {self.optimizer!r}.")
            built = self.optimizer(self.parameters())
            if not isinstance(built, torch.optim.Optimizer):
                raise ValueError(f"the optimizer factory returned {type(built).__name__}, expected a torch.optim.Optimizer.")
            self.optimizer = built
        return self.optimizer

    def _schedules(self) -> List[Any]:
        raw = self.schedule
        if raw is None:
            items = []
        elif isinstance(raw, (list, tuple)):
            items = list(raw)
        else:
            items = [raw]
        result = []
        for i, item in enumerate(items):
            if _schedules.is_torch_scheduler(item):
                item = _schedules.TorchScheduler(item)
            if isinstance(item, _schedules.TorchScheduler):
                if item.scheduler.optimizer is not self.optimizer:
                    raise ValueError(
                        f"schedule[{i}] is a {type(item.scheduler).__name__} of another optimizer; build it on the "
                        "solver's optimizer (pass optimizer=... to the solver and the scheduler)."
                    )
            elif not isinstance(item, _schedules.Schedule):
                raise ValueError(
                    f"schedule[{i}] must be a strfsolver.solver.schedules.Schedule or a torch.optim.lr_scheduler "
                    f"object, got {type(item).__name__}."
                )
            else:
                self._resolve_target(item.target)  # fail before training, not at the first step
            result.append(item)
        return result

    def _resolve_target(self, target: str) -> str:
        groups = self._ensure_optimizer().param_groups
        if target != "params" and target in groups[0]:
            return "optimizer"
        if any(getattr(p, "name", None) == target for p in self.penalties):
            return "penalty"
        if not target.startswith("_") and hasattr(self, target) and target not in ("model", "optimizer", "criterion"):
            return "solver"
        options = sorted(k for k in groups[0] if k != "params") + [
            getattr(p, "name") for p in self.penalties if hasattr(p, "name")
        ]
        raise ValueError(
            f"schedule target {target!r} is neither an optimizer hyperparameter, a penalty name nor a solver "
            f"attribute; options include {options} and solver attributes such as 'grad_clip'."
        )

    def set_hyperparameter(self, target: str, value: float) -> None:
        """Set the hyperparameter a schedule names (see :py:mod:`strfsolver.solver.schedules`).

        Args:
            target: ``"lr"`` or another optimizer parameter-group key, a
                penalty's name (sets its ``weight``) or a solver attribute.
            value: The new value.
        """
        kind = self._resolve_target(target)
        if kind == "optimizer":
            for group in self.optimizer.param_groups:
                group[target] = value
        elif kind == "penalty":
            for penalty in self.penalties:
                if getattr(penalty, "name", None) == target:
                    penalty.weight = value
        else:
            setattr(self, target, value)

    @property
    def current_lr(self) -> float:
        """Learning rate of the optimizer's first parameter group."""
        return float(self._ensure_optimizer().param_groups[0]["lr"])

    # ------------------------------------------------------------------
    # the per-batch work
    # ------------------------------------------------------------------
    def _to_device(self, batch: Batch) -> Batch:
        """The batch with its tensors on :py:attr:`device` (tensors already there are not copied)."""
        if not isinstance(batch, dict) or "stims" not in batch:
            raise ValueError(
                "a batch must be a dict with keys 'stims', 'responses', 'valid_mask' and 'meta' (use "
                "strfsolver.data.make_loader or DataLoader(..., collate_fn=strfsolver.data.neural_collate)), got "
                + (f"a dict with keys {sorted(batch)}" if isinstance(batch, dict) else type(batch).__name__)
                + "."
            )
        moved = dict(batch)
        for key, value in batch.items():
            if isinstance(value, Tensor) and value.device != self.device:
                moved[key] = value.to(self.device, non_blocking=True)
        return moved

    @abc.abstractmethod
    def _inference(self, batch: Batch) -> Tensor:
        """The model's prediction for a batch.

        Args:
            batch: A batch dict on :py:attr:`device`; :py:meth:`transform`
                passes one with ``"stims"`` only.

        Returns:
            ``(B, N, 1, T)`` predictions.
        """

    def _penalty(self) -> Optional[Tensor]:
        if not self.penalties:
            return None
        total = self.penalties[0](self.model)
        for penalty in self.penalties[1:]:
            total = total + penalty(self.model)
        return torch.as_tensor(total, dtype=torch.float32, device=self.device)

    def _detach_model(self) -> None:
        # stateful (recurrent) models cut their graph between updates; others have no detach()
        detach = getattr(self.model, "detach", None)
        if callable(detach):
            detach()

    def step(self, batch: Batch) -> Dict[str, Any]:
        """One gradient update on one batch.

        Zero the gradients, predict (:py:meth:`_inference`), compute the data
        loss plus the penalties, back-propagate, clip the gradients
        (``grad_clip``), update the parameters and cut the graph of stateful
        models (``model.detach()``). A non-finite loss is not back-propagated:
        the parameters stay as they were and :py:meth:`fit` raises
        :py:class:`TrainingDivergedError`.

        Args:
            batch: A batch dict.

        Returns:
            ``{"loss": total (float), "data_loss": float, "penalty": float,
            "pred": detached (B, N, 1, T) prediction}``. A custom ``step``
            must return at least ``"loss"``; :py:meth:`fit` also uses
            ``"data_loss"`` (else ``"loss"``) for ``train_loss`` and
            ``"pred"`` for the train metrics.
        """
        optimizer = self._ensure_optimizer()
        self.model.train()
        batch = self._to_device(batch)
        optimizer.zero_grad(set_to_none=True)
        pred = self._inference(batch)
        data_loss = self.criterion(pred, batch["responses"])
        penalty = self._penalty()
        loss = data_loss if penalty is None else data_loss + penalty
        parts = [loss, data_loss] + ([] if penalty is None else [penalty])
        # one host sync per step for all the reported numbers
        values = torch.stack([p.detach().float().reshape(()) for p in parts]).tolist()
        if math.isfinite(values[0]):
            loss.backward()
            if self.grad_clip is not None:
                nn.utils.clip_grad_norm_(list(self.parameters()), self.grad_clip)
            optimizer.step()
        self._detach_model()
        return {"loss": values[0], "data_loss": values[1], "penalty": values[2] if penalty is not None else 0.0, "pred": pred.detach()}

    @torch.no_grad()
    def validation(self, loader: Iterable[Batch]) -> Dict[str, Any]:
        """Loss and per-neuron metrics on a loader, in eval mode.

        Metrics are streamed (:py:class:`~strfsolver.metrics.MetricAccumulator`):
        per-neuron sufficient statistics on the device, no prediction kept.

        Args:
            loader: Batches of whole stimuli.

        Returns:
            ``{"loss": float, <metric>: (N,) float64 tensor on the CPU, ...}``;
            ``loss`` is the criterion averaged over batches, weighted by
            their number of stimuli.
        """
        was_training = self.model.training
        self.model.eval()
        accumulator = MetricAccumulator(self.metrics)
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        neuron_sum: Optional[Tensor] = None
        n_stims = 0
        try:
            for batch, target in self._validation_batches(loader, accumulator):
                pred = self._inference(batch)
                size = int(batch["responses"].shape[0])
                loss, per_neuron = self._validation_loss(pred, batch["responses"])
                loss_sum += loss.detach().double() * size
                if per_neuron is not None:
                    per_neuron = per_neuron.detach().double() * size
                    neuron_sum = per_neuron if neuron_sum is None else neuron_sum + per_neuron
                n_stims += size
                accumulator.update(pred, target)
        finally:
            self.model.train(was_training)
        if n_stims == 0:
            raise ValueError("the validation loader yielded no batch.")
        result: Dict[str, Any] = {"loss": float(loss_sum) / n_stims}
        if neuron_sum is not None:
            result["neuron_loss"] = (neuron_sum / n_stims).cpu()
        result.update({name: values.cpu() for name, values in accumulator.compute().items()})
        return result

    def _validation_loss(self, pred: Tensor, responses: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        """The criterion of one validation batch and, for solvers that track neurons
        separately, its ``(N,)`` per-neuron values (``None`` here)."""
        return self.criterion(pred, responses), None

    @torch.no_grad()
    def transform(self, stims: Union[Tensor, np.ndarray, Sequence[Union[Tensor, np.ndarray]]], batch_size: int = 32):
        """Predictions of the model in eval mode, computed in chunks.

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
        if not _is_count(batch_size, 1):
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}.")
        was_training = self.model.training
        self.model.eval()
        try:
            if isinstance(stims, (Tensor, np.ndarray)):
                stims = torch.as_tensor(stims, dtype=torch.float32)
                if stims.ndim not in (3, 4):
                    raise ValueError(
                        f"stims must be (B, F, T) or (B, C, F, T) or a list of (F, T) stimuli, got a tensor of shape {tuple(stims.shape)}."
                    )
                chunks = [
                    self._inference({"stims": stims[i : i + batch_size].to(self.device)})
                    for i in range(0, stims.shape[0], batch_size)
                ]
                return torch.cat(chunks, dim=0)
            items = [torch.as_tensor(s, dtype=torch.float32) for s in stims]
            for i, item in enumerate(items):
                if item.ndim not in (2, 3) or item.shape[:-1] != items[0].shape[:-1]:
                    raise ValueError(
                        f"stimulus {i} has shape {tuple(item.shape)} but stimulus 0 has {tuple(items[0].shape)}; "
                        "expected (F, T_i) or (C, F, T_i) stimuli that differ only in T_i."
                    )
            out = []
            for start in range(0, len(items), batch_size):
                chunk = items[start : start + batch_size]
                bins = max(item.shape[-1] for item in chunk)
                padded = chunk[0].new_zeros((len(chunk),) + tuple(chunk[0].shape[:-1]) + (bins,))
                for b, item in enumerate(chunk):
                    padded[b, ..., : item.shape[-1]] = item
                pred = self._inference({"stims": padded.to(self.device)})
                out.extend(pred[b, ..., : item.shape[-1]] for b, item in enumerate(chunk))
            return out
        finally:
            self.model.train(was_training)

    # ------------------------------------------------------------------
    # states and files
    # ------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        """Everything needed to continue training: model, optimizer, schedules,
        penalties, criterion, progress counters (epoch, step, best score and
        epoch, patience counter, best model state), RNG states, loader states
        and the history. Storable with :py:func:`strfsolver.io.save_state`."""
        schedulers = []
        for item in self._schedules() if self.optimizer is not None else []:
            schedulers.append(item.scheduler.state_dict() if isinstance(item, _schedules.TorchScheduler) else {})
        progress = dict(self._progress)
        return {
            "solver": type(self).__name__,
            "model": self.model.state_dict(),
            "criterion": self.criterion.state_dict() if isinstance(self.criterion, nn.Module) else {},
            "optimizer": self.optimizer.state_dict() if isinstance(self.optimizer, torch.optim.Optimizer) else None,
            "schedulers": schedulers,
            "penalties": [p.state_dict() if hasattr(p, "state_dict") else {} for p in self.penalties],
            "progress": progress,
            "monitor": [self.monitor_, self.mode_],
            "rng": _random.get_rng_state(),
            "loaders": dict(self._loader_states),
            "history": [dict(row) for row in self.log],
        }

    def load_state_dict(self, state: Dict[str, Any], strict: bool = True) -> None:
        """Restore what :py:meth:`state_dict` returned (RNG and loader states
        are restored by ``fit(..., resume=True)`` only).

        Args:
            state: A solver state.
            strict: Refuse model tensors missing from or unknown to the model.

        Raises:
            ValueError: if the model's tensors do not fit (naming them and both
                shapes), or the state lacks a part.
        """
        for key in ("model", "optimizer", "progress", "history"):
            if key not in state:
                raise ValueError(f"the solver state has no {key!r} entry; it has {sorted(state)}.")
        _checkpoint.check_model_state(self.model, state["model"], strict=strict)
        self.model.load_state_dict(state["model"], strict=strict)
        if isinstance(self.criterion, nn.Module) and state.get("criterion"):
            self.criterion.load_state_dict(state["criterion"])
        if state["optimizer"] is not None:
            self._ensure_optimizer().load_state_dict(state["optimizer"])
        saved_schedulers = state.get("schedulers", [])
        current = self._schedules() if saved_schedulers else []
        for i, item in enumerate(current):
            if isinstance(item, _schedules.TorchScheduler) and i < len(saved_schedulers) and saved_schedulers[i]:
                item.scheduler.load_state_dict(saved_schedulers[i])
        for penalty, saved in zip(self.penalties, state.get("penalties", [])):
            if saved and hasattr(penalty, "load_state_dict"):
                penalty.load_state_dict(saved)
        progress = self._fresh_progress()
        progress.update(state["progress"])
        self._progress = progress
        self.best_epoch_ = progress["best_epoch"]
        self.best_score_ = progress["best_score"]
        if "monitor" in state:
            self.monitor_, self.mode_ = state["monitor"]
        self._loader_states = dict(state.get("loaders", {}))
        self.log = [dict(row) for row in state["history"]]

    def save(self, logdir: Union[str, Path], filename: str = "checkpoint.safetensors") -> Path:
        """Write :py:meth:`state_dict` to ``logdir/filename`` atomically; returns the path."""
        path = Path(logdir) / filename
        _checkpoint.save_checkpoint(path, self.state_dict())
        return path

    def load(self, logdir: Union[str, Path], filename: str = "checkpoint.safetensors", strict: bool = True) -> None:
        """Load ``logdir/filename`` written by :py:meth:`save` (or by :py:meth:`fit`,
        e.g. ``checkpoint_best.safetensors``) into this solver."""
        self.load_state_dict(_checkpoint.load_checkpoint(Path(logdir) / filename, device=self.device), strict=strict)

    # ------------------------------------------------------------------
    # fitting
    # ------------------------------------------------------------------
    def on_epoch_end(self, epoch: Dict[str, Any]) -> None:
        """Hook called after every epoch with its dict (after the loggers); no-op by default."""

    def _after_evaluation(self, row: Dict[str, Any]) -> None:
        """Hook for subclasses, called every epoch after the early-stopping bookkeeping and
        before the epoch dict is logged and checkpointed; it may add keys to ``row``.

        Variants that track each neuron on its own (``"single-cell"``,
        ``"per-cell-best"``) update their per-neuron state here, so loggers and
        checkpoints see it. No-op by default.
        """

    def _resolve_monitor(self, has_validation: bool) -> tuple:
        monitor, mode = self.monitor, self.mode
        if has_validation or not monitor.startswith("val_"):
            return monitor, mode
        name = monitor[len("val_") :]
        if name == "loss" or (self.track_train_metrics and name in self.metrics):
            fallback = ("train_" + name, mode)
        else:
            fallback = ("train_loss", "min")
        warnings.warn(
            f"fit() has no valid_loader, so monitor {monitor!r} cannot be computed; early stopping and the "
            f"best state use {fallback[0]!r} (mode {fallback[1]!r}) instead.",
            UserWarning,
            stacklevel=3,
        )
        return fallback

    def _epoch_keys(self, has_validation: bool) -> List[str]:
        """The keys :py:meth:`fit` puts in every evaluated epoch's dict."""
        keys = ["epoch", "train_loss", "lr", "seconds"]
        if self.penalties:
            keys.append("train_penalty")
        if self.track_train_metrics:
            keys += [f"train_{name}" for name in self.metrics]
        if has_validation:
            keys += ["val_loss"] + [f"val_{name}" for name in self.metrics]
        return sorted(keys)

    def _check_monitor_key(self, has_validation: bool) -> None:
        keys = self._epoch_keys(has_validation)
        if self.monitor_ not in keys:
            raise KeyError(
                f"monitor {self.monitor_!r} is not in the epoch dict; available keys: {keys}. "
                "Set monitor= to one of them (val_* keys need a valid_loader; train_<metric> keys need "
                "track_train_metrics=True)."
            )

    def _improves(self, score: float) -> bool:
        best = self._progress["best_score"]
        if best is None:
            return True
        if math.isnan(score):
            return False
        if math.isnan(best):
            return True
        if self.mode_ == "max":
            return score > best + self.min_delta
        return score < best - self.min_delta

    def _uses_psth(self, loader, validation: bool = False) -> bool:
        if self.psth_training is False or not isinstance(loader, PaddedLoader):
            return False
        if self.psth_training:
            return True
        builtin = isinstance(self.criterion, (_losses.MSELoss, _losses.PoissonLoss))
        # train metrics need the repeats of the training batches, not of the validation ones
        return builtin and type(self).step is Solver.step and (validation or not self.track_train_metrics)

    def _validation_batches(self, loader, accumulator: MetricAccumulator):
        """``(batch, target)`` pairs for :py:meth:`validation`.

        A fixed-order :py:class:`PaddedLoader` serves the same batches every
        epoch; where the PSTH view applies (see ``psth_training``), each
        batch's PSTH and the prediction-free part of its metrics
        (:py:meth:`MetricAccumulator.summarize`) are computed on the first
        validation and reused, so later epochs never touch the repeats. Any
        other loader is iterated as it is, with its responses as target.
        """
        if not self._uses_psth(loader, validation=True) or loader.shuffle:
            for batch in loader:
                batch = self._to_device(batch)
                yield batch, batch["responses"]
            return
        cache = getattr(self, "_validation_cache", None)
        key = (loader.batch_size, loader.drop_last, tuple(self.metrics), str(self.device))
        if cache is None or cache[0] != key or cache[1] is not loader:
            entries = []
            for batch in loader:
                batch = self._to_device(batch)
                summary = accumulator.summarize(batch["responses"])
                psth_batch = dict(batch, responses=summary.psth, valid_mask=~summary.psth.isnan())
                entries.append((psth_batch, summary))
            self._validation_cache = cache = (key, loader, entries)
        else:
            # count the epoch as iterating would, so loader states stay the same
            loader.set_epoch(loader.epoch + 1)
        yield from cache[2]

    def _training_batches(self, loader):
        """What the epoch loop iterates: the loader, or its PSTH view (see ``psth_training``)."""
        if not self._uses_psth(loader):
            return loader
        cached = getattr(self, "_psth_view", None)
        if cached is None or cached.loader is not loader:
            cached = self._psth_view = _PsthBatches(loader)
        return cached

    def _capture_loader_states(self, loader, valid_loader) -> None:
        self._loader_states = {}
        for key, value in (("train", loader), ("valid", valid_loader)):
            if value is not None and callable(getattr(value, "state_dict", None)):
                self._loader_states[key] = value.state_dict()

    def _resume(self, path: Path, loader, valid_loader) -> bool:
        if not path.is_file():
            return False
        state = _checkpoint.load_checkpoint(path, device=self.device)
        self.load_state_dict(state)
        _random.set_rng_state(state["rng"])
        for key, value in (("train", loader), ("valid", valid_loader)):
            saved = state.get("loaders", {}).get(key)
            if saved is not None and callable(getattr(value, "load_state_dict", None)):
                value.load_state_dict(saved)
        return True

    def _finish_loggers(self, final: Optional[Dict[str, Any]]) -> None:
        for logger in self.loggers:
            if final is not None and callable(getattr(logger, "finalize", None)):
                logger.finalize(final)
        for logger in self.loggers:
            if callable(getattr(logger, "close", None)):
                logger.close()

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

        Returns:
            :py:attr:`log`, one dict per epoch (resumed epochs included).

        Raises:
            KeyError: if ``monitor`` is not a key of an evaluated epoch's dict
                (the message lists the keys).
            TrainingDivergedError: on a NaN or infinite loss, after restoring
                the best state.
            ValueError: on invalid arguments or a checkpoint that does not fit.
        """
        self._check_config()
        max_epochs = self.max_epochs if max_epochs is None else max_epochs
        if not _is_count(max_epochs, 1):
            raise ValueError(f"max_epochs must be an integer >= 1, got {max_epochs!r}.")
        if not _is_count(valid_frequency, 1):
            raise ValueError(f"valid_frequency must be an integer >= 1, got {valid_frequency!r}.")
        save_frequency = 1 if save_frequency is None else save_frequency
        if not _is_count(save_frequency, 1):
            raise ValueError(f"save_frequency must be an integer >= 1 or None, got {save_frequency!r}.")
        if resume and logdir is None:
            raise ValueError("resume=True needs the logdir of the run to continue.")
        logdir = None if logdir is None else Path(logdir)

        self.monitor_, self.mode_ = self._resolve_monitor(valid_loader is not None)
        self._check_monitor_key(valid_loader is not None)
        self._ensure_optimizer()
        schedules = self._schedules()
        epoch_schedules = [s for s in schedules if isinstance(s, _schedules.Schedule) and s.unit == "epoch"]
        step_schedules = [s for s in schedules if isinstance(s, _schedules.Schedule) and s.unit == "step"]
        torch_schedulers = [s for s in schedules if isinstance(s, _schedules.TorchScheduler)]

        resumed = resume and self._resume(logdir / _checkpoint.LAST, loader, valid_loader)
        if not resumed:
            self._progress = self._fresh_progress()
            self.best_epoch_ = self.best_score_ = None
            self.log = []
            for penalty in self.penalties:
                if callable(getattr(penalty, "setup", None)):
                    penalty.setup(self.model)
        progress = self._progress
        if progress["best_model"] is None:
            progress["best_model"] = _copy_state(self.model)
        train_batches = self._training_batches(loader)

        bar = tqdm.tqdm(total=max_epochs, initial=min(progress["epoch"], max_epochs), disable=not self.tqdm_on, desc="epochs", unit="epoch")
        final = None
        try:
            while progress["epoch"] < max_epochs and not progress["stopped"]:
                epoch = progress["epoch"]
                start = time.perf_counter()
                for s in epoch_schedules:
                    self.set_hyperparameter(s.target, s(epoch))
                row: Dict[str, Any] = {"epoch": epoch}
                row.update(self._train_epoch(train_batches, epoch, step_schedules, torch_schedulers))
                evaluated = not self.monitor_.startswith("val_")
                if valid_loader is not None and ((epoch + 1) % valid_frequency == 0 or epoch + 1 == max_epochs):
                    result = self.validation(valid_loader)
                    self.last_validation_ = result
                    row["val_loss"] = result["loss"]
                    row.update({f"val_{name}": _nanmean(result[name]) for name in self.metrics})
                    evaluated = True
                row["seconds"] = time.perf_counter() - start

                improved = False
                if evaluated:
                    if self.monitor_ not in row:
                        raise KeyError(
                            f"monitor {self.monitor_!r} is not in the epoch dict; available keys: {sorted(row)}. "
                            "Set monitor= to one of them (val_* keys need a valid_loader)."
                        )
                    score = float(row[self.monitor_])
                    if self._improves(score):
                        improved = True
                        progress.update(best_score=score, best_epoch=epoch, bad_epochs=0, best_model=_copy_state(self.model))
                        self.best_epoch_, self.best_score_ = epoch, score
                    else:
                        progress["bad_epochs"] += 1
                    for s in torch_schedulers:
                        if s.on_plateau:
                            s.scheduler.step(score)
                for s in torch_schedulers:
                    if s.unit == "epoch" and not s.on_plateau:
                        s.scheduler.step()

                progress["epoch"] = epoch + 1
                if self.patience is not None and progress["bad_epochs"] >= self.patience:
                    progress["stopped"] = True
                self._after_evaluation(row)
                self.log.append(row)
                for logger in self.loggers:
                    logger(row)
                self.on_epoch_end(row)
                bar.update(1)
                bar.set_postfix({"loss": f"{row['train_loss']:.4g}", self.monitor_: f"{row.get(self.monitor_, float('nan')):.4g}"})

                if logdir is not None:
                    self._capture_loader_states(loader, valid_loader)
                    last = progress["epoch"] >= max_epochs or progress["stopped"]
                    save_last = last or progress["epoch"] % save_frequency == 0
                    # one state for both files: it copies the model and the best model to the CPU
                    state = self.state_dict() if improved or save_last else None
                    if improved:
                        _checkpoint.save_checkpoint(logdir / _checkpoint.BEST, state)
                    if save_last:
                        _checkpoint.save_checkpoint(logdir / _checkpoint.LAST, state)
                        if save_hook is not None:
                            save_hook(epoch, self)
            self._restore_best()
            final = dict(self.log[progress["best_epoch"]]) if progress["best_epoch"] is not None and progress["best_epoch"] < len(self.log) else {}
            final["best_epoch"] = progress["best_epoch"]
        finally:
            bar.close()
            self._finish_loggers(final)
        return self.log

    def _restore_best(self) -> None:
        best = self._progress.get("best_model")
        if best is not None:
            self.model.load_state_dict(best)

    def _train_epoch(self, loader, epoch: int, step_schedules, torch_schedulers) -> Dict[str, float]:
        progress = self._progress
        accumulator = MetricAccumulator(self.metrics) if self.track_train_metrics else None
        loss_sum = penalty_sum = 0.0
        n_stims = 0
        for index, batch in enumerate(loader):
            for s in step_schedules:
                self.set_hyperparameter(s.target, s(progress["step"]))
            batch = self._to_device(batch)
            out = self.step(batch)
            loss = float(out["loss"])
            if not math.isfinite(loss):
                self._restore_best()
                raise TrainingDivergedError(epoch, progress["step"], index, loss, progress["best_epoch"])
            lr = self.current_lr
            size = int(batch["responses"].shape[0])
            loss_sum += float(out.get("data_loss", loss)) * size
            penalty_sum += float(out.get("penalty", 0.0)) * size
            n_stims += size
            if accumulator is not None:
                if "pred" not in out:
                    raise ValueError("track_train_metrics=True needs step() to return the batch's prediction under 'pred'.")
                accumulator.update(out["pred"], batch["responses"])
            progress["step"] += 1
            for s in torch_schedulers:
                if s.unit == "step":
                    s.scheduler.step()
        if n_stims == 0:
            raise ValueError(f"the training loader yielded no batch in epoch {epoch}.")
        row = {"train_loss": loss_sum / n_stims}
        if self.penalties:
            row["train_penalty"] = penalty_sum / n_stims
        if accumulator is not None:
            row.update({f"train_{name}": _nanmean(values) for name, values in accumulator.compute().items()})
        row["lr"] = lr
        return row
