"""One fit, start to end: :py:class:`FitLoop` owns everything that lives for it.

:py:meth:`Solver.fit <strfsolver.solver.Solver.fit>` builds a
:py:class:`FitLoop` and runs it. The loop holds what exists only while a fit
runs -- the early stopping rule, the schedules, the per-neuron tracker, the
reporter (loggers and progress bar), the checkpoint writer -- and writes
what a fit leaves behind into the solver's fitted attributes
(``training_state_``, ``log``, ``monitor_``, ``last_validation_``, ...). It
reaches the solver only through its configuration, its declared hooks
(``step``, ``validation``, ``_tracker``, ``state_dict``,
``load_state_dict``, ``on_epoch_end``) and its public methods.

An epoch's training part is an *epoch runner*, named by the solver's
``epoch_runner`` class attribute: :py:class:`GradientEpoch` (``step`` on
every batch) for the gradient solvers, a closed-form solve for ``"ridge"``.

Data flow of one epoch: loader -> :py:meth:`Solver.step` (per batch) ->
training entries of the epoch dict -> :py:meth:`Solver.validation` ->
early stopping and per-neuron tracking -> history, loggers, checkpoints.
"""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

import torch
from torch import Tensor, nn

from strfsolver.utils import seeding as _random
from strfsolver.utils.checks import all_finite, check_count, short_repr
from strfsolver.data import PaddedLoader, ValidationCache, metric_responses
from strfsolver.metrics import MetricAccumulator
from strfsolver.nn.standardize import is_standardized, loader_stimuli, set_standardization, stimulus_statistics
from strfsolver.solver import checkpoint as _checkpoint
from strfsolver.solver import recovery as _recovery
from strfsolver.solver.activity import PredictionStatistics
from strfsolver.solver.custom_metrics import WholeSetCollector
from strfsolver.solver.data_checks import check_fit_data, describe_non_finite, may_serve_empty_batches
from strfsolver.solver.diagnostics import FitWarning, diagnose
from strfsolver.solver.errors import TrainingDivergedError
from strfsolver.solver.loop import CheckpointWriter, EarlyStopping, Reporter, ScheduleRunner, check_monitor_key, copy_state, resolve_monitor
from strfsolver.solver.overfit import RepeatedBatches
from strfsolver.solver.neurons import NeuronLossMean, NeuronTracker, append_epoch, bin_counts, neuron_losses, per_neuron_values, scores_of
from strfsolver.solver.persistence import warn_changed_options
from strfsolver.solver.repeat_readers import check_repeats_available
from strfsolver.solver.schedules import check_schedules
from strfsolver.solver.state import TrainingState

__all__ = ["FitLoop", "GradientEpoch", "restore_best", "ACTIVE_NEURONS"]

Batch = Dict[str, Any]

#: the batch key under which the fit loop passes the ``(N,)`` mask of neurons still training
#: (per-neuron solvers in ``"freeze"`` mode) to ``step`` and ``_loss``
ACTIVE_NEURONS = "active_neurons"


def _nanmean(values: Tensor) -> float:
    # nanmean is NaN for an empty or all-NaN tensor already
    return float(values.detach().nanmean())


def restore_best(model: nn.Module, state: TrainingState, tracker: Optional[NeuronTracker]) -> None:
    """Put the best state of a fit back into ``model``; a per-neuron tracker overlays each neuron's own."""
    if state.best_model is not None:
        model.load_state_dict(state.best_model)
    if tracker is not None:
        tracker.restore(state, model)


