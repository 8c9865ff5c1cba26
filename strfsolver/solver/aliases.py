"""The hook names a subclasser from deepSTRF, CEBRA or flyvis looks for, mapped onto this solver's.

:py:class:`~strfsolver.solver.Solver` names its hooks ``_loss``,
``validation`` and ``on_epoch_end(epoch_dict)``. Three other spellings are
accepted where the meaning is the same, so a subclass ported from those
libraries works without renaming:

- ``compute_loss(pred, batch)``: :py:meth:`Solver._loss` calls it; overriding
  either one changes the data loss of :py:meth:`Solver.step` (a solver that
  overrides ``_loss`` itself, such as ``"single-cell"``, does not call it).
- ``evaluate(loader)``: the same as :py:meth:`Solver.validation`; a subclass
  overriding ``evaluate`` is what :py:meth:`Solver.fit` validates with.
- ``on_epoch_end(epoch, epoch_dict)``: a two-argument override is called with
  the epoch number and the dict (flyvis and CEBRA style); a one-argument one
  with the dict alone.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Dict

__all__ = ["positional_arity", "call_on_epoch_end", "overrides"]


def positional_arity(function: Callable[..., Any]) -> int:
    """How many positional arguments a bound method takes (``*args`` counts as many)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return 1
    kinds = [p.kind for p in parameters]
    if inspect.Parameter.VAR_POSITIONAL in kinds:
        return 2
    return sum(kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD) for kind in kinds)


def call_on_epoch_end(hook: Callable[..., Any], row: Dict[str, Any]) -> None:
    """Call an ``on_epoch_end`` hook with ``(epoch, row)`` or ``(row)``, whichever it takes."""
    if positional_arity(hook) >= 2:
        hook(row["epoch"], row)
    else:
        hook(row)


def overrides(instance: Any, base: type, name: str) -> bool:
    """Whether ``type(instance)`` defines ``name`` otherwise than ``base`` does."""
    return getattr(type(instance), name, None) is not getattr(base, name, None)
