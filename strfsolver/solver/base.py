"""The abstract :py:class:`Solver`: configuration plus one declared block of hooks.

A solver is its options (the dataclass fields) and the hooks listed in
:py:data:`Solver.HOOKS`, each documented below with its contract and shapes.
A subclass overrides hooks and nothing else: :py:meth:`Solver._inference` is
abstract; :py:meth:`Solver._loss`, :py:meth:`Solver.step`,
:py:meth:`Solver._clip_gradients`, :py:meth:`Solver._tracker`,
:py:meth:`Solver.validation`, :py:meth:`Solver.transform`,
:py:meth:`Solver.state_dict` / :py:meth:`Solver.load_state_dict` and
:py:meth:`Solver.on_epoch_end` have defaults. Two class attributes complete
the block: ``reads_repeats`` and ``state_class``; ``epoch_runner`` and
``unused_options`` describe a variant (``"ridge"`` sets both).

:py:meth:`Solver.fit` builds a :py:class:`~strfsolver.solver.fit_loop.FitLoop`,
which owns everything that lives for one fit, runs it and returns the solver.
The spellings of deepSTRF, CEBRA and flyvis (``compute_loss``, ``evaluate``,
``on_epoch_end(epoch, row)``) are the opt-in mixin
:py:class:`strfsolver.solver.compat.HookAliases`. See ``docs/concepts.md``.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, Iterable, List, Optional, Sequence, Tuple, Type, Union

import numpy as np
import torch
from literate_dataclasses import dataclass, field
from torch import Tensor, nn

from strfsolver import losses as _losses
from strfsolver.data import ValidationCache
from strfsolver.solver import checkpoint as _checkpoint
from strfsolver.solver import evaluation as _evaluation
from strfsolver.solver import recovery as _recovery
from strfsolver.solver import schedules as _schedules
from strfsolver.solver.batches import begin_sequence, model_dtype, prepare_batch
from strfsolver.solver.compat import check_hook_names
from strfsolver.solver.fitted import FittedAttributes
from strfsolver.solver.fit_loop import FitLoop, GradientEpoch, restore_best
from strfsolver.solver.logdir import claim_logdir
from strfsolver.solver.loop import EarlyStopping
from strfsolver.solver.neurons import NeuronTracker
from strfsolver.solver.options import build_options, check_options
from strfsolver.solver.penalties import StepPredictions
from strfsolver.solver.persistence import load_solver_state, solver_state
from strfsolver.solver.repeat_readers import refuse_summary_to_readers
from strfsolver.solver.state import TrainingState
from strfsolver.solver.update import check_optimizer_parameters, gradient_update, loss_parts, total_penalty

__all__ = ["Solver", "DEFAULT_LR", "HOOKS"]

Batch = Dict[str, Any]

#: learning rate of the default optimizer for a model that declares no ``default_lr``
DEFAULT_LR = 3e-3

#: the methods a subclass may override (and other modules may call); everything else is private
HOOKS = ("_inference", "_loss", "step", "_clip_gradients", "_tracker", "validation", "transform",
         "state_dict", "load_state_dict", "on_epoch_end")


def _solver_dataclass(cls):
    # eq=False: solvers compare (and hash) by identity, like the modules they hold
    return dataclass(cls, eq=False)


@_solver_dataclass
class Solver(FittedAttributes, abc.ABC):
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
    (with ``track_train_metrics``), ``pred_mean``/``pred_min``/``pred_max`` (the training
    predictions', :py:mod:`strfsolver.solver.activity`), ``val_loss`` and ``val_<metric>`` (on
    validated epochs), ``lr`` (of the first parameter group, during the
    epoch's last step), ``seconds``, and on the last epoch ``stop_reason``
    (``"max_epochs"``, ``"patience"``, ``"all neurons stopped"`` or
    ``"closed form"``) and, when the fit shows a symptom of poor settings,
    ``diagnosis`` (advice, see :py:mod:`strfsolver.solver.diagnostics`).
    Metric values in the dict are the ``nanmean`` over neurons; the
    per-neuron ``(N,)`` tensors of the most recent validation are kept in
    :py:attr:`last_validation_`.

    Args:
        (fields)

    Attributes set while fitting: ``training_state_``
    (:py:class:`~strfsolver.solver.state.TrainingState`), ``best_epoch_``,
    ``best_score_``, ``stop_reason_``, ``diagnosis_`` (a list of advice
    sentences, also warned as :py:class:`~strfsolver.solver.diagnostics.FitWarning`),
    ``last_validation_`` (the dict of the last :py:meth:`validation` in
    :py:meth:`fit`), ``monitor_`` / ``mode_`` (the monitor actually used, see
    ``monitor``), ``logdir_``, ``loader_states_`` (the loaders' positions
    for a resume), ``time_trained_``, ``overfit_batches_`` (the last fit's); ``recovered_`` (see :py:meth:`recover`).
    """

    HOOKS: ClassVar[Tuple[str, ...]] = HOOKS  #: The hooks a subclass may override (:data:`HOOKS`).
    #: Whether the hooks read each repeat of ``batch["responses"]``. When False
    #: (and the criterion does not either), ``fit`` trains on each stimulus'
    #: PSTH, computed once, and caches a fixed-order validation loader's
    #: statistics: the same losses and metrics from R times less data.
    reads_repeats: ClassVar[bool] = False
    #: The training-state class this solver keeps between epochs.
    state_class: ClassVar[Type[TrainingState]] = TrainingState
    #: The training part of an epoch (:py:class:`~strfsolver.solver.fit_loop.GradientEpoch`: ``step`` on every batch).
    epoch_runner: ClassVar[Callable[[], Any]] = GradientEpoch
    #: Options this solver does not use; giving one a value other than its default is refused.
    unused_options: ClassVar[Tuple[str, ...]] = ()

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
        doc="Key of the epoch dict that decides the best epoch: ``val_loss``, ``train_loss`` or a score "
        "``val_<metric>`` / ``train_<metric>``. Without a validation loader a ``val_<x>`` monitor falls back to "
        "``train_<x>`` when the epoch dicts have it, else to ``train_loss``, with a warning.",
    )
    mode: Optional[str] = field(
        default=None,
        doc="``None``: inferred from ``monitor`` (losses minimised, scores maximised); ``\"max\"`` / ``\"min\"`` "
        "must agree with it, and are needed for a custom metric (:py:func:`~strfsolver.solver.loop.monitor_mode`).",
    )
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
        doc="Also compute every metric of ``metrics``, custom ones included, on the training batches' predictions (``train_<metric>``; this reads the repeats); "
        "the train loss is always reported.",
    )
    loggers: Sequence[Callable[[Dict[str, Any]], Any]] = field(
        default=(),
        doc="Callables receiving every epoch dict; optional ``finalize(final_metrics)`` and ``close()`` run "
        "when the fit ends (see :py:mod:`strfsolver.loggers.files`).",
    )
    progress: bool = field(default=True, doc="Show a progress bar over epochs with the loss and the monitored value.")
    standardize: bool = field(
        default=True,
        doc="When a fit starts afresh, standardize the stimuli per band with the training stimuli's mean and "
        "standard deviation, kept in the model (:py:mod:`strfsolver.nn.standardize`; a model whose "
        "standardizer is already fitted keeps it). ``False`` feeds the stimuli as they are.",
    )
    init: Optional[str] = field(
        default=None,
        doc="``None`` (train from the model's initial values) or ``\"ridge\"``: a fresh fit of a model whose first "
        "stage is an STRF (``\"linear\"``, ``\"ln\"``) starts from the cross-validated ridge STRF of the training "
        "data, the output nonlinearity set to pass its drive through (:py:func:`strfsolver.ridge.models.ridge_initialize`).",
    )

    tqdm_on: Optional[bool] = field(default=None, doc="Deprecated name of ``progress`` (removed in the next release).")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        check_hook_names(cls, Solver)  # a method no fit calls is refused, not ignored

    def __post_init__(self):
        build_options(self)
        self.log: List[Dict[str, Any]] = []
        self.last_validation_: Optional[Dict[str, Any]] = None
        self.initial_validation_: Optional[Dict[str, Any]] = None
        self.final_validation_: Optional[Dict[str, Dict[str, Any]]] = None
        self.diagnosis_: List[str] = []
        self.logdir_: Optional[Path] = None
        self.training_state_: TrainingState = self.state_class()
        self.monitor_, self.mode_, self.loader_states_, self.recovered_ = self.monitor, self.mode, {}, None
        self._optimizer_checked = False
        self._validation_cache: Optional[ValidationCache] = None  # set by fit while it runs

    @property
    def builtin_metrics(self) -> Tuple[str, ...]:
        """The names of ``metrics`` that are built in (streamed), without the custom ones."""
        return tuple(name for name in self.metrics if name not in self.metric_functions)

    # ------------------------------------------------------------------
    # parameters, optimizer, hyperparameters, batches
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

    def ensure_optimizer(self) -> torch.optim.Optimizer:
        """The optimizer, built on first use from ``optimizer`` (``None``: AdamW at :py:attr:`lr_`;
        a factory: called on :py:meth:`parameters`), and checked to update this model."""
        if self.optimizer is None:
            self.optimizer = torch.optim.AdamW(self.parameters(), lr=self.lr_, weight_decay=self.weight_decay)
        elif not isinstance(self.optimizer, torch.optim.Optimizer):
            built = self.optimizer(self.parameters())
            if not isinstance(built, torch.optim.Optimizer):
                raise ValueError(f"the optimizer factory returned {type(built).__name__}, expected a torch.optim.Optimizer.")
            self.optimizer = built
        if not self._optimizer_checked:
            check_optimizer_parameters(self.optimizer, self.parameters())
            self._optimizer_checked = True
        return self.optimizer

    def set_hyperparameter(self, target: str, value: float) -> None:
        """Set the hyperparameter a schedule names (see :py:mod:`strfsolver.solver.schedules`): ``"lr"``
        or another optimizer parameter-group key (``"lr@readout"``: one named group),
        ``"model.<attribute>"``, a penalty's name (sets its ``weight``) or a solver attribute."""
        _schedules.set_target(self, target, value)

    @property
    def current_lr(self) -> float:
        """Learning rate of the optimizer's first parameter group."""
        return float(self.ensure_optimizer().param_groups[0]["lr"])

    @property
    def criterion_reads_repeats(self) -> bool:
        """Whether the criterion needs every repeat (any criterion but the built-in ones, unless it says otherwise)."""
        builtin = isinstance(self.criterion, (_losses.MSELoss, _losses.PoissonLoss))
        return bool(getattr(self.criterion, "reads_repeats", not builtin))

    def prepare(self, batch: Batch) -> Batch:
        """The batch on :py:attr:`device`, stimuli in the model's dtype, ``responses`` NaN where ``valid_mask`` clears
        them (:py:func:`~strfsolver.solver.batches.prepare_batch`; idempotent); refused if summarised and read by repeat."""
        return prepare_batch(refuse_summary_to_readers(self, batch), self.device, model_dtype(self.model))

    # ------------------------------------------------------------------
    # the hooks (HOOKS)
    # ------------------------------------------------------------------
    @abc.abstractmethod
    def _inference(self, batch: Batch) -> Tensor:
        """Hook: the model's prediction for a batch.

        Args:
            batch: A prepared batch dict on :py:attr:`device`; :py:meth:`transform`
                passes one with ``"stims"`` only.

        Returns:
            ``(B, N, 1, T)`` predictions.
        """

    def _loss(self, pred: Tensor, batch: Batch) -> Union[Tensor, Dict[str, Tensor]]:
        """Hook: the data loss of a prediction (:py:meth:`step` calls it).

        Args:
            pred: ``(B, N, 1, T)`` from :py:meth:`_inference`.
            batch: The batch, with ``responses`` ``(B, N, R, T)`` (or its PSTH
                ``(B, N, 1, T)``, see ``reads_repeats``); during a per-neuron fit
                also ``batch["active_neurons"]``, the ``(N,)`` mask of neurons still training.

        Returns:
            The scalar to back-propagate, or a dict with it under ``"loss"``
            and optionally ``"data_loss"`` (the scalar to report, when it is not the same) and
            ``"neuron_loss"`` (``(N,)``). Default: ``criterion(pred, batch["responses"])``.
            Validation reports ``criterion``'s loss (``val_loss``), not this hook's.
        """
        return self.criterion(pred, batch["responses"])

    def step(self, batch: Batch) -> Dict[str, Any]:
        """Hook: one gradient update on one batch.

        Predict (:py:meth:`_inference`), compute the data loss
        (:py:meth:`_loss`) plus the penalties, back-propagate, clip
        (:py:meth:`_clip_gradients`) and update
        (:py:func:`strfsolver.solver.update.gradient_update`, which also serves
        optimizers that need a closure, such as ``LBFGS``). A non-finite loss
        or gradient never reaches the parameters; the fit then raises
        :py:class:`~strfsolver.solver.TrainingDivergedError`.

        Returns:
            ``{"loss": total (float), "data_loss": float, "penalty": float,
            "pred": detached (B, N, 1, T) prediction}`` (and ``"neuron_loss"``
            when :py:meth:`_loss` gives it). A custom ``step`` returns a dict
            with at least ``"loss"``; the fit also reads ``"data_loss"`` (else
            ``"loss"``) for ``train_loss`` and ``"pred"`` for train metrics.
        """
        optimizer = self.ensure_optimizer()
        self.model.train()
        batch = self.prepare(batch)
        dtype = model_dtype(self.model)

        def forward():
            begin_sequence(self.model)
            pred = self._inference(batch)
            seen = StepPredictions(pred, batch["responses"], self.training_state_.step)  # for penalties on the predictions
            return pred, loss_parts(self._loss(pred, batch)), total_penalty(self.penalties, self.model, dtype, self.device, seen)

        out = gradient_update(optimizer, forward, self.parameters, self._clip_gradients)
        detach = getattr(self.model, "detach", None)
        if callable(detach):  # a stateful model's graph ends with the batch
            detach()
        return out

    def _clip_gradients(self) -> None:
        """Hook: clip the gradients in place after the backward pass (default: their global L2
        norm to ``grad_clip``; the per-neuron solvers clip each neuron's)."""
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_(list(self.parameters()), self.grad_clip)

    def _tracker(self, stopping: EarlyStopping) -> Optional[NeuronTracker]:
        """Hook: the per-neuron tracker of this solver's fits, built from the fit's early-stopping
        rule; ``None`` (the default): the neurons share one early stopping."""
        return None

    def validation(self, loader: Iterable[Batch]) -> Dict[str, Any]:
        """Hook: loss and per-neuron metrics on a loader, in eval mode, streamed
        (:py:class:`~strfsolver.metrics.MetricAccumulator`; no prediction is kept).

        Returns:
            ``{"loss": float, "neuron_loss": (N,), <metric>: (N,), ...}``, float64
            tensors on the CPU. ``neuron_loss`` (per-neuron solvers and the built-in
            losses) is each neuron's loss over all its valid bins; for the built-in
            losses ``loss`` is its reduction over neurons, for another criterion
            the batch-size weighted mean of its values.
        """
        cache = self._validation_cache
        return _evaluation.evaluate(self, loader, cache if cache is not None and cache.loader is loader else None)

    @torch.no_grad()
    def transform(self, stims: Union[Tensor, np.ndarray, Sequence[Union[Tensor, np.ndarray]]], batch_size: int = 32):
        """Hook: predictions of the model in eval mode, computed in chunks.

        Args:
            stims: A ``(B, F, T)`` (or ``(B, C, F, T)``) tensor, or a list of
                ``(F, T_i)`` (or ``(C, F, T_i)``) stimuli of any lengths.
            batch_size: Stimuli per forward pass (> 0).

        Returns:
            For a tensor, ``(B, N, 1, T)``; for a list, a list of
            ``(N, 1, T_i)``; on :py:attr:`device`. Stimuli of a list are
            zero-padded at their end within a chunk, which a causal model ignores.
        """
        return _evaluation.predict(self, stims, batch_size)

    def state_dict(self) -> Dict[str, Any]:
        """Hook: everything needed to continue training (:py:func:`~strfsolver.solver.persistence.solver_state`):
        model, optimizer, schedules, penalties, criterion, training state, RNG and loader states,
        history. Storable with :py:func:`strfsolver.utils.io.save_state`."""
        return solver_state(self)

    def load_state_dict(self, state: Dict[str, Any], strict: bool = True) -> None:
        """Hook: restore what :py:meth:`state_dict` returned (RNG and loader states are restored by
        ``fit(..., resume=True)`` and a fit continuing a :py:meth:`recover` only).

        Args:
            state: A solver state.
            strict: Refuse a state without its model, optimizer, progress or history part, and
                model tensors missing from or unknown to the model. ``False`` loads the parts present.

        Raises:
            ValueError: if the model's tensors do not fit (naming them and both shapes), or, with
                ``strict``, the state lacks a part.
        """
        load_solver_state(self, state, strict=strict)

    def on_epoch_end(self, epoch: Dict[str, Any]) -> None:
        """Hook: called after every epoch with its dict, after the loggers (default: nothing)."""

    # ------------------------------------------------------------------
    # fitting and files
    # ------------------------------------------------------------------
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
        overfit_batches: Optional[int] = None,
    ) -> "Solver":
        """Train for up to ``max_epochs`` epochs with early stopping; keep the best state.

        Each epoch runs :py:meth:`step` on every batch of ``loader``, then, every
        ``valid_frequency`` epochs and after the last one, :py:meth:`validation`
        on ``valid_loader``. An evaluated epoch whose ``monitor`` value improves
        (see ``mode``, ``min_delta``) becomes the best; after ``patience``
        evaluated epochs without improvement training stops. The best state is
        put back into the model at the end (:py:class:`~strfsolver.solver.fit_loop.FitLoop`).

        Args:
            loader: Training batches (a :py:class:`~strfsolver.data.PaddedLoader`
                or a ``DataLoader`` with ``collate_fn=neural_collate``).
            valid_loader: Validation batches, or ``None`` (see ``monitor``).
            max_epochs: Overrides the solver's ``max_epochs``.
            logdir: Folder for checkpoints (:py:data:`~strfsolver.solver.checkpoint.LAST`
                and :py:data:`~strfsolver.solver.checkpoint.BEST`); ``None`` writes nothing.
            save_frequency: Write the last state every this many epochs (default 1, and when training ends).
            valid_frequency: Validate every this many epochs.
            save_hook: ``save_hook(epoch, solver)`` after each write of the last state.
            resume: Continue from ``logdir``'s last state if there is one (else start afresh): an
                interrupted and resumed run ends with the same parameters, bit for bit on the CPU,
                as an uninterrupted one, loader shuffles included.
            keep_every: Also keep the state after every this many epochs under its index,
                ``logdir/checkpoints/000012.safetensors`` (``000000``: the initial model), for :py:meth:`recover`.
            validate_initial: Validate the initial model first (the ``epoch == -1`` row of
                :py:attr:`history_neurons_`; the dict is kept in ``initial_validation_``).
            test_loader: Evaluated, with ``valid_loader``, on the best state when the fit ends
                (``final_validation_``, the loggers' ``finalize``).
            overfit_batches: Train on the loader's first this many batches only, the same in every epoch:
                flyvis's overfit check (:py:mod:`strfsolver.solver.overfit`). ``None``: every batch.

        Returns:
            The solver itself; the epoch dicts are :py:attr:`log` (resumed epochs included).

        Raises:
            KeyError: if ``monitor`` is not a key of an evaluated epoch's dict (listing the keys).
            TrainingDivergedError: on a NaN or infinite loss, after restoring the best state.
            ValueError: on invalid arguments or a checkpoint that does not fit, and before anything
                runs, on a ``logdir`` that is a file or not writable.
            LogdirInUseError: if another running fit holds ``logdir``.
        """
        check_options(self)  # options are attributes: a bad one is reported before any folder is touched
        loop = FitLoop(self, loader, valid_loader, max_epochs=max_epochs, logdir=logdir, save_frequency=save_frequency,
                       valid_frequency=valid_frequency, save_hook=save_hook, resume=resume, keep_every=keep_every,
                       validate_initial=validate_initial, test_loader=test_loader, overfit_batches=overfit_batches)
        self._validation_cache = loop.validation_cache
        try:
            if logdir is None:
                loop.run()
            else:
                with claim_logdir(logdir, resume=resume, last_name=_checkpoint.LAST):
                    loop.run()
        finally:
            self._validation_cache = None
        return self

    def save(self, logdir: Union[str, Path], filename: str = "checkpoint.safetensors") -> Path:
        """Write :py:meth:`state_dict` to ``logdir/filename`` atomically; returns the path."""
        path = Path(logdir) / filename
        _checkpoint.save_checkpoint(path, self.state_dict())
        return path

    def load(self, logdir: Union[str, Path], filename: Optional[str] = None, strict: bool = True) -> "Solver":
        """Load a checkpoint of ``logdir`` into this solver; returns the solver.

        Args:
            logdir: The folder given to :py:meth:`fit` or :py:meth:`save`.
            filename: A file of it (e.g. ``checkpoint_best.safetensors``). ``None``: what
                ``fit(logdir=...)`` wrote last, with the best state put back into the model as
                ``fit`` does when that fit had ended, else ``checkpoint.safetensors`` of :py:meth:`save`.
            strict: See :py:meth:`load_state_dict`.

        Raises:
            FileNotFoundError: if there is no such checkpoint (the message lists the folder).
        """
        path = _recovery.find_fit_checkpoint(logdir) if filename is None else Path(logdir) / filename
        self.load_state_dict(_checkpoint.load_checkpoint(path, device=self.device), strict=strict)
        if filename is None and path.name == _checkpoint.LAST and self.training_state_.stop_reason is not None:
            tracker = self._tracker(EarlyStopping(self.mode_, self.patience, self.min_delta))
            restore_best(self.model, self.training_state_, tracker)
        return self

    def recover(self, which: Union[str, int] = "best", parts: Sequence[str] = ("model",), logdir: Optional[Union[str, Path]] = None,
                *, monitor: Optional[str] = None, mode: Optional[str] = None, strict: bool = True) -> "Solver":
        """Put chosen parts of a kept state back into this solver (flyvis's ``recover``); returns the solver.

        With ``"progress"`` among the parts, the next :py:meth:`fit` continues the recovered training
        (epoch, step, history, best state; bit for bit with ``"loaders"`` and ``"rng"`` too) instead of
        starting afresh (:py:mod:`strfsolver.solver.recovery`).

        Args:
            which: ``"best"``, ``"last"`` or the index of a checkpoint kept with
                ``fit(..., keep_every=k)`` (the number of epochs done; 0 is the initial model).
            parts: Some of :py:data:`strfsolver.solver.recovery.PARTS`: ``"model"``, ``"optimizer"``,
                ``"schedulers"``, ``"penalties"``, ``"criterion"``, ``"progress"`` (the training state),
                ``"monitor"``, ``"history"``, ``"loaders"``, ``"rng"``.
            logdir: The folder; default: that of the last ``fit(logdir=...)``.
            monitor, mode: With ``which="best"``: the best epoch of the history by this key, not the fit's monitor
                (``mode`` ``None``: from the key; :py:func:`~strfsolver.solver.recovery.best_checkpoint`).
            strict: Refuse a part the checkpoint lacks and model tensors missing or unknown; ``False`` loads what exists.

        Raises:
            ValueError: for unknown or (``strict``) missing parts, a ``which`` of another kind, or no logdir.
            FileNotFoundError: if that checkpoint does not exist (the message lists those that do).
        """
        _recovery.recover(self, which, parts, logdir, monitor=monitor, mode=mode, strict=strict)
        return self
