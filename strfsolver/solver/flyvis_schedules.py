"""flyvis's schedule functions, under flyvis's names and parameters.

flyvis (``flyvis.solver.SchedulerFunctions``) turns ``start``, ``stop``,
``steps`` and its scheduler's ``stop_iter`` into an array of values, one per
iteration, and holds the array's last value past its end. These classes give
the same value at every counter ``t`` as a :py:class:`~strfsolver.solver.schedules.Schedule`,
so they take ``target`` and ``unit`` like every other schedule (flyvis counts
iterations, i.e. gradient steps: pass ``unit="step"`` to do the same). They
are registered in :py:mod:`strfsolver.solver.schedules`; flyvis's underscore
spellings build them too (``schedules.init("exponential_half", ...)``).

With ``r = int(stop_iter / steps)`` (``int(stop_iter / 2 / steps)`` for the
``*half`` ones), ``v`` the ``steps`` values evenly spaced from ``start`` to
``stop`` (``numpy.linspace``) and ``h = int(stop_iter / 2)``:

======================  ===================================================  ===================
name                    ``value(t)`` while the schedule changes              then, held
======================  ===================================================  ===================
``"linear"``            ``linspace(start, stop, stop_iter)[t]``, ``t < stop_iter``   ``stop``
``"stepwise"``          ``v[t // r]``, ``t < steps * r``                      ``stop``
``"stepwise_half"``     ``v[t // r]``, ``t < steps * r`` (first half)         ``stop``
``"stepwise_2ndhalf"``  ``start`` until ``stop_iter + 1 - steps * r``, then   ``stop``
                        ``v[(t - that) // r]`` up to ``t = stop_iter``
``"steponential"``      ``start / x ** (t // r)``, ``x = (1 / stop) ** (1 / steps)``  ``start / x ** (steps - 1)``
``"exponential"``       ``start * exp(-t / tau)``, ``t < stop_iter``,         ``stop``
                        ``tau = -stop_iter / (log(stop + 1e-15) - log(start))``
``"exponential_half"``  ``start * exp(-t / tau)``, ``t < h``,                 ``stop``
                        ``tau = -h / (log(stop) - log(start))``
======================  ===================================================  ===================

``"stepwise_2ndhalf"`` places its steps at the end of flyvis's ``n_iters``;
here that is ``stop_iter`` (flyvis's default when ``sched_stop_iter`` is not
set). ``"steponential"`` ends at ``start * stop ** ((steps - 1) / steps)``,
not at ``stop``, as flyvis's does. Parameters for which flyvis's array of
changing values would be empty (``r = 0``) are refused.

Example:

    >>> from strfsolver.solver import schedules
    >>> half = schedules.init("stepwise_half", start=1.0, stop=0.0, steps=2, stop_iter=8)
    >>> [half(t) for t in range(10)]
    [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
"""

from __future__ import annotations

import math
from typing import ClassVar, Dict, Optional

from literate_dataclasses import dataclass, field

from strfsolver.solver.schedules import _TARGET_DOC, _UNIT_DOC, Schedule, register
from strfsolver.utils.checks import check_count, check_real

__all__ = [
    "FlyvisSchedule", "FlyvisLinear", "FlyvisStepwise", "FlyvisStepwiseHalf", "FlyvisStepwise2ndHalf",
    "FlyvisSteponential", "FlyvisExponential", "FlyvisExponentialHalf",
]


def _linspace(start: float, stop: float, num: int, i: int) -> float:
    """Element ``i`` of ``numpy.linspace(start, stop, num)``, computed the way numpy does."""
    if num > 1 and i == num - 1:
        return stop
    div = num - 1
    delta = stop - start
    if div <= 0:
        return i * delta + start
    step = delta / div
    return (i / div) * delta + start if step == 0 else i * step + start


#: what a call with the options of strfsolver 0.1's schedule of the same name is told
_MOVED = "strfsolver's own {} schedule of 0.1 ({}) is now called {!r}."


@dataclass
class FlyvisSchedule(Schedule):
    """Base of flyvis's schedule functions: ``start``, ``stop``, ``stop_iter``, ``steps``.

    Args:
        (fields)
    """

    start: float = field(doc="flyvis's ``start``: the value at ``t = 0``.")
    stop: float = field(doc="flyvis's ``stop``: the value held at the end (see each kind).")
    stop_iter: int = field(doc="flyvis's ``stop_iter``: the counter (>= 1) at which the schedule holds its final value.")
    steps: Optional[int] = field(default=None, doc="flyvis's ``steps``: number of distinct values of the step kinds; unused by the others.")
    target: str = field(default="lr", doc=_TARGET_DOC)
    unit: str = field(default="epoch", doc=_UNIT_DOC)

    #: flyvis's name of the function
    flyvis_name = ""
    #: whether ``steps`` is used (then required)
    uses_steps = False
    #: the fraction of ``stop_iter`` the steps span: 1 or 2 (the ``*half`` ones)
    halves = 1

    def __post_init__(self):
        where = f"{self.flyvis_name} schedule: "
        self.start = check_real(self.start, "start", where=where)
        self.stop = check_real(self.stop, "stop", where=where)
        self.stop_iter = check_count(self.stop_iter, "stop_iter", 1, where=where)
        self.steps = check_count(self.steps, "steps", 1, allow_none=not self.uses_steps, where=where)
        if self.uses_steps and self.repeats < 1:
            raise ValueError(
                f"{where}stop_iter{' / 2' if self.halves == 2 else ''} / steps must be >= 1 (each of the {self.steps} "
                f"values lasts int(that) counts), got stop_iter={self.stop_iter}, steps={self.steps}."
            )
        self._check_common()
        self._check_kind(where)

    def _check_kind(self, where: str) -> None:
        """Extra checks of one kind."""

    @property
    def repeats(self) -> int:
        """How many counts each of the ``steps`` values lasts (flyvis's ``repeat``)."""
        return int((self.stop_iter / 2) / self.steps) if self.halves == 2 else int(self.stop_iter / self.steps)

    def step_value(self, i: int) -> float:
        """Value ``i`` of the ``steps`` evenly spaced from ``start`` to ``stop``."""
        return _linspace(self.start, self.stop, self.steps, i)


