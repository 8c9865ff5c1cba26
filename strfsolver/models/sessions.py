"""One shared model, one readout per recording session.

Any model whose last stage is its ``readout`` slot (the prefilter -> core ->
readout structure of :py:class:`~strfsolver.models.NeuralModel`) accepts
``n_neurons`` as a mapping ``{session: N_s}``::

    model = strfsolver.models.init("nrf", n_freqs=16, n_lags=12, n_neurons={"s0": 20, "s1": 35})
    model(stims, session="s0")            # (B, 20, 1, T)
    model.add_session("s2", n_neurons=12)  # a new readout; the core is shared

The model is then built once with the first session's count; its readout
becomes the first session's, and every other session gets the readout of a
model of the same class and options built with its own count. The
readouts live in a :py:class:`SessionReadouts` (an ``nn.ModuleDict`` keyed
by session) in the ``readout`` slot, so the model's own ``forward`` runs
unchanged: ``model(stims, session=s)`` makes session ``s``'s readout the
active one for that call. Everything but the readouts -- the standardizer,
the prefilter, the core -- is shared; a model whose other parts depend on
``n_neurons`` is refused.

:py:class:`SessionModelMixin` holds all of this once for every model; it is a
base of :py:class:`~strfsolver.models.NeuralModel`. A model built with an
integer ``n_neurons`` has no sessions and behaves as before.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Any, Callable, Dict, Iterable, Iterator, Mapping, Optional, Tuple

from torch import Tensor, nn

from strfsolver.data.sessions import check_session_name
from strfsolver.utils.checks import is_count, short_repr

__all__ = ["SessionReadouts", "SessionModelMixin", "session_sizes", "check_readout_name", "init_with_sessions"]


def session_sizes(value: Any) -> Optional[Dict[str, int]]:
    """``{session: N_s}`` when ``value`` is a mapping of session names to neuron counts, ``None`` for anything else.

    Raises:
        ValueError: for a mapping that is empty, has a bad name or a count that is no integer >= 1.
    """
    if not isinstance(value, Mapping):
        return None
    if not value:
        raise ValueError("n_neurons must name at least one session, got an empty mapping.")
    sizes = {}
    for name, count in value.items():
        check_readout_name(name, "n_neurons")
        if not is_count(count, 1):
            raise ValueError(f"n_neurons[{name!r}] must be an integer >= 1, got {short_repr(count)}.")
        sizes[name] = int(count)
    return sizes


def check_readout_name(name: Any, what: str = "") -> str:
    """``name`` if it can name a session of a model: a session name
    (:py:func:`~strfsolver.data.sessions.check_session_name`) that is no attribute of the readouts'
    container (:py:class:`SessionReadouts`, an ``nn.ModuleDict``: ``keys``, ``forward``, ``training``,
    ``active``, ...), under which torch could not keep a readout.

    Raises:
        ValueError: naming the session and the rule.
    """
    check_session_name(name, what)
    if hasattr(_PROBE, name):
        raise ValueError(f"{what + ': ' if what else ''}session {name!r} cannot name a readout: it is an attribute of the "
                         "model's readouts (a torch.nn.ModuleDict: keys, items, values, forward, training, active, current, ...); "
                         "a session name must be a non-empty string without '.' that is none of those, e.g. "
                         f"{'s_' + name!r}.")
    return name


def init_with_sessions(model: Any, init: Callable[..., None], signature: inspect.Signature, args: tuple, kwargs: dict) -> bool:
    """Run a model class's constructor ``init`` for ``n_neurons={session: N_s}``: built with the
    first session's count, then given a readout per session. ``False`` (nothing run) when
    ``n_neurons`` is no mapping; the caller then runs ``init`` as it is."""
    if "n_neurons" not in signature.parameters:
        return False
    bound = signature.bind(model, *args, **kwargs)
    sizes = session_sizes(bound.arguments.get("n_neurons"))
    if sizes is None:
        return False
    bound.arguments["n_neurons"] = next(iter(sizes.values()))
    init(*bound.args, **bound.kwargs)
    model._build_session_readouts(sizes)
    return True


class SessionReadouts(nn.ModuleDict):
    """The readouts of a multi-session model, one per session, in the model's ``readout`` slot.

    Calling it runs the active session's readout (set by
    :py:meth:`SessionModelMixin.using_session`); an attribute it does not have
    itself (``strf``, ``drive``, ``bias``, ...) is the active readout's.
    """

    def __init__(self, readouts: Mapping[str, nn.Module]):
        super().__init__(readouts)
        self.active: Optional[str] = None

    def current(self) -> nn.Module:
        """The active session's readout.

        Raises:
            ValueError: when no session is active, naming the sessions.
        """
        if self.active is None:
            raise ValueError(f"this model has one readout per session ({list(self.keys())}); call it with "
                             "model(stims, session=name), or inside model.using_session(name).")
        return self[self.active]

    def forward(self, features: Tensor) -> Tensor:
        return self.current()(features)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name.startswith("_") or self.__dict__.get("active") is None:
                raise
            return getattr(self.current(), name)


_PROBE = SessionReadouts({})  # an empty container: the attributes no session name may shadow


class SessionModelMixin:
    """Sessions of a :py:class:`~strfsolver.models.NeuralModel`: one readout each, a shared rest.

    ``n_neurons`` of a multi-session model is the mapping ``{session: N_s}``.
    """

    # ------------------------------------------------------------------ building
    def _build_session_readouts(self, sizes: Dict[str, int]) -> None:
        """Turn a model built with the first session's count into one with a readout per session
        (called by the constructor when ``n_neurons`` is a mapping)."""
        if isinstance(self.readout, nn.Identity):
            raise ValueError(f"{type(self).__name__} has no readout module, so it cannot hold one readout per session; "
                             "build it with an integer n_neurons.")
        names = list(sizes)
        readouts = {names[0]: self.readout}
        for name in names[1:]:
            readouts[name] = self._new_readout(sizes[name], name)
        self.readout = SessionReadouts(readouts)
        self.n_neurons = dict(sizes)

    def _new_readout(self, count: int, name: str) -> nn.Module:
        """The readout of a model of this class and options with ``count`` neurons; refuses a model
        whose parts other than the readout change with the count (they could not be shared)."""
        arguments = dict(self.config)
        arguments["n_neurons"] = count
        twin = type(self)(**arguments)
        own = {key: value.shape for key, value in self.state_dict().items() if not key.startswith("readout.")}
        for key, value in twin.state_dict().items():
            if not key.startswith("readout.") and key in own and own[key] != value.shape:
                raise ValueError(f"{type(self).__name__}'s {key!r} depends on n_neurons ({tuple(own[key])} against "
                                 f"{tuple(value.shape)} for session {name!r}), so it cannot be shared across sessions.")
        reference = next(self.readout.parameters(), None)  # the new readout goes where the others are
        return twin.readout if reference is None else twin.readout.to(device=reference.device, dtype=reference.dtype)

    def add_session(self, name: str, n_neurons: int) -> "SessionModelMixin":
        """Add a readout of ``n_neurons`` neurons for session ``name`` (freshly initialised from the
        global torch random state, like a new model); the core stays shared. Returns the model.

        Raises:
            ValueError: for a model without sessions, a name already used, or a bad count.
        """
        if not self.sessions:
            raise ValueError(f"this {type(self).__name__} has one readout and no sessions; build it with "
                             "n_neurons={session: N, ...} to add sessions.")
        check_readout_name(name)
        if name in self.readout:
            raise ValueError(f"the model has a session {name!r} already; its sessions are {list(self.sessions)}.")
        if not is_count(n_neurons, 1):
            raise ValueError(f"n_neurons must be an integer >= 1, got {short_repr(n_neurons)}.")
        self.readout[name] = self._new_readout(int(n_neurons), name)
        self.n_neurons = {**self.n_neurons, name: int(n_neurons)}
        # saved with the model: from_pretrained rebuilds every session
        self.__dict__["_init_arguments"]["n_neurons"] = dict(self.n_neurons)
        return self

    # ------------------------------------------------------------------ using
    @property
    def sessions(self) -> Tuple[str, ...]:
        """The session names, in order; ``()`` for a model with one readout."""
        readout = self.__dict__.get("_modules", {}).get("readout")
        return tuple(readout.keys()) if isinstance(readout, SessionReadouts) else ()

    def shared_parameters(self) -> Iterator[Tuple[str, nn.Parameter]]:
        """``(name, parameter)`` of everything but the readouts: what the sessions share."""
        return ((name, p) for name, p in self.named_parameters() if not name.startswith("readout."))

    def named_parameters_in_use(self) -> Iterator[Tuple[str, nn.Parameter]]:
        """``(name, parameter)`` of what a call runs now: while a session is active, every parameter
        but the other sessions' readouts (a penalty on them would move readouts without their data)."""
        readout = self.__dict__.get("_modules", {}).get("readout")
        active = readout.active if isinstance(readout, SessionReadouts) else None
        if active is None:
            return self.named_parameters()
        others = tuple(f"readout.{name}." for name in self.sessions if name != active)
        return ((name, p) for name, p in self.named_parameters() if not name.startswith(others))

    def check_session(self, session: Optional[str]) -> Optional[str]:
        """``session`` if this model can run it: a known session of a multi-session model, ``None`` for a model without.

        Raises:
            ValueError: naming the session and the model's sessions.
        """
        sessions = self.sessions
        if session is None:
            return None
        if not sessions:
            raise ValueError(f"this {type(self).__name__} has one readout and no sessions, got session={short_repr(session)}; "
                             "call it without a session.")
        if session not in sessions:
            raise ValueError(f"session {short_repr(session)} is unknown to the model; its sessions are {list(sessions)} "
                             f"(add one with model.add_session({session!r}, n_neurons=N)).")
        return session

    @contextlib.contextmanager
    def using_session(self, session: str):
        """Context in which the model runs ``session``'s readout (``model(stims)``, ``strf()``, penalties)."""
        self.check_session(session)
        readout = self.readout
        previous, readout.active = readout.active, session
        try:
            yield self
        finally:
            readout.active = previous

    def __call__(self, *args: Any, session: Optional[str] = None, **kwargs: Any) -> Any:
        if self.check_session(session) is None:
            return super().__call__(*args, **kwargs)
        with self.using_session(session):
            out = super().__call__(*args, **kwargs)
        expected = self.n_neurons[session]
        if isinstance(out, Tensor) and (out.dim() < 2 or out.shape[1] != expected):
            raise ValueError(f"{type(self).__name__} returned {tuple(out.shape)} for session {session!r}, which has "
                             f"{expected} neurons: its forward does not end with its readout slot.")
        return out

    def for_each_session(self, function: Callable[[], Any]) -> Dict[str, Any]:
        """``{session: function()}``, each call with that session's readout active."""
        out = {}
        for session in self.sessions:
            with self.using_session(session):
                out[session] = function()
        return out

    def needs_session(self) -> bool:
        """Whether this model has sessions and none is active (a per-neuron quantity is then one per session)."""
        return bool(self.sessions) and self.readout.active is None

    # ------------------------------------------------------------------ transfer
    @contextlib.contextmanager
    def readouts_only(self, sessions: Iterable[str]):
        """Context in which only the named sessions' readouts train: every other parameter has
        ``requires_grad=False`` and the shared modules stay in eval mode (batch-norm statistics,
        dropout), so a fit leaves the core exactly as it was."""
        names = [self.check_session(s) for s in sessions]
        keep = {f"readout.{s}." for s in names}
        frozen = [p for name, p in self.named_parameters() if p.requires_grad and not any(name.startswith(k) for k in keep)]
        for p in frozen:
            p.requires_grad_(False)
        self.__dict__["_frozen_sessions"] = tuple(names)
        self.train(self.training)
        try:
            yield self
        finally:
            for p in frozen:
                p.requires_grad_(True)
            self.__dict__.pop("_frozen_sessions", None)
            self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        trained = self.__dict__.get("_frozen_sessions")
        if trained is not None and mode:
            for name, module in self.named_children():
                if name != "readout":
                    module.eval()
            for session, readout in self.readout.items():
                if session not in trained:
                    readout.eval()
        return self
