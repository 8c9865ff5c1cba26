"""The parts of the training loop around the gradient steps, one class each.

The fit loop (:py:mod:`strfsolver.solver.fit_loop`) is built of these:

- :py:class:`EarlyStopping`: which evaluated epoch is the best, when to stop;
- :py:class:`ScheduleRunner`: hyperparameter schedules and ``torch`` schedulers,
  called at the start of every epoch and step and after every evaluation;
- :py:class:`CheckpointWriter`: the last and best checkpoints of a ``logdir``;
- :py:class:`Reporter`: the epoch dicts to the loggers and the progress bar.

Each is small and stateless apart from what it is given, so a custom loop
(or a test) can use any of them alone; :py:class:`~strfsolver.solver.fit_loop.FitLoop`
puts them together for one fit.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import tqdm
from torch import Tensor

from strfsolver.metrics import available_metrics
from strfsolver.solver import checkpoint as _checkpoint
from strfsolver.solver import schedules as _schedules
from strfsolver.solver.state import TrainingState
from strfsolver.utils.checks import short_repr

__all__ = ["EarlyStopping", "ScheduleRunner", "CheckpointWriter", "Reporter", "resolve_monitor", "epoch_keys", "check_monitor_key", "copy_state", "monitor_mode", "SCORE_METRICS", "MODES"]

MODES = ("max", "min")


class EarlyStopping:
    """The best-epoch and patience rule.

    An evaluated score improves on the best one when it is better by more
    than ``min_delta`` (``mode="max"``: larger; ``"min"``: smaller). The first
    evaluation is always the best so far; later a NaN score never improves
    and any number improves on a NaN best. After ``patience`` evaluated epochs
    without improvement the fit stops (``None``: never).

    Args:
        mode: ``"max"`` or ``"min"``.
        patience: Evaluated epochs without improvement before stopping, or ``None``.
        min_delta: Margin an improvement must exceed (>= 0).
    """

    def __init__(self, mode: str, patience: Optional[int], min_delta: float):
        self.mode, self.patience, self.min_delta = mode, patience, float(min_delta)

    def improves(self, score: float, best: Optional[float]) -> bool:
        """Whether ``score`` improves on ``best`` (``None``: no evaluation yet)."""
        if best is None:
            return True
        if math.isnan(score):
            return False
        if math.isnan(best):
            return True
        return score > best + self.min_delta if self.mode == "max" else score < best - self.min_delta

    def improves_each(self, scores: Tensor, best: Tensor, best_epoch: Tensor) -> Tensor:
        """:py:meth:`improves` for ``(N,)`` scores at once (``best_epoch < 0``: no evaluation yet)."""
        better = scores > best + self.min_delta if self.mode == "max" else scores < best - self.min_delta
        return (best_epoch < 0) | (~scores.isnan() & (best.isnan() | better))

    def update(self, state: TrainingState, score: float, epoch: int, best_model: Callable[[], Dict[str, Tensor]]) -> bool:
        """Record an evaluated epoch's score in ``state``; returns whether it is the new best.

        Args:
            state: The fit's state (best score and epoch, patience counter, stop flag).
            score: The monitored value.
            epoch: The epoch evaluated.
            best_model: Called for a copy of the model's state when the epoch is the best.
        """
        improved = self.improves(score, state.best_score)
        if improved:
            state.best_score, state.best_epoch, state.bad_epochs = score, epoch, 0
            state.best_model = best_model()
        else:
            state.bad_epochs += 1
        if self.patience is not None and state.bad_epochs >= self.patience:
            state.stopped, state.stop_reason = True, "patience"
        return improved


class ScheduleRunner:
    """Drives the solver's schedules at the right moments.

    Args:
        schedules: Checked :py:class:`~strfsolver.solver.schedules.Schedule`
            and :py:class:`~strfsolver.solver.schedules.TorchScheduler` items.
        set_value: ``set_value(target, value)``, the solver's
            :py:meth:`~strfsolver.solver.Solver.set_hyperparameter`.
    """

    def __init__(self, schedules: Sequence[Any], set_value: Callable[[str, float], None]):
        plain = [s for s in schedules if isinstance(s, _schedules.Schedule)]
        self.per_epoch = [s for s in plain if s.unit == "epoch"]
        self.per_step = [s for s in plain if s.unit == "step"]
        self.torch = [s for s in schedules if isinstance(s, _schedules.TorchScheduler)]
        self.set_value = set_value

    def begin_epoch(self, epoch: int) -> None:
        for s in self.per_epoch:
            self.set_value(s.target, s(epoch))

    def begin_step(self, step: int) -> None:
        for s in self.per_step:
            self.set_value(s.target, s(step))

    def end_step(self) -> None:
        for s in self.torch:
            if s.unit == "step":
                s.scheduler.step()

    def evaluated(self, score: float) -> None:
        for s in self.torch:
            if s.on_plateau:
                s.scheduler.step(score)

    def end_epoch(self) -> None:
        for s in self.torch:
            if s.unit == "epoch" and not s.on_plateau:
                s.scheduler.step()


class CheckpointWriter:
    """Writes :py:data:`~strfsolver.solver.checkpoint.BEST` and
    :py:data:`~strfsolver.solver.checkpoint.LAST` into ``logdir`` after the epochs that need them.

    Args:
        logdir: The folder (created on the first write).
        save_frequency: Write the last state every this many epochs (and when training ends).
        save_hook: ``save_hook(epoch, solver)`` after each write of the last state.
    """

    def __init__(self, logdir: Path, save_frequency: int, save_hook: Optional[Callable[[int, Any], Any]] = None):
        self.logdir, self.save_frequency, self.save_hook = Path(logdir), save_frequency, save_hook

    @property
    def last(self) -> Path:
        return self.logdir / _checkpoint.LAST

    @property
    def best(self) -> Path:
        return self.logdir / _checkpoint.BEST

    def after_epoch(self, solver: Any, epoch: int, improved: bool, finished: bool) -> None:
        """Write what epoch ``epoch`` calls for: the best state if it improved, the last one on schedule."""
        save_last = finished or (epoch + 1) % self.save_frequency == 0
        if not (improved or save_last):
            return
        # one state for both files: it copies the model and the best model to the CPU
        state = solver.state_dict()
        if improved:
            _checkpoint.save_checkpoint(self.best, state)
        if save_last:
            _checkpoint.save_checkpoint(self.last, state)
            if self.save_hook is not None:
                self.save_hook(epoch, solver)


class Reporter:
    """Sends every epoch dict to the loggers and the progress bar; closes both at the end.

    Loggers are callables receiving each epoch dict; an optional
    ``finalize(final)`` receives the best epoch's dict when the fit ends
    normally, and an optional ``close()`` is called in any case.

    Args:
        loggers: The solver's loggers.
        progress: Show a progress bar over epochs.
        total: Epochs of the fit.
        initial: Epochs already done (a resumed fit).
        monitor: The monitored key, shown beside the loss.
    """

    def __init__(self, loggers: Sequence[Callable[[Dict[str, Any]], Any]], progress: bool, total: int, initial: int, monitor: str):
        self.loggers: List[Callable[[Dict[str, Any]], Any]] = list(loggers)
        self.monitor = monitor
        self.bar = tqdm.tqdm(total=total, initial=min(initial, total), disable=not progress, desc="epochs", unit="epoch")

    def __call__(self, row: Dict[str, Any]) -> None:
        for logger in self.loggers:
            logger(row)
        self.bar.update(1)
        postfix = {"loss": f"{row['train_loss']:.4g}", self.monitor: f"{row.get(self.monitor, float('nan')):.4g}"}
        self.bar.set_postfix(postfix)

    def neurons(self, epoch: int, values: Dict[str, Tensor]) -> None:
        """Per-neuron ``(N,)`` values of a validated epoch to the loggers that have ``log_neurons``."""
        for logger in self.loggers:
            if callable(getattr(logger, "log_neurons", None)):
                logger.log_neurons(epoch, values)

    def close(self, final: Optional[Dict[str, Any]]) -> None:
        if final is not None and final.get("stop_reason") and not self.bar.disable:
            self.bar.set_description(f"epochs (stopped: {final['stop_reason']})")
            if final.get("diagnosis"):
                self.bar.write(f"fit advice: {final['diagnosis']}")
        self.bar.close()
        for logger in self.loggers:
            if final is not None and callable(getattr(logger, "finalize", None)):
                logger.finalize(final)
        for logger in self.loggers:
            if callable(getattr(logger, "close", None)):
                logger.close()


def copy_state(module: torch.nn.Module) -> Dict[str, Tensor]:
    """Detached copies of ``module.state_dict()`` (on the module's device)."""
    return {name: t.detach().clone() for name, t in module.state_dict().items()}


#: built-in metrics that score a prediction, larger being better; the others describe the data
SCORE_METRICS = ("cc", "cc_norm", "cc_norm_hsu", "fve")
#: epoch-dict quantities that are minimised
LOSS_NAMES = ("loss", "penalty")


def monitor_mode(monitor: Any, mode: Optional[str], metrics: Sequence[str] = SCORE_METRICS, custom: Sequence[str] = ()) -> str:
    """The direction of a monitored key: losses are minimised, scores maximised.

    Args:
        monitor: ``train_loss``, ``val_loss``, ``train_penalty``, or ``val_<score>`` /
            ``train_<score>`` of a built-in score (:data:`SCORE_METRICS`) or a custom metric.
        mode: ``None`` to infer it, or ``"max"`` / ``"min"``, which must agree with the key.
        metrics: The solver's metric names (for the list of keys in a message).
        custom: Names of the custom metrics; their direction must be given with ``mode``.

    Raises:
        ValueError: for a key that is neither a loss nor a score (``"seconds"``, ``"val_snr"``),
            a ``mode`` that contradicts the key, or a custom metric without a ``mode``.
        KeyError: for a name no epoch dict has (listing the keys that can be monitored).
    """
    if mode is not None and mode not in MODES:
        raise ValueError(f"mode must be 'max' or 'min', got {short_repr(mode)} (or leave it None: inferred from the monitor).")
    prefix, _, name = monitor.partition("_") if isinstance(monitor, str) else ("", "", "")
    if prefix not in ("train", "val") or not name:
        raise ValueError(f"monitor must be a key of the epoch dicts such as 'val_cc_norm', got {short_repr(monitor)}: a loss "
                         "('val_loss', 'train_loss') or a score ('val_<metric>', 'train_<metric>').")
    natural = "min" if name in LOSS_NAMES else None if name in custom else "max" if name in SCORE_METRICS else "?"
    if natural == "?":
        if name in available_metrics() or name in ("seconds", "lr", "epoch"):
            raise ValueError(f"monitor {short_repr(monitor)} is not a score of the prediction (it describes the data or the run); "
                             f"monitor a loss or one of the scores {list(SCORE_METRICS)}.")
        keys = ["train_loss", "val_loss"] + [f"{p}_{m}" for m in metrics if m in SCORE_METRICS or m in custom for p in ("val", "train")]
        raise KeyError(f"monitor {short_repr(monitor)} is not in the epoch dict; available keys: {sorted(keys)}.")
    if mode is None:
        if natural is None:
            raise ValueError(f"monitor {short_repr(monitor)} is a custom metric: say whether larger is better with mode='max' or 'min'.")
        return natural
    if natural is not None and mode != natural:
        kind = "a loss, which is minimised" if natural == "min" else "a score, where larger is better"
        raise ValueError(f"monitor {short_repr(monitor)} is {kind}, but mode={short_repr(mode)}; leave mode out (it is inferred) or set mode={short_repr(natural)}.")
    return mode


def resolve_monitor(solver: Any, has_validation: bool) -> Tuple[str, str]:
    """The ``(monitor, mode)`` a fit uses: the solver's, with the direction inferred from the key
    (:py:func:`monitor_mode`), or a ``train_`` fallback without validation data (warned)."""
    monitor = solver.monitor
    try:
        mode = monitor_mode(monitor, solver.mode, solver.metrics, tuple(solver.metric_functions))
    except KeyError:
        check_monitor_key(solver, monitor, has_validation)  # the message that lists every key of the epoch dicts
        raise
    if has_validation or not monitor.startswith("val_"):
        return monitor, mode
    name = monitor[len("val_") :]
    if name == "loss" or (solver.track_train_metrics and name in solver.metrics):
        fallback = ("train_" + name, mode)
    else:
        fallback = ("train_loss", "min")
    warnings.warn(
        f"fit() has no valid_loader, so monitor {short_repr(monitor)} cannot be computed; early stopping and the "
        f"best state use {short_repr(fallback[0])} (mode {short_repr(fallback[1])}) instead.",
        UserWarning,
        stacklevel=4,
    )
    return fallback


def epoch_keys(solver: Any, has_validation: bool) -> List[str]:
    """The keys :py:meth:`fit` puts in every evaluated epoch's dict."""
    keys = ["epoch", "train_loss", "lr", "seconds"]
    if solver.penalties:
        keys.append("train_penalty")
    if solver.track_train_metrics:
        keys += [f"train_{name}" for name in solver.metrics]
    if has_validation:
        keys += ["val_loss"] + [f"val_{name}" for name in solver.metrics]
    return sorted(keys)

def check_monitor_key(solver: Any, monitor: str, has_validation: bool) -> None:
    """Raise a ``KeyError`` listing the keys when ``monitor`` is not one an evaluated epoch has."""
    keys = epoch_keys(solver, has_validation)
    if monitor not in keys:
        raise KeyError(
            f"monitor {short_repr(monitor)} is not in the epoch dict; available keys: {keys}. "
            "Set monitor= to one of them (val_* keys need a valid_loader; train_<metric> keys need "
            "track_train_metrics=True)."
        )
