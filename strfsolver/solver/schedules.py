"""Hyperparameter schedules: a value as a function of the epoch or the step.

A schedule maps a counter ``t`` (the epoch index, or the index of the
gradient step over the whole run, both from 0) to the value of one named
hyperparameter, its :py:attr:`~Schedule.target`. Before every epoch (``unit
= "epoch"``) or every step (``unit = "step"``) the solver evaluates each
schedule and writes the value to its target: an optimizer hyperparameter
(``"lr"``, ``"lr@readout"``), ``"model.<attribute>"``, a penalty's name (its
weight) or ``"<name>.<field>"``, or a solver attribute; see
:py:mod:`strfsolver.solver.targets`.

The kinds defined here, registered by name (``schedules.init("linear-ramp", ...)``):

=========================================  ==================================================
``"constant"``                             ``value``
``"linear-ramp"``                          ``start + (end - start) * min(t, duration) / duration``
``"milestones"``                           ``values[i]`` with ``i`` the number of ``milestones <= t``
``"exponential-rate"``                     ``start * gamma ** t``
``"step-exponential"``                     ``start * gamma ** (t // step_size)``
``"start-stop-exponential"``               ``start * (stop / start) ** (min(t, duration) / duration)``
``"linear-second-half"``                   ``start`` for the first half of ``duration``, then linear to ``end``
``"start-stop-exponential-second-half"``   ``start`` for the first half, then geometric to ``stop``
=========================================  ==================================================

None of these is flyvis's (``"start-stop-exponential"``: a geometric path
between two values; ``*-second-half``: ``start`` held for the first half of
``duration``). flyvis's schedule functions, under flyvis's names and
parameters, are in :py:mod:`strfsolver.solver.flyvis_schedules`, registered
here too: ``"linear"``, ``"stepwise"`` and ``"exponential"`` are now theirs
(ours are ``"linear-ramp"``, ``"milestones"``, ``"exponential-rate"``).

Schedules are pure functions of ``t``, so a resumed run re-derives every
value from its restored counters. A ``torch.optim.lr_scheduler`` object can
be given instead (see :py:class:`TorchScheduler`); its state travels with the
checkpoints.

Example:

    >>> from strfsolver.solver import schedules
    >>> warmup = schedules.init("linear-ramp", start=0.0, end=1e-2, duration=4)
    >>> [warmup(t) for t in range(6)]
    [0.0, 0.0025, 0.005, 0.0075, 0.01, 0.01]
    >>> schedules.init("step-exponential", start=1.0, gamma=0.5, step_size=2)(5)
    0.25
"""

from __future__ import annotations

import abc
import bisect
import numbers
import sys
from typing import Any, List, Sequence

import torch
from literate_dataclasses import dataclass, field

from strfsolver import registry
from strfsolver.utils.checks import check_count, check_real, short_repr
from strfsolver.solver.targets import set_target, target_groups, target_kind  # noqa: F401  (part of this module's API)

registry.add_helper_functions(sys.modules[__name__])

__all__ = [
    "Schedule", "ConstantSchedule", "LinearSchedule", "StepwiseSchedule", "ExponentialSchedule",
    "StepExponentialSchedule", "StartStopExponentialSchedule", "LinearHalfSchedule",
    "StartStopExponentialHalfSchedule", "set_target", "target_groups", "TorchScheduler",
    "check_schedules", "target_kind", "UNITS",
]

#: what a schedule's counter ``t`` counts
UNITS = ("epoch", "step")

_TARGET_DOC = (
    "Name of the hyperparameter to set: ``\"lr\"`` or another optimizer "
    "parameter-group key, a penalty's name, or a solver attribute."
)
_UNIT_DOC = (
    "``\"epoch\"``: ``t`` is the epoch index, the value is set before each "
    "epoch; ``\"step\"``: ``t`` is the global gradient-step index, set before each step."
)