@register("linear")
@dataclass
class FlyvisLinear(FlyvisSchedule):
    """flyvis's ``linear``: evenly spaced from ``start`` (``t = 0``) to ``stop`` (``t = stop_iter - 1``), then ``stop``.

    Args:
        (fields)
    """

    #: the options of the schedule that had this name before 0.2, and where it went
    renamed_options: ClassVar[Dict[str, str]] = dict.fromkeys(("end", "duration"), _MOVED.format("ramp", "start, end, duration", "linear-ramp"))

    flyvis_name = "linear"

    def at(self, t: int) -> float:
        return _linspace(self.start, self.stop, self.stop_iter, t) if t < self.stop_iter else self.stop


@register("stepwise")
@dataclass
class FlyvisStepwise(FlyvisSchedule):
    """flyvis's ``stepwise``: ``steps`` values from ``start`` to ``stop``, each for ``int(stop_iter / steps)`` counts, then ``stop``.

    Args:
        (fields)
    """

    #: the options of the schedule that had this name before 0.2, and where it went
    renamed_options: ClassVar[Dict[str, str]] = dict.fromkeys(("values", "milestones"), _MOVED.format("steps", "values, milestones", "milestones"))

    flyvis_name = "stepwise"
    uses_steps = True

    def at(self, t: int) -> float:
        r = self.repeats
        return self.step_value(t // r) if t < self.steps * r else self.stop


@register("stepwise-half")
@dataclass
class FlyvisStepwiseHalf(FlyvisStepwise):
    """flyvis's ``stepwise_half``: the steps of ``stepwise`` within the first half of ``stop_iter``, then ``stop``.

    Args:
        (fields)
    """

    renamed_options: ClassVar[Dict[str, str]] = {}

    flyvis_name = "stepwise_half"
    halves = 2


@register("stepwise-2ndhalf")
@dataclass
class FlyvisStepwise2ndHalf(FlyvisSchedule):
    """flyvis's ``stepwise_2ndhalf``: ``start``, then the steps of ``stepwise_half`` ending at ``t = stop_iter``, then ``stop``.

    Args:
        (fields)
    """

    flyvis_name = "stepwise_2ndhalf"
    uses_steps = True
    halves = 2

    def at(self, t: int) -> float:
        r = self.repeats
        first = self.stop_iter + 1 - self.steps * r
        if t < first:
            return self.start
        return self.step_value((t - first) // r) if t <= self.stop_iter else self.step_value(self.steps - 1)


@register("steponential")
@dataclass
class FlyvisSteponential(FlyvisSchedule):
    """flyvis's ``steponential``: ``start / x ** i`` for step ``i``, ``x = (1 / stop) ** (1 / steps)``, then the last step's value.

    Args:
        (fields)
    """

    flyvis_name = "steponential"
    uses_steps = True

    def _check_kind(self, where: str) -> None:
        if self.stop <= 0:
            raise ValueError(f"{where}stop must be > 0 (flyvis divides by it), got {self.stop!r}.")

    def at(self, t: int) -> float:
        r = self.repeats
        x = (1 / self.stop) ** (1 / self.steps)
        return self.start / x ** min(t // r, self.steps - 1)


@register("exponential")
@dataclass
class FlyvisExponential(FlyvisSchedule):
    """flyvis's ``exponential``: ``start * exp(-t / tau)`` for ``t < stop_iter``, then ``stop``.

    ``tau = -stop_iter / (log(stop + 1e-15) - log(start))``.

    Args:
        (fields)
    """

    #: the options of the schedule that had this name before 0.2, and where it went
    renamed_options: ClassVar[Dict[str, str]] = dict.fromkeys(("gamma",), _MOVED.format("exponential", "start, gamma", "exponential-rate"))

    flyvis_name = "exponential"
    epsilon = 1e-15

    def _check_kind(self, where: str) -> None:
        if self.start <= 0 or self.stop + self.epsilon <= 0:
            raise ValueError(f"{where}start must be > 0 and stop >= 0 (flyvis takes their logs), got {self.start!r}, {self.stop!r}.")

    def _decay(self, t: int, length: int) -> float:
        if t >= length:
            return self.stop
        gap = math.log(self.stop + self.epsilon) - math.log(self.start)
        if gap == 0:  # flyvis's tau is infinite: exp(0)
            return self.start
        return self.start * math.exp(-t / (-length / gap))

    def at(self, t: int) -> float:
        return self._decay(t, self.stop_iter)


@register("exponential-half")
@dataclass
class FlyvisExponentialHalf(FlyvisExponential):
    """flyvis's ``exponential_half``: the decay of ``exponential`` over the first ``int(stop_iter / 2)`` counts, then ``stop``.

    ``tau = -int(stop_iter / 2) / (log(stop) - log(start))``.

    Args:
        (fields)
    """

    renamed_options: ClassVar[Dict[str, str]] = {}

    flyvis_name = "exponential_half"
    epsilon = 0.0

    def _check_kind(self, where: str) -> None:
        if self.start <= 0 or self.stop <= 0:
            raise ValueError(f"{where}start and stop must be > 0 (flyvis takes their logs), got {self.start!r}, {self.stop!r}.")

    def at(self, t: int) -> float:
        return self._decay(t, int(self.stop_iter / 2))
