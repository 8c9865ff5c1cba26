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

__all__ = ["HookAliases", "check_hook_names", "REMOVED_HOOKS"]

#: hook names of strfsolver 0.1 that no fit calls any more; a subclass defining one is refused
REMOVED_HOOKS = ("_after_update", "_penalty", "_prepare", "_begin_sequence", "_validate", "_evaluate", "_to_device",
                 "_ensure_optimizer", "_train_epoch", "_restore_best")


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

    A class that overrides ``compute_loss`` reads every repeat (``reads_repeats = True``, as
    deepSTRF's ``compute_loss`` sees them) unless it sets ``reads_repeats = False`` itself.

    Put it first among the bases; either spelling may be overridden (and may call
    ``super()``), and the fit loop calls whichever the subclass defines.
    """

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        if "compute_loss" in cls.__dict__ and "reads_repeats" not in cls.__dict__:
            # deepSTRF's compute_loss sees every repeat: so does a ported override, not the PSTH the built-in
            # losses train on (a class that wants the PSTH says reads_repeats = False)
            cls.reads_repeats = True
        # the override may come from any class of the MRO (a ported base class), not only this one
        hook = getattr(cls, "on_epoch_end", None)
        if hook is not None and not getattr(hook, "_takes_the_dict_alone", False) and _positional_arity(hook) >= 2:
            # the fit loop passes the dict alone; a flyvis/CEBRA-style override wants (epoch, dict)
            @functools.wraps(hook)
            def on_epoch_end(self, row: Dict[str, Any], *rest: Any) -> None:
                if rest:  # called as (epoch, row) by ported code
                    return hook(self, row, *rest)
                return hook(self, row["epoch"], row)

            on_epoch_end._takes_the_dict_alone = True
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


def check_hook_names(cls: type, base: type) -> None:
    """Refuse a solver class whose methods no fit would call: a removed hook name, or an alias
    spelling (``compute_loss``, ``evaluate``, ``on_epoch_end(epoch, row)``) without
    :py:class:`HookAliases` before ``base`` in its bases. Either would be ignored without a word,
    and the fit would train something else than the class says.

    Raises:
        TypeError: naming the method and what to write instead.
    """
    removed = [name for name in REMOVED_HOOKS if name in cls.__dict__]
    if removed:
        raise TypeError(f"{cls.__name__} defines {removed}, which no fit calls any more; the hooks a solver may override "
                        f"are {list(base.HOOKS)} (docs/howto/custom_solver.md).")
    mro = cls.__mro__
    aliased = HookAliases in mro and mro.index(HookAliases) < mro.index(base)
    if HookAliases in mro and not aliased:
        raise TypeError(f"{cls.__name__} has HookAliases after {base.__name__} among its bases, where it maps nothing; "
                        f"put it first: class {cls.__name__}(HookAliases, ...).")
    spelled = [name for name in ("compute_loss", "evaluate") if name in cls.__dict__]
    hook = cls.__dict__.get("on_epoch_end")
    if hook is not None and not getattr(hook, "_takes_the_dict_alone", False) and _positional_arity(hook) >= 2:
        spelled.append("on_epoch_end(epoch, epoch_dict)")
    if spelled and not aliased:
        raise TypeError(f"{cls.__name__} defines {spelled}, the names of deepSTRF, CEBRA or flyvis, which a fit calls only "
                        f"with the HookAliases mixin: class {cls.__name__}(HookAliases, ...) (or write _loss, validation, "
                        "on_epoch_end(epoch_dict)).")