class Schedule(abc.ABC):
    """Base of every schedule: ``schedule(t) -> float``.

    Subclasses are literate dataclasses that declare their own parameters
    followed by ``target`` and ``unit``, and implement :py:meth:`at`.
    """

    target: str
    unit: str

    def _check_common(self) -> None:
        kind = type(self).__name__
        if not isinstance(self.target, str) or not self.target:
            raise ValueError(f"{kind}: target must name a hyperparameter (e.g. 'lr'), got {short_repr(self.target)}.")
        if self.unit not in UNITS:
            raise ValueError(f"{kind}: unit must be one of {UNITS}, got {short_repr(self.unit)}.")

    @abc.abstractmethod
    def at(self, t: int) -> float:
        """The hyperparameter's value at counter ``t`` (>= 0)."""

    def __call__(self, t: int) -> float:
        if isinstance(t, bool) or not isinstance(t, numbers.Integral) or t < 0:
            raise ValueError(f"{type(self).__name__}: t must be an integer >= 0, got {short_repr(t)}.")
        return float(self.at(int(t)))


@register("constant")
@dataclass
class ConstantSchedule(Schedule):
    """The same value at every ``t``.

    Args:
        (fields)
    """

    value: float = field(default=1e-3, doc="The value.")
    target: str = field(default="lr", doc=_TARGET_DOC)
    unit: str = field(default="epoch", doc=_UNIT_DOC)

    def __post_init__(self):
        self.value = check_real(self.value, "value", where="constant schedule: ")
        self._check_common()

    def at(self, t: int) -> float:
        return self.value


@register("linear-ramp")
@dataclass
class LinearSchedule(Schedule):
    """A straight line from ``start`` to ``end`` over ``duration``, then ``end``.

    ``value(t) = start + (end - start) * min(t, duration) / duration``; a
    warm-up or a linear decay.

    Args:
        (fields)
    """

    start: float = field(default=0.0, doc="Value at ``t = 0``.")
    end: float = field(default=1e-3, doc="Value from ``t = duration`` on.")
    duration: int = field(default=10, doc="Number of epochs or steps (>= 1) to go from ``start`` to ``end``.")
    target: str = field(default="lr", doc=_TARGET_DOC)
    unit: str = field(default="epoch", doc=_UNIT_DOC)

    def __post_init__(self):
        self.start = check_real(self.start, "start", where="linear-ramp schedule: ")
        self.end = check_real(self.end, "end", where="linear-ramp schedule: ")
        self.duration = check_count(self.duration, "duration", 1, where="linear-ramp schedule: ")
        self._check_common()

    def at(self, t: int) -> float:
        return self.start + (self.end - self.start) * min(t, self.duration) / self.duration


@register("milestones")
@dataclass
class StepwiseSchedule(Schedule):
    """Piecewise constant: ``values[0]`` until the first milestone, then the next value...

    ``value(t) = values[i]`` where ``i`` is the number of milestones ``<= t``.

    Args:
        (fields)
    """

    values: Sequence[float] = field(default=(1e-3, 1e-4), doc="The ``len(milestones) + 1`` successive values.")
    milestones: Sequence[int] = field(default=(10,), doc="Strictly increasing counters at which the next value starts.")
    target: str = field(default="lr", doc=_TARGET_DOC)
    unit: str = field(default="epoch", doc=_UNIT_DOC)

    def __post_init__(self):
        self.values = tuple(check_real(v, f"values[{i}]", where="milestones schedule: ") for i, v in enumerate(self.values))
        self.milestones = tuple(check_count(m, f"milestones[{i}]", 0, where="milestones schedule: ") for i, m in enumerate(self.milestones))
        if len(self.values) != len(self.milestones) + 1:
            raise ValueError(
                f"milestones schedule: expected len(values) == len(milestones) + 1, got {len(self.values)} "
                f"values {self.values} and {len(self.milestones)} milestones {self.milestones}."
            )
        if any(b <= a for a, b in zip(self.milestones, self.milestones[1:])):
            raise ValueError(f"milestones schedule: milestones must be strictly increasing, got {self.milestones}.")
        self._check_common()

    def at(self, t: int) -> float:
        return self.values[bisect.bisect_right(self.milestones, t)]