class GradientEpoch:
    """The training part of an epoch for the gradient solvers: :py:meth:`Solver.step` on every batch.

    Returns the epoch dict's training entries (``train_loss``, ``train_penalty``,
    ``train_<metric>`` of every metric, custom ones included, ``pred_mean``/``pred_min``/``pred_max``
    (:py:mod:`strfsolver.solver.activity`), ``lr``) and the per-neuron training values a ``train_``
    monitor of a per-neuron tracker needs.
    """

    #: whether the fit needs the solver's optimizer (built before the first epoch)
    uses_optimizer = True
    #: whether the end-of-fit advice (:py:mod:`strfsolver.solver.diagnostics`) applies
    diagnosable = True
    #: the epochs a fit takes at most, whatever ``max_epochs`` says (``None``: ``max_epochs``)
    epochs = None

    def __call__(self, loop: "FitLoop", batches: Iterable[Batch], epoch: int) -> Tuple[Dict[str, Any], Dict[str, Tensor]]:
        solver, state, tracker = loop.solver, loop.state, loop.tracker
        builtin = solver.builtin_metrics
        accumulator = MetricAccumulator(builtin) if solver.track_train_metrics and builtin else None
        # custom metrics have no streamed form: they see the epoch's training predictions at once, as in validation
        collector = WholeSetCollector(solver.metric_functions) if solver.track_train_metrics and solver.metric_functions else None
        neuron_loss = NeuronLossMean() if tracker is not None and loop.monitor == "train_loss" else None
        activity = PredictionStatistics()
        freezes = tracker is not None and tracker.mode == "freeze"
        loss_sum = penalty_sum = 0.0
        n_stims, lr, index, loss = 0, solver.current_lr, 0, math.nan
        for index, batch in enumerate(batches):
            loop.schedules.begin_step(state.step)
            batch = solver.prepare(batch)
            if loop.empty_batches_possible and bool(batch["responses"].isnan().all()):
                continue  # nothing recorded: no loss to learn from, and not a divergence
            if freezes:
                batch[ACTIVE_NEURONS] = tracker.active(state)
            out = solver.step(batch)
            if not isinstance(out, dict) or "loss" not in out:
                got = f"a dict with keys {sorted(out)}" if isinstance(out, dict) else type(out).__name__
                raise ValueError(f"step() must return a dict with at least 'loss' (a float), got {got}.")
            if tracker is not None:
                tracker.hold(state, solver.model)  # frozen neurons stay at their best snapshot
            loss = float(out["loss"])
            if not math.isfinite(loss):
                loop.restore_best()
                bad_data = describe_non_finite(batch)
                if bad_data is not None:  # the data, not the learning rate, made the loss non-finite
                    raise ValueError(f"epoch {epoch}, step {index} of the epoch: {bad_data}.")
                raise TrainingDivergedError(epoch, state.step, index, loss, state.best_epoch, cause=out.get("diverged"))
            lr = solver.current_lr
            size = len(batch["stims"])
            loss_sum += float(out.get("data_loss", loss)) * size
            penalty_sum += float(out.get("penalty", 0.0)) * size
            n_stims += size
            if isinstance(out.get("pred"), Tensor):
                activity.update(out["pred"], batch["responses"])
            if accumulator is not None or collector is not None or neuron_loss is not None:
                if "pred" not in out:
                    raise ValueError("track_train_metrics=True (or a train_ monitor of a per-neuron solver) needs "
                                     "step() to return the batch's prediction under 'pred'.")
                if accumulator is not None:
                    accumulator.update(out["pred"], metric_responses(batch))
                if collector is not None:
                    collector.update(out["pred"], batch["responses"])
                if neuron_loss is not None:
                    values = out.get("neuron_loss")
                    if values is None:
                        values = neuron_losses(solver.criterion, out["pred"], batch["responses"])
                    neuron_loss.update(values, bin_counts(batch["responses"]))
            state.step += 1
            loop.schedules.end_step()
            # the step's prediction (B x N x T) would otherwise stay alive through the next step, at its peak
            del out
        if n_stims == 0:
            raise ValueError(f"the training loader yielded no batch in epoch {epoch}.")
        if not all_finite(solver.parameters()):
            # an update can overflow the parameters under a finite loss; then neither validation nor a checkpoint may see them
            loop.restore_best()
            raise TrainingDivergedError(epoch, state.step - 1, index, loss, state.best_epoch,
                                        cause="the parameters became non-finite after the update")
        row: Dict[str, Any] = {"train_loss": loss_sum / n_stims}
        if solver.penalties:
            row["train_penalty"] = penalty_sum / n_stims
        train_values: Dict[str, Tensor] = {}
        if accumulator is not None:
            train_values = accumulator.compute()
        if collector is not None:
            train_values.update(collector.compute())
        if train_values:
            # in the order of ``metrics``, built-in and custom alike
            train_values = {name: train_values[name] for name in solver.metrics if name in train_values}
            row.update({f"train_{name}": float(values.nanmean()) for name, values in train_values.items()})
        if neuron_loss is not None:
            train_values["neuron_loss"] = neuron_loss.compute()
        row.update(activity.compute())
        row["lr"] = lr
        return row, train_values


