"""The ``"multi-session"`` solver: one shared core trained on every recording, one readout per session.

Labs record many sessions (animals, sites, days), each with its own neurons
and often its own stimuli, each too small to fit a deep model alone. A
model built with ``n_neurons={session: N_s}`` (:py:mod:`strfsolver.models.sessions`)
shares its core between the sessions and keeps a readout per session; this
solver trains it on all of them at once::

    solver = strfsolver.solver.init("multi-session", model=model)
    solver.fit({"s0": train0, "s1": train1}, {"s0": valid0, "s1": valid1})
    solver.validation({"s0": test0, "s1": test1})    # {"s0": {"cc_norm": (N_0,), ...}, "s1": {...}}

- **Training**: each epoch serves every batch of every session once, the
  sessions interleaved in an order drawn from ``(seed, epoch)``
  (:py:class:`~strfsolver.data.SessionBatches`), so a session weighs in
  proportion to its stimuli; one optimizer updates the core and every readout.
- **Early stopping and the best state** follow the mean, over all neurons
  of all sessions, of the monitored metric: each epoch's validation
  concatenates the sessions' per-neuron values (sessions in the model's
  order), and that concatenation is the per-neuron history
  (:py:attr:`~MultiSessionSolver.history_sessions_` splits it per session).
- **Transfer**: ``fit({"new": loader}, ..., train="readout")`` trains only
  the named sessions' readouts, the core frozen (no gradient, its modules in
  eval mode): a pretrained core fitted to a new recording with a readout alone.
- Checkpoints hold the interleaving's and every session loader's position:
  an interrupted and resumed fit ends bit for bit where an uninterrupted one does.

Given a plain loader and a model without sessions, it fits like ``"population"``.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from literate_dataclasses import field
from torch import Tensor

from strfsolver.utils.checks import check_choice, check_seed, is_count, short_repr
from strfsolver.data import PaddedLoader, SessionBatches, ValidationCache
from strfsolver.data.sessions import check_same_format
from strfsolver.nn.standardize import is_standardized, loader_stimuli, set_standardization, stimulus_statistics
from strfsolver.solver._registry import register
from strfsolver.solver.base import Solver, _solver_dataclass
from strfsolver.solver.data_checks import check_fit_data, served_dataset
from strfsolver.solver.evaluation import evaluate

__all__ = ["MultiSessionSolver", "TRAIN_PARTS", "concatenate_sessions"]

#: what ``fit(..., train=...)`` trains: everything, or the named sessions' readouts alone
TRAIN_PARTS = ("all", "readout")


def concatenate_sessions(per_session: Mapping[str, Dict[str, Any]], criterion: Any) -> Dict[str, Any]:
    """One validation dict over all neurons of all sessions: every ``(N_s,)`` tensor concatenated
    in the sessions' order; ``loss`` the sessions' losses weighted by their neuron counts (the mean
    over all neurons for a loss averaged over neurons) or summed for a loss summed over them."""
    values = list(per_session.values())
    out: Dict[str, Any] = {}
    for key, first in values[0].items():
        if isinstance(first, Tensor):
            out[key] = torch.cat([v[key] for v in values])
    counts = [next(t for t in v.values() if isinstance(t, Tensor)).numel() for v in values]
    losses = [v["loss"] for v in values]
    if getattr(criterion, "reduction", "mean") == "sum":
        out["loss"] = float(sum(losses))
    else:
        out["loss"] = float(np.dot(losses, counts) / sum(counts))
    return out


@register("multi-session")
@_solver_dataclass
class MultiSessionSolver(Solver):
    """Fit a model with one readout per session on every session at once (see the module documentation).

    ``fit`` takes ``{session: loader}`` mappings (the validation and test
    ones over the same sessions as the training one) and ``train="all"`` or
    ``"readout"``; ``validation({session: loader})`` returns ``{session:
    {metric: (N_s,)}}``; ``transform(stims, session=s)`` predicts session
    ``s``'s neurons. Every option of :py:class:`~strfsolver.solver.Solver`
    applies to the whole fit; ``penalties`` act on the core and on the readout
    of each batch's session. ``track_train_metrics`` and ``init="ridge"`` need
    one session (their statistics are per neuron of one population).

    Args:
        (fields)

    Attributes: those of :py:class:`~strfsolver.solver.Solver` (the epoch
    dicts' ``val_<metric>`` are means over all neurons of all sessions;
    ``last_validation_["sessions"]`` has each session's dict), plus
    ``fit_sessions_`` (``{session: N_s}`` of the last fit, in order) and
    :py:attr:`history_sessions_`.
    """

    seed: int = field(default=0, doc="Seed of the order in which the sessions' batches are interleaved (a new "
                                     "permutation each epoch, drawn from ``(seed, epoch)``).")

    def __post_init__(self):
        super().__post_init__()
        self.seed = check_seed(self.seed, "seed")
        self.fit_sessions_: Optional[Dict[str, int]] = None
        self._builds_default_optimizer = self.optimizer is None
        self._session_caches: Dict[str, ValidationCache] = {}

    # ------------------------------------------------------------------ hooks
    def _inference(self, batch: Dict[str, Any]) -> Tensor:
        # a batch of SessionBatches names its session; validation and transform set the active one
        session = batch.get("session")
        self._check_batch_neurons(batch, session)
        return self.model(batch["stims"], session=session)

    def _check_batch_neurons(self, batch: Dict[str, Any], session: Optional[str]) -> None:
        """Refuse a batch whose responses have another neuron count than its session's readout (data
        whose loader does not say its count, checked when a fit starts, meet this at their first batch)."""
        readout = getattr(self.model, "readout", None)
        session = session if session is not None else getattr(readout, "active", None)
        responses = batch.get("responses")
        if session is None or not isinstance(self.model.n_neurons, Mapping) or not isinstance(responses, Tensor) or responses.dim() < 2:
            return
        expected = self.model.n_neurons[session]
        if responses.shape[1] != expected:
            raise ValueError(f"session {session!r}: a batch has responses of shape {tuple(responses.shape)}, {responses.shape[1]} "
                             f"neurons, but the session's readout has {expected}; the readout of a session must have as "
                             "many neurons as its data (model.add_session for another recording).")

    def step(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        """One update on one session's batch, its readout active (penalties see that readout)."""
        session = batch.get("session")
        if session is None:
            return super().step(batch)
        with self.model.using_session(session):
            return super().step(batch)

    def validation(self, loader: Any) -> Dict[str, Any]:
        """Loss and per-neuron metrics: of each session of a mapping ``{session: loader}``, as
        ``{session: {"loss": float, <metric>: (N_s,), ...}}``; of the batches a fit validates on
        (:py:class:`~strfsolver.data.SessionBatches`), one dict over all neurons of all sessions
        (:py:func:`concatenate_sessions`) with the sessions' dicts under ``"sessions"``; of a plain
        loader (a model without sessions), the dict of :py:meth:`Solver.validation`."""
        if isinstance(loader, SessionBatches):
            per_session = self._validate_sessions(loader.loaders)
            return {**concatenate_sessions(per_session, self.criterion), "sessions": per_session}
        if isinstance(loader, Mapping):
            return self._validate_sessions(self._check_loaders(loader, "validation"))
        return super().validation(loader)

    @torch.no_grad()
    def transform(self, stims: Any, batch_size: int = 32, session: Optional[str] = None):
        """Predictions of ``session``'s neurons (see :py:meth:`Solver.transform`); ``session`` is
        needed exactly when the model has sessions."""
        if session is None:
            if self.model.sessions:
                raise ValueError(f"the model has one readout per session; pass transform(stims, session=...) with one of {list(self.model.sessions)}.")
            return super().transform(stims, batch_size)
        with self.model.using_session(session):
            return super().transform(stims, batch_size)

    def state_dict(self) -> Dict[str, Any]:
        """:py:meth:`Solver.state_dict` plus ``"sessions"``, the ``{session: N_s}`` of the fit."""
        return {**super().state_dict(), "sessions": dict(self.fit_sessions_ or {})}

    def load_state_dict(self, state: Dict[str, Any], strict: bool = True) -> None:
        super().load_state_dict(state, strict=strict)
        if state.get("sessions"):
            self.fit_sessions_ = {str(name): int(count) for name, count in state["sessions"].items()}

    # ------------------------------------------------------------------ fitting
    def fit(self, loader: Any, valid_loader: Any = None, *, train: str = "all", test_loader: Any = None, **options: Any) -> "MultiSessionSolver":
        """Train the shared core and the sessions' readouts (:py:meth:`Solver.fit`'s options).

        Args:
            loader: ``{session: training loader}``; a plain loader fits a model without sessions.
            valid_loader, test_loader: ``{session: loader}`` over the training sessions, or ``None``.
            train: ``"all"`` (core and the named sessions' readouts) or ``"readout"`` (the named
                sessions' readouts alone, every other parameter frozen: transfer to new sessions).

        Raises:
            ValueError: before anything runs, naming the session: a session unknown to the model,
                data whose neuron count differs from the session's readout, sessions whose data
                differ in bin width (``dt_ms``), bands or channels (:py:func:`~strfsolver.data.sessions.check_same_format`;
                a loader that serves no dataset is not compared), validation or test sessions other
                than the training ones, or options that need one session. A loader that does not say
                its neuron count (no ``dataset``, or one without ``n_neurons``) is refused at its
                first batch whose responses do not match, naming the session.
        """
        check_choice(train, "train", TRAIN_PARTS)
        if not isinstance(loader, Mapping):
            if self.model_sessions():
                raise ValueError(f"the model has one readout per session ({list(self.model.sessions)}); pass the "
                                 "training data as {session: loader}.")
            if train != "all" or isinstance(valid_loader, Mapping) or isinstance(test_loader, Mapping):
                raise ValueError("train='readout' and {session: loader} validation or test data need {session: loader} training data.")
            self.fit_sessions_ = None
            return super().fit(loader, valid_loader, test_loader=test_loader, **options)
        for option, value in (("track_train_metrics", self.track_train_metrics), ("init", self.init)):
            if value:
                raise ValueError(f"{option}={short_repr(value)} needs one session; the multi-session fit leaves it at its default.")
        loaders = self._check_loaders(loader, "training")
        others = {}
        for what, given in (("validation", valid_loader), ("test", test_loader)):
            others[what] = None if given is None else self._check_loaders(given, what, sessions=list(loaders))
        formats = {f"session {name!r}" + ("" if what == "training" else f" ({what} data)"): served_dataset(l)
                   for what, given in (("training", loaders), *others.items()) for name, l in (given or {}).items()}
        check_same_format(formats, "the multi-session fit")
        for name in loaders:
            self._check_data(name, loaders[name], *(None if v is None else v[name] for v in others.values()))
        self.fit_sessions_ = {name: self.model.n_neurons[name] for name in loaders}
        if self.standardize and is_standardized(self.model) is False:
            # what a fresh fit does with one loader, over every session's training stimuli
            set_standardization(self.model, *stimulus_statistics([s for l in loaders.values() for s in loader_stimuli(l)]))
        psth = not (self.reads_repeats or self.criterion_reads_repeats)
        batches = SessionBatches({n: l.psth_view() if psth and isinstance(l, PaddedLoader) else l for n, l in loaders.items()},
                                 shuffle=True, seed=self.seed)
        valid, test = (None if v is None else SessionBatches(v, shuffle=False) for v in others.values())
        if valid is not None and psth and not self.metric_functions:
            self._session_caches = {n: ValidationCache(l, self.builtin_metrics, self.prepare)
                                    for n, l in valid.loaders.items() if ValidationCache.applies_to(l)}
        try:
            if train == "readout":
                with self.model.readouts_only(list(loaders)):
                    self._match_default_optimizer()
                    super().fit(batches, valid, test_loader=test, **options)
            else:
                self._match_default_optimizer()
                super().fit(batches, valid, test_loader=test, **options)
        finally:
            self._session_caches = {}
        return self

    # ------------------------------------------------------------------ results
    @property
    def history_sessions_(self) -> Optional[Dict[str, Dict[str, Tensor]]]:
        """Each session's share of :py:attr:`history_neurons_`: ``{session: {"epoch": (E,),
        "val_<metric>": (E, N_s), ...}}``; ``None`` before a validated multi-session epoch."""
        history, sizes = self.history_neurons_, self.fit_sessions_
        if history is None or not sizes:
            return None
        split = {key: value.split(list(sizes.values()), dim=1) for key, value in history.items() if key != "epoch"}
        return {name: {"epoch": history["epoch"].clone(), **{key: parts[i] for key, parts in split.items()}}
                for i, name in enumerate(sizes)}

    # ------------------------------------------------------------------ helpers
    def model_sessions(self) -> Sequence[str]:
        """The model's sessions (``()`` for a model without)."""
        return tuple(getattr(self.model, "sessions", ()) or ())

    def _check_loaders(self, loaders: Any, what: str, sessions: Optional[Sequence[str]] = None) -> Dict[str, Any]:
        """``{session: loader}`` in the model's session order, every session known to the model."""
        known = self.model_sessions()
        if not known:
            raise ValueError(f"{{session: loader}} {what} data need a model with one readout per session, built with "
                             f"n_neurons={{session: N_s, ...}}; this {type(self.model).__name__} has none.")
        if not isinstance(loaders, Mapping) or not loaders:
            raise ValueError(f"the {what} data must be a non-empty mapping {{session: loader}}, got {short_repr(loaders)}.")
        for name in loaders:
            if name not in known:
                raise ValueError(f"the {what} data name session {short_repr(name)}, which is unknown to the model; its "
                                 f"sessions are {list(known)} (add one with model.add_session({name!r}, n_neurons=N)).")
        for name, loader in loaders.items():
            count, expected = getattr(served_dataset(loader), "n_neurons", None), self.model.n_neurons[name]
            if is_count(count, 1) and count != expected:
                raise ValueError(f"session {name!r}: the model's readout has {expected} neurons but the {what} data have {count}; "
                                 f"the readout of a session must have as many neurons as its data (model.add_session for another recording).")
        if sessions is not None and set(loaders) != set(sessions):
            raise ValueError(f"the {what} data have the sessions {sorted(loaders)} but the training data {sorted(sessions)}; "
                             "early stopping follows every trained session, so give each one its data.")
        return {name: loaders[name] for name in known if name in loaders}

    def _check_data(self, name: str, train: Any, valid: Any, test: Any) -> None:
        """The checks of a fit's data against the model (:py:func:`check_fit_data`), for one session's readout."""
        try:
            check_fit_data(self.model, train, valid, test, n_neurons=self.model.n_neurons[name])
        except ValueError as error:
            raise ValueError(f"session {name!r}: {error}") from None

    def _validate_sessions(self, loaders: Mapping[str, Iterable[Dict[str, Any]]]) -> Dict[str, Dict[str, Any]]:
        out = {}
        for name, loader in loaders.items():
            cache = self._session_caches.get(name)
            with self.model.using_session(name):
                out[name] = evaluate(self, loader, cache if cache is not None and cache.loader is loader else None)
        return out

    def _match_default_optimizer(self) -> None:
        """A default optimizer built for other trainable parameters (an earlier fit of other parts)
        is built again, over this fit's; a given optimizer is the caller's."""
        if not self._builds_default_optimizer or not isinstance(self.optimizer, torch.optim.Optimizer):
            return
        built = {id(p) for group in self.optimizer.param_groups for p in group["params"]}
        if built != {id(p) for p in self.parameters()}:
            self.optimizer = None