@register("exponential-rate")
@dataclass
class ExponentialSchedule(Schedule):
    """Geometric decay (or growth): ``value(t) = start * gamma ** t``.

    Args:
        (fields)
    """

    start: float = field(default=1e-3, doc="Value at ``t = 0``.")
    gamma: float = field(default=0.95, doc="Factor per epoch or step (> 0).")
    target: str = field(default="lr", doc=_TARGET_DOC)
    unit: str = field(default="epoch", doc=_UNIT_DOC)

    def __post_init__(self):
        self.start = check_real(self.start, "start", where="exponential-rate schedule: ")
        self.gamma = check_real(self.gamma, "gamma", where="exponential-rate schedule: ")
        if self.gamma <= 0:
            raise ValueError(f"exponential-rate schedule: gamma must be > 0, got {short_repr(self.gamma)}.")
        self._check_common()

    def at(self, t: int) -> float:
        return self.start * self.gamma**t


@register("step-exponential")
@dataclass
class StepExponentialSchedule(Schedule):
    """Decay by ``gamma`` every ``step_size``: ``value(t) = start * gamma ** (t // step_size)``.

    Args:
        (fields)
    """

    start: float = field(default=1e-3, doc="Value for ``t < step_size``.")
    gamma: float = field(default=0.5, doc="Factor applied every ``step_size`` (> 0).")
    step_size: int = field(default=10, doc="Epochs or steps (>= 1) between two changes.")
    target: str = field(default="lr", doc=_TARGET_DOC)
    unit: str = field(default="epoch", doc=_UNIT_DOC)

    def __post_init__(self):
        self.start = check_real(self.start, "start", where="step-exponential schedule: ")
        self.gamma = check_real(self.gamma, "gamma", where="step-exponential schedule: ")
        if self.gamma <= 0:
            raise ValueError(f"step-exponential schedule: gamma must be > 0, got {short_repr(self.gamma)}.")
        self.step_size = check_count(self.step_size, "step_size", 1, where="step-exponential schedule: ")
        self._check_common()

    def at(self, t: int) -> float:
        return self.start * self.gamma ** (t // self.step_size)


@register("start-stop-exponential")
@dataclass
class StartStopExponentialSchedule(Schedule):
    """Geometric path from ``start`` to ``stop`` over ``duration``, then ``stop``.

    ``value(t) = start * (stop / start) ** (min(t, duration) / duration)``: the
    same factor every epoch, chosen by the two ends rather than by a rate.

    Args:
        (fields)
    """

    start: float = field(default=1e-2, doc="Value at ``t = 0`` (> 0).")
    stop: float = field(default=1e-4, doc="Value from ``t = duration`` on (> 0).")
    duration: int = field(default=100, doc="Epochs or steps (>= 1) from ``start`` to ``stop``.")
    target: str = field(default="lr", doc=_TARGET_DOC)
    unit: str = field(default="epoch", doc=_UNIT_DOC)

    def __post_init__(self):
        where = f"{self._name()} schedule: "
        self.start = check_real(self.start, "start", 0.0, low_open=True, where=where)
        self.stop = check_real(self.stop, "stop", 0.0, low_open=True, where=where)
        self.duration = check_count(self.duration, "duration", 1, where=where)
        self._check_common()

    @staticmethod
    def _name() -> str:
        return "start-stop-exponential"

    def at(self, t: int) -> float:
        return self.start * (self.stop / self.start) ** (min(t, self.duration) / self.duration)


def _second_half(t: int, duration: int) -> tuple:
    # (counter into the second half, its length): 0 throughout the first half
    first = duration // 2
    return max(0, t - first), max(1, duration - first)


@register("linear-second-half")
@dataclass
class LinearHalfSchedule(LinearSchedule):
    """``start`` for the first half of ``duration``, then a straight line to ``end`` over the second half.

    Args:
        (fields)
    """

    def at(self, t: int) -> float:
        u, length = _second_half(t, self.duration)
        return self.start + (self.end - self.start) * min(u, length) / length


@register("start-stop-exponential-second-half")
@dataclass
class StartStopExponentialHalfSchedule(StartStopExponentialSchedule):
    """``start`` for the first half of ``duration``, then a geometric path to ``stop`` over the second half.

    Args:
        (fields)
    """

    @staticmethod
    def _name() -> str:
        return "start-stop-exponential-second-half"

    def at(self, t: int) -> float:
        u, length = _second_half(t, self.duration)
        return self.start * (self.stop / self.start) ** (min(u, length) / length)


@dataclass
class TorchScheduler:
    """A ``torch.optim.lr_scheduler`` object driven by the solver.

    The solver calls ``scheduler.step()`` after every epoch (``unit="epoch"``)
    or after every gradient step (``unit="step"``);
    ``ReduceLROnPlateau`` receives the monitored value instead, after every
    evaluated epoch. Its ``state_dict()`` is saved in checkpoints. A bare
    scheduler passed as the solver's ``schedule`` is wrapped with
    ``unit="epoch"``. The scheduler must drive the solver's own optimizer.

    Args:
        (fields)
    """

    scheduler: Any = field(doc="The ``torch.optim.lr_scheduler`` instance.")
    unit: str = field(default="epoch", doc="When to call ``scheduler.step()``: ``\"epoch\"`` or ``\"step\"``.")

    def __post_init__(self):
        if not is_torch_scheduler(self.scheduler):
            raise ValueError(
                f"TorchScheduler wraps a torch.optim.lr_scheduler object, got {type(self.scheduler).__name__}."
            )
        if self.unit not in UNITS:
            raise ValueError(f"TorchScheduler: unit must be one of {UNITS}, got {short_repr(self.unit)}.")
        if self.on_plateau and self.unit != "epoch":
            raise ValueError(
                "TorchScheduler: ReduceLROnPlateau needs the monitored value, which exists after evaluated "
                f"epochs only; use unit='epoch', got unit={short_repr(self.unit)}."
            )

    @property
    def target(self) -> str:
        return "lr"

    @property
    def on_plateau(self) -> bool:
        """Whether the scheduler needs the monitored value (``ReduceLROnPlateau``)."""
        return isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)