class FitLoop:
    """Everything that lives for one :py:meth:`Solver.fit`, and the loop over its epochs.

    Args:
        solver: The solver to fit (its configuration and hooks).
        loader, valid_loader, test_loader: As in :py:meth:`Solver.fit`.
        max_epochs, save_frequency, valid_frequency, save_hook, resume,
        keep_every, validate_initial, logdir, overfit_batches: As in :py:meth:`Solver.fit`
        (checked here, before anything runs).

    Attributes (for the length of the fit): ``state`` (the solver's
    ``training_state_``), ``stopping``, ``schedules``, ``tracker`` (or
    ``None``), ``reporter``, ``writer`` (or ``None``), ``monitor``/``mode``,
    ``validation_cache`` (or ``None``).
    """

    def __init__(self, solver: Any, loader: Iterable[Batch], valid_loader: Optional[Iterable[Batch]] = None, *,
                 max_epochs: Optional[int] = None, logdir: Optional[Path] = None, save_frequency: Optional[int] = None,
                 valid_frequency: int = 1, save_hook: Optional[Callable[[int, Any], Any]] = None, resume: bool = False,
                 keep_every: Optional[int] = None, validate_initial: bool = False, test_loader: Optional[Iterable[Batch]] = None,
                 overfit_batches: Optional[int] = None):
        self.solver, self.loader, self.valid_loader, self.test_loader = solver, loader, valid_loader, test_loader
        check_fit_data(solver.model, loader, valid_loader, test_loader, n_neurons=getattr(solver, "n_neurons_", None))
        check_repeats_available(solver, loader, valid_loader, test_loader)
        self.empty_batches_possible = may_serve_empty_batches(loader)
        self.max_epochs = check_count(solver.max_epochs if max_epochs is None else max_epochs, "max_epochs", 1)
        self.valid_frequency = check_count(valid_frequency, "valid_frequency", 1)
        save_frequency = check_count(1 if save_frequency is None else save_frequency, "save_frequency", 1)
        if resume and logdir is None:
            raise ValueError("resume=True needs the logdir of the run to continue.")
        if resume and getattr(solver, "recovered_", None) is not None:
            raise ValueError(f"resume=True and the recover() of {solver.recovered_.source} both say where this fit starts; "
                             "call fit without resume to continue from the recovered epoch, or recover without the "
                             "'progress' part to resume from the last checkpoint.")
        self.keep_every = check_count(keep_every, "keep_every", 1, allow_none=True)
        if keep_every is not None and logdir is None:
            raise ValueError("keep_every needs a logdir to write the indexed checkpoints into.")
        self.logdir = None if logdir is None else Path(logdir)
        self.resume, self.validate_initial = resume, validate_initial
        self.overfit_batches = check_count(overfit_batches, "overfit_batches", 1, allow_none=True)
        solver.overfit_batches_ = self.overfit_batches  # recorded in checkpoints: a resume compares it
        self.epoch_runner = solver.epoch_runner()
        if self.epoch_runner.epochs is not None:  # a closed-form solve is one epoch, whatever max_epochs says
            self.max_epochs = min(self.max_epochs, self.epoch_runner.epochs)
        self.has_validation = valid_loader is not None
        with warnings.catch_warnings():
            if not self.epoch_runner.diagnosable:  # a closed-form solve has no early stopping to warn about
                warnings.simplefilter("ignore", UserWarning)
            self.monitor, self.mode = resolve_monitor(solver, self.has_validation)
        check_monitor_key(solver, self.monitor, self.has_validation)
        if self.epoch_runner.uses_optimizer:
            solver.ensure_optimizer()
        self.schedules = ScheduleRunner(check_schedules(solver) if self.epoch_runner.uses_optimizer else [], solver.set_hyperparameter)
        self.stopping = EarlyStopping(self.mode, solver.patience, solver.min_delta)
        self.writer = None if logdir is None else CheckpointWriter(self.logdir, save_frequency, save_hook)
        self.tracker: Optional[NeuronTracker] = None
        self.validation_cache: Optional[ValidationCache] = None
        if self.has_validation and self._uses_psth(valid_loader, training=False):
            # the solver's validation hook reads it while this fit runs
            self.validation_cache = ValidationCache(valid_loader, solver.builtin_metrics, solver.prepare)
        self.reporter: Optional[Reporter] = None

    @property
    def state(self) -> TrainingState:
        return self.solver.training_state_

    # ------------------------------------------------------------------
    def run(self) -> None:
        """Start (or resume), train until ``max_epochs`` or early stopping, restore the best state."""
        solver = self.solver
        solver.logdir_ = self.logdir
        recovered, solver.recovered_ = getattr(solver, "recovered_", None), None  # one fit continues a recover()
        # a closed-form solve has nothing to continue: it always solves afresh
        continues = self.epoch_runner.epochs is None and ((self.resume and self._resume()) or self._continue(recovered))
        if not continues:
            self._start_fresh()
        # after a resume too: the fit goes on with this solver's monitor (warned when it changed)
        solver.monitor_, solver.mode_ = self.monitor, self.mode
        state = self.state
        if state.best_model is None:
            state.best_model = copy_state(solver.model)
        self.tracker = solver._tracker(self.stopping)
        batches = self.loader.psth_view() if self._uses_psth(self.loader, training=True) else self.loader
        if self.overfit_batches is not None:
            batches = RepeatedBatches(batches, self.overfit_batches)
        self.reporter = Reporter(solver.loggers, solver.progress, self.max_epochs, state.epoch, self.monitor)
        final = None
        try:
            if state.epoch == 0:
                if self.validate_initial and self.has_validation:
                    solver.initial_validation_ = solver.validation(self.valid_loader)
                    self._record_neurons(-1, solver.initial_validation_)
                if self.keep_every is not None:
                    _recovery.save_indexed(self.logdir, 0, solver.state_dict())
            while state.epoch < self.max_epochs and not state.stopped:
                self._run_epoch(batches)
            self.restore_best()
            final = self._final()
        finally:
            self.reporter.close(final)
            # the best state was copied into the parameters in place: a forward the caller makes in the
            # same autocast region must not find the last epoch's casts (see batches.begin_sequence)
            torch.clear_autocast_cache()

    def _run_epoch(self, batches: Iterable[Batch]) -> None:
        solver, state = self.solver, self.state
        epoch, start = state.epoch, time.perf_counter()
        self.schedules.begin_epoch(epoch)
        train_row, train_values = self.epoch_runner(self, batches, epoch)
        row = {"epoch": epoch, **train_row}
        evaluated = not self.monitor.startswith("val_")
        if self.has_validation and ((epoch + 1) % self.valid_frequency == 0 or epoch + 1 == self.max_epochs):
            solver.last_validation_ = solver.validation(self.valid_loader)
            self._record_neurons(epoch, solver.last_validation_)
            row["val_loss"] = solver.last_validation_["loss"]
            row.update({f"val_{name}": _nanmean(solver.last_validation_[name]) for name in solver.metrics})
            evaluated = True
        row["seconds"] = time.perf_counter() - start
        state.time_trained += row["seconds"]
        improved = evaluated and self._end_evaluated_epoch(row, train_values)
        self.schedules.end_epoch()
        state.epoch = epoch + 1
        finished = state.stopped or state.epoch >= self.max_epochs
        if state.epoch >= self.max_epochs and not state.stopped:
            state.stop_reason = "max_epochs"
        if finished:
            row["stop_reason"] = state.stop_reason
        solver.log.append(row)
        self.reporter(row)
        solver.on_epoch_end(row)
        if self.writer is not None:
            self._capture_loader_states()
            self.writer.after_epoch(solver, epoch, improved, finished=finished)
            # a fit that ends by its runner's own epoch count keeps its last state whatever the period
            if self.keep_every is not None and (state.epoch % self.keep_every == 0 or (finished and self.epoch_runner.epochs is not None)):
                _recovery.save_indexed(self.logdir, state.epoch, solver.state_dict())

    def restore_best(self) -> None:
        """Put the best state back into the model (each neuron's own, with a per-neuron tracker)."""
        restore_best(self.solver.model, self.state, self.tracker)

    # ------------------------------------------------------------------
    # starting
    # ------------------------------------------------------------------
    def _start_fresh(self) -> None:
        solver = self.solver
        if self.logdir is not None:
            _recovery.clear_indexed(self.logdir)  # an earlier run's: recover(k) must name this run's epoch k
        solver.training_state_ = solver.state_class()
        solver.log = []
        for penalty in solver.penalties:
            if callable(getattr(penalty, "setup", None)):
                penalty.setup(solver.model)
        if solver.standardize:
            if is_standardized(solver.model) is False:
                set_standardization(solver.model, *stimulus_statistics(loader_stimuli(self.loader)))
        if solver.init == "ridge":
            from strfsolver.ridge.models import ridge_initialize

            ridge_initialize(solver.model, self.loader, solver.prepare)

    def _resume(self) -> bool:
        path = self.writer.last
        if not path.is_file():
            return False
        solver = self.solver
        state = _checkpoint.load_checkpoint(path, device=solver.device)
        solver.load_state_dict(state)
        warn_changed_options(solver, state.get("options"), str(path))
        self._go_on(state["rng"], state.get("loaders", {}))
        return True

    def _continue(self, recovered: Optional[_recovery.Continuation]) -> bool:
        """Go on from what ``recover(..., parts=(..., "progress"))`` put back (:py:mod:`strfsolver.solver.recovery`)."""
        if recovered is None:
            return False
        # the epochs after the recovered one are abandoned: a log not recovered with it (the "history"
        # part) may still hold them, from this solver's own earlier fit
        self.solver.log = [row for row in self.solver.log if row.get("epoch", -1) < recovered.epoch]
        warn_changed_options(self.solver, recovered.options, str(recovered.source))
        if self.logdir is not None:
            _recovery.drop_later_states(self.logdir, recovered, self.state.best_epoch, self.state.best_score)
        self._go_on(recovered.rng, recovered.loaders or {})
        return True

    def _go_on(self, rng: Optional[Dict[str, Any]], loader_states: Dict[str, Any]) -> None:
        """What a resumed or continued fit sets before its first epoch: the RNG and loader states it goes on from."""
        solver = self.solver
        if solver.log and not self.state.stopped:
            # the fit goes on: its last epoch so far is not where it ends
            solver.log[-1].pop("stop_reason", None)
            self.state.stop_reason = None
        if rng is not None:
            _random.set_rng_state(rng)
        for key, value in (("train", self.loader), ("valid", self.valid_loader)):
            saved = loader_states.get(key)
            if saved is not None and callable(getattr(value, "load_state_dict", None)):
                value.load_state_dict(saved)

    def _uses_psth(self, loader: Any, training: bool) -> bool:
        solver = self.solver
        if solver.reads_repeats or solver.criterion_reads_repeats:
            return False
        # train metrics need the repeats of the training batches (signal power), not of the validation ones
        if training:
            return isinstance(loader, PaddedLoader) and not solver.track_train_metrics
        # custom metrics see every repeat, which the cache's PSTHs no longer hold
        return ValidationCache.applies_to(loader) and not solver.metric_functions

    # ------------------------------------------------------------------
    # evaluated epochs
    # ------------------------------------------------------------------
    def _record_neurons(self, epoch: int, validation: Dict[str, Any]) -> None:
        values = per_neuron_values(validation, self.solver.metrics)
        self.state.neuron_history = append_epoch(self.state.neuron_history, epoch, values)
        self.reporter.neurons(epoch, values)

    def _end_evaluated_epoch(self, row: Dict[str, Any], train_values: Dict[str, Tensor]) -> bool:
        """Early stopping (on the mean over neurons), the plateau rule and per-neuron tracking."""
        solver, state = self.solver, self.state
        if self.monitor not in row:
            raise KeyError(
                f"monitor {short_repr(self.monitor)} is not in the epoch dict; available keys: {sorted(row)}. "
                "Set monitor= to one of them (val_* keys need a valid_loader)."
            )
        score = float(row[self.monitor])
        improved = self.stopping.update(state, score, row["epoch"], lambda: copy_state(solver.model))
        self.schedules.evaluated(score)
        plateau = self._plateau_patience()
        if plateau and not improved and not state.stopped and state.bad_epochs % plateau == 0:
            # a noisy validation score stalls before the fit has converged: a smaller step, not the end
            for group in solver.optimizer.param_groups:
                group["lr"] *= solver.lr_decay
        if self.tracker is not None:
            scores, _ = scores_of(self.monitor, solver.last_validation_, train_values)
            row.update(self.tracker.update(state, scores, row["epoch"], solver.model))
        return improved

    def _plateau_patience(self) -> int:
        solver, schedules = self.solver, self.schedules
        if not self.epoch_runner.uses_optimizer or (self.tracker is not None and self.tracker.mode == "freeze"):
            # one neuron's plateau cannot lower the rate of the stacked optimizer alone
            return 0
        if solver.plateau_patience is not None:
            return solver.plateau_patience
        sets_lr = any(s.target.partition("@")[0] == "lr" for s in schedules.per_epoch + schedules.per_step) or bool(schedules.torch)
        if solver.patience is None or sets_lr:
            return 0
        return max(1, solver.patience // 2)

    def _capture_loader_states(self) -> None:
        states = {}
        for key, value in (("train", self.loader), ("valid", self.valid_loader)):
            if value is not None and callable(getattr(value, "state_dict", None)):
                states[key] = value.state_dict()
        self.solver.loader_states_ = states

    # ------------------------------------------------------------------
    # the end
    # ------------------------------------------------------------------
    def _final(self) -> Dict[str, Any]:
        solver, state = self.solver, self.state
        best = state.best_epoch
        final = dict(solver.log[best]) if best is not None and best < len(solver.log) else {}
        final["best_epoch"], final["stop_reason"] = best, state.stop_reason
        if self.epoch_runner.diagnosable:
            self._diagnose(final)
        if self.test_loader is not None or any(callable(getattr(x, "finalize", None)) for x in solver.loggers):
            final.update(self._final_evaluation())
        return final

    def _diagnose(self, final: Dict[str, Any]) -> None:
        """Advice on the finished fit: kept in ``diagnosis_``, added to the last epoch dict and ``final``, warned."""
        solver, train_loader = self.solver, self.loader if self.has_validation else None
        train_score = None
        name = self.monitor[len("val_"):] if self.monitor.startswith("val_") else None
        if isinstance(train_loader, PaddedLoader) and name in solver.metrics and self.mode == "max" and solver.log:
            # the best state on its own training stimuli; the loader's epoch is put back, so a
            # later fit (or a resumed one) shuffles exactly as it would have
            epoch = train_loader.epoch
            try:
                train_score = _nanmean(solver.validation(train_loader)[name])
            finally:
                train_loader.set_epoch(epoch)
        solver.diagnosis_ = diagnose(solver.log, self.monitor, self.state.stop_reason, self.state.best_epoch,
                                     train_score, solver.patience)
        if solver.diagnosis_:
            solver.log[-1]["diagnosis"] = final["diagnosis"] = " ".join(solver.diagnosis_)
            for sentence in solver.diagnosis_:
                warnings.warn(sentence, FitWarning, stacklevel=5)

    def _final_evaluation(self) -> Dict[str, Any]:
        """The best state on validation and test: ``final_validation_`` and the ``finalize`` extras."""
        solver = self.solver
        solver.final_validation_ = {}
        for split, split_loader in (("valid", self.valid_loader), ("test", self.test_loader)):
            if split_loader is not None:
                solver.final_validation_[split] = solver.validation(split_loader)
        out: Dict[str, Any] = {"neurons": {}}
        for split, values in solver.final_validation_.items():
            out["neurons"][split] = per_neuron_values(values, solver.metrics)
            out[f"final_{split}_loss"] = values["loss"]
            out.update({f"final_{split}_{name}": _nanmean(values[name]) for name in solver.metrics})
        return out
