"""The checks of a solver's options, in one place, run when it is built and again before a fit.

:py:func:`build_options` turns the options given to a solver into the
objects it trains with (a device, a criterion, penalties, metrics) and
refuses bad ones with a message naming what was expected and what came.
:py:func:`check_options` checks the plain values; a fit runs it again,
since options are attributes and may have been changed since. Options that a
solver does not use (its ``unused_options``, e.g. ``lr`` for ``"ridge"``)
are refused when they differ from their defaults, so a setting is never
silently ignored.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from strfsolver import losses as _losses
from strfsolver.data import PaddedLoader
from strfsolver.utils.checks import check_count, check_device, check_real  # check_device: re-exported here
from strfsolver.utils.deprecation import renamed
from strfsolver.solver import penalties as _penalties
from strfsolver.solver.custom_metrics import split_metrics
from strfsolver.solver.loop import monitor_mode
from strfsolver.utils.checks import short_repr

__all__ = ["build_options", "check_options", "check_device", "refuse_unused", "refuse_data", "RENAMED"]

#: options renamed in 0.2, accepted under the old name for one release (with a DeprecationWarning)
RENAMED = {"tqdm_on": "progress"}


def refuse_unused(cls: type, values: Mapping[str, Any]) -> None:
    """Refuse options that solver class ``cls`` does not use (its ``unused_options``) unless
    they hold their default: a setting is never silently ignored."""
    defaults = {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
    for name in getattr(cls, "unused_options", ()):
        if name not in values:
            continue
        value, default = values[name], defaults.get(name)
        # an empty list is "none" for options whose default is none or empty (penalties=[], schedule=[])
        empty = isinstance(value, (list, tuple)) and not value and (default is None or (isinstance(default, (list, tuple)) and not default))
        if name not in defaults or not (value is default or empty or value == default):
            raise ValueError(
                f"the {cls.__name__} does not use {name} (got {name}={short_repr(value)}); leave it out. "
                f"It does not use: {', '.join(cls.unused_options)}."
            )


def _is_data(value: Any) -> bool:
    """Whether ``value`` is a loader, a dataset or a list of batch dicts (what ``fit`` takes, never an option)."""
    if isinstance(value, (list, tuple)) and value and all(isinstance(item, dict) and "stims" in item for item in value):
        return True
    return isinstance(value, (PaddedLoader, DataLoader, Dataset))


def refuse_data(solver: Any) -> None:
    """Refuse a loader or dataset given as an option: ``PopulationSolver(model, train_loader, valid_loader)``
    (deepSTRF's ``Fitter`` order) would otherwise make the loaders the criterion and the optimizer."""
    for option in dataclasses.fields(solver):
        value = getattr(solver, option.name)
        if _is_data(value):
            raise ValueError(
                f"{type(solver).__name__}: {option.name} got a {type(value).__name__}; a solver is built from a model and "
                "options, and the data go to fit: solver.fit(train_loader, valid_loader). For deepSTRF's "
                "Fitter(model, train_loader, val_loader, ...) call, use strfsolver.compat.deepstrf.Fitter."
            )


def build_options(solver: Any) -> None:
    """Resolve and check a new solver's options in place (its ``__post_init__``)."""
    refuse_data(solver)  # first: a loader in the criterion's place is named as a loader, not as a bad criterion
    defaults = {f.name: f.default for f in dataclasses.fields(solver)}
    for old, new in RENAMED.items():
        if getattr(solver, old) is not None:
            # a new-name value equal to its default counts as not given (a dataclass cannot tell)
            given = None if getattr(solver, new) == defaults[new] else getattr(solver, new)
            setattr(solver, new, renamed(given, getattr(solver, old), new, old, where=type(solver).__name__, stacklevel=5))
            setattr(solver, old, None)
    if not isinstance(solver.model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(solver.model).__name__}.")
    if solver.device is None:
        first = next(iter(solver.model.parameters()), None)
        solver.device = first.device if first is not None else torch.device("cpu")
    solver.device = check_device(solver.device)
    solver.model.to(solver.device)
    # before the options are resolved: an unused option is named as such, not as a bad value of it
    refuse_unused(type(solver), {name: getattr(solver, name) for name in type(solver).unused_options})
    if isinstance(solver.criterion, str):
        solver.criterion = _losses.init(solver.criterion)
    if not callable(solver.criterion):
        raise ValueError(f"criterion must be a loss name or a callable (pred, responses) -> loss, got {short_repr(solver.criterion)}.")
    if isinstance(solver.criterion, nn.Module):
        solver.criterion.to(solver.device)
    # unknown names raise a ValueError now rather than after an epoch
    solver.metrics, solver.metric_functions = split_metrics(solver.metrics)
    solver.penalties = [_penalties.init(p) if isinstance(p, str) else p for p in solver.penalties]
    for i, penalty in enumerate(solver.penalties):
        if not callable(penalty):
            raise ValueError(f"penalties[{i}] must be a Penalty, a registered penalty name or a callable, got {short_repr(penalty)}.")
    solver.loggers = list(solver.loggers)
    if type(solver).epoch_runner.uses_optimizer and next(iter(solver.parameters()), None) is None:
        raise ValueError(f"the model ({type(solver.model).__name__}) has no trainable parameter (none with requires_grad), "
                         "so a gradient fit has nothing to learn; unfreeze some, or use the model as it is.")
    check_options(solver)
    if solver.init is not None:
        if solver.init != "ridge":
            raise ValueError(f"init must be None or 'ridge', got {short_repr(solver.init)}.")
        from strfsolver.ridge.models import check_ridge_model

        check_ridge_model(solver.model, "init='ridge'", linear_only=False)


def check_options(solver: Any) -> None:
    """Check the solver's plain option values (run at construction and again by every fit)."""
    refuse_unused(type(solver), {name: getattr(solver, name) for name in type(solver).unused_options})
    optimizer = solver.optimizer
    if not (optimizer is None or isinstance(optimizer, torch.optim.Optimizer) or callable(optimizer)):
        raise ValueError(f"optimizer must be a torch.optim.Optimizer, a factory params -> optimizer, or None; got {short_repr(optimizer)}.")
    check_real(solver.lr, "lr", 0.0, low_open=True, allow_none=True)
    check_real(solver.weight_decay, "weight_decay", 0.0)
    try:
        monitor_mode(solver.monitor, solver.mode, solver.metrics, tuple(solver.metric_functions))
    except KeyError:
        pass  # a key no epoch dict has is named, with every key the fit's dicts hold, when the fit starts
    check_count(solver.patience, "patience", 1, allow_none=True)
    check_count(solver.max_epochs, "max_epochs", 1)
    for name in ("standardize", "progress", "track_train_metrics"):
        if not isinstance(getattr(solver, name), bool):
            raise ValueError(f"{name} must be True or False, got {short_repr(getattr(solver, name))}.")
    check_real(solver.min_delta, "min_delta", 0.0)
    check_count(solver.plateau_patience, "plateau_patience", 0, allow_none=True)
    check_real(solver.lr_decay, "lr_decay", 0.0, 1.0, low_open=True, high_open=True)
    check_real(solver.grad_clip, "grad_clip", 0.0, low_open=True, allow_none=True)