def is_torch_scheduler(obj: Any) -> bool:
    """Whether ``obj`` is a ``torch.optim.lr_scheduler`` object."""
    return isinstance(obj, (torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau))


def check_schedules(solver: Any) -> List[Any]:
    """The solver's ``schedule`` as a checked list: torch schedulers wrapped, every target resolvable."""
    raw = solver.schedule
    items = [] if raw is None else list(raw) if isinstance(raw, (list, tuple)) else [raw]
    result = []
    for i, item in enumerate(items):
        if is_torch_scheduler(item):
            item = TorchScheduler(item)
        if isinstance(item, TorchScheduler):
            if item.scheduler.optimizer is not solver.optimizer:
                raise ValueError(
                    f"schedule[{i}] is a {type(item.scheduler).__name__} of another optimizer; build it on the "
                    "solver's optimizer (pass optimizer=... to the solver and the scheduler)."
                )
        elif not isinstance(item, Schedule):
            raise ValueError(
                f"schedule[{i}] must be a strfsolver.solver.schedules.Schedule or a torch.optim.lr_scheduler "
                f"object, got {type(item).__name__}."
            )
        else:
            target_kind(solver, item.target)  # fail before training, not at the first step
        result.append(item)
    return result

# deprecated spellings of the *-second-half kinds (flyvis's *_half change in the first half)
register("linear-half", deprecated=True)(LinearHalfSchedule)
register("start-stop-exponential-half", deprecated=True)(StartStopExponentialHalfSchedule)
# flyvis's schedule functions register themselves from strfsolver.solver.flyvis_schedules,
# which strfsolver.solver imports (and which imports this module)
registry.add_docstring(sys.modules[__name__])
