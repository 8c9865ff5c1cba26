"""Opt-in hook names of deepSTRF, CEBRA and flyvis: :py:class:`HookAliases`.

A solver ported from those libraries overrides ``compute_loss``,
``evaluate`` or a two-argument ``on_epoch_end(epoch, epoch_dict)``. Mixing
:py:class:`HookAliases` in before a registered solver makes those spellings
the same hooks as :py:meth:`~strfsolver.solver.Solver._loss`,
:py:meth:`~strfsolver.solver.Solver.validation` and
:py:meth:`~strfsolver.solver.Solver.on_epoch_end`::

    class MySolver(HookAliases, strfsolver.solver.PopulationSolver):
        def compute_loss(self, pred, batch):
            return ((pred - batch["responses"].nanmean(2, keepdim=True)) ** 2).nanmean()

The base solver itself knows none of these names.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Dict, Iterable

from torch import Tensor

__all__ = ["HookAliases"]


def _positional_arity(function: Callable[..., Any]) -> int:
    """How many positional arguments an unbound method takes besides ``self`` (``*args``: 2)."""
    try:
        parameters = list(inspect.signature(function).parameters.values())[1:]
    except (TypeError, ValueError):
        return 1
    kinds = [p.kind for p in parameters]
    if inspect.Parameter.VAR_POSITIONAL in kinds:
        return 2
    return sum(kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD) for kind in kinds)


class HookAliases:
    """Mixin: ``compute_loss`` is ``_loss``, ``evaluate`` is ``validation``, and an
    ``on_epoch_end(epoch, epoch_dict)`` override gets the epoch number and the dict.

    Put it first among the bases; either spelling may be overridden (and may call
    ``super()``), and the fit loop calls whichever the subclass defines.
    """

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        hook = cls.__dict__.get("on_epoch_end")
        if hook is not None and _positional_arity(hook) >= 2:
            # the fit loop passes the dict alone; a flyvis/CEBRA-style override wants (epoch, dict)
            @functools.wraps(hook)
            def on_epoch_end(self, row: Dict[str, Any], *rest: Any) -> None:
                if rest:  # called as (epoch, row) by ported code
                    return hook(self, row, *rest)
                return hook(self, row["epoch"], row)

            cls.on_epoch_end = on_epoch_end

    def _loss(self, pred: Tensor, batch: Dict[str, Any]) -> Any:
        return self.compute_loss(pred, batch)

    def compute_loss(self, pred: Tensor, batch: Dict[str, Any]) -> Any:
        """The data loss (deepSTRF's and CEBRA's name for :py:meth:`Solver._loss`)."""
        return super()._loss(pred, batch)

    def validation(self, loader: Iterable[Dict[str, Any]]) -> Dict[str, Any]:
        return self.evaluate(loader)

    def evaluate(self, loader: Iterable[Dict[str, Any]]) -> Dict[str, Any]:
        """Loss and per-neuron metrics (CEBRA's and flyvis's name for :py:meth:`Solver.validation`)."""
        return super().validation(loader)
