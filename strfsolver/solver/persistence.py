"""A solver's state as one dict, and back: what checkpoints, ``resume`` and ``recover`` store.

:py:func:`solver_state` is the default :py:meth:`Solver.state_dict
<strfsolver.solver.Solver.state_dict>` and :py:func:`load_solver_state` the
default :py:meth:`Solver.load_state_dict
<strfsolver.solver.Solver.load_state_dict>`. Both read and write the solver's
public attributes only, so a subclass that keeps more extends the hooks
with ``super()`` and adds its own entries (``"ridge"`` keeps its alphas).
The file format is that of :py:mod:`strfsolver.solver.checkpoint`.

The options a checkpoint records, and the warning when a resumed fit changes them
(:py:func:`recorded_options`, :py:func:`warn_changed_options`), are here too.
"""

from __future__ import annotations

import warnings
from typing import Any, Dict, Mapping

import torch
from torch import nn

from strfsolver.utils.checks import short_repr
from strfsolver.utils import seeding as _random
from strfsolver.solver import checkpoint as _checkpoint
from strfsolver.solver.schedules import TorchScheduler, check_schedules

__all__ = ["solver_state", "load_solver_state", "REQUIRED_PARTS", "recorded_options", "warn_changed_options"]

#: the parts a strict load refuses to do without
REQUIRED_PARTS = ("model", "optimizer", "progress", "history")


def solver_state(solver: Any) -> Dict[str, Any]:
    """Everything needed to continue training: model, optimizer, schedules, penalties, criterion,
    the training state (counters, best score and epoch, best model), monitor, RNG states,
    loader states, the history and the options (for the resume warning)."""
    schedulers = []
    for item in check_schedules(solver) if isinstance(solver.optimizer, torch.optim.Optimizer) else []:
        schedulers.append(item.scheduler.state_dict() if isinstance(item, TorchScheduler) else {})
    return {
        "solver": type(solver).__name__,
        "model": solver.model.state_dict(),
        "criterion": solver.criterion.state_dict() if isinstance(solver.criterion, nn.Module) else {},
        "optimizer": solver.optimizer.state_dict() if isinstance(solver.optimizer, torch.optim.Optimizer) else None,
        "schedulers": schedulers,
        "penalties": [p.state_dict() if hasattr(p, "state_dict") else {} for p in solver.penalties],
        "progress": solver.training_state_.state_dict(),
        "monitor": [solver.monitor_, solver.mode_],
        "rng": _random.get_rng_state(),
        "loaders": dict(solver.loader_states_),
        "history": [dict(row) for row in solver.log],
        "options": recorded_options(solver),
    }


def load_solver_state(solver: Any, state: Dict[str, Any], strict: bool = True) -> None:
    """Restore what :py:func:`solver_state` returned (RNG and loader states are restored by a
    resumed or continued fit only); see :py:meth:`Solver.load_state_dict <strfsolver.solver.Solver.load_state_dict>`."""
    for key in REQUIRED_PARTS if strict else ():
        if key not in state:
            raise ValueError(f"the solver state has no {short_repr(key)} entry; it has {sorted(state)}.")
    if "model" in state:
        _checkpoint.check_model_state(solver.model, state["model"], strict=strict)
        solver.model.load_state_dict(state["model"], strict=strict)
    if isinstance(solver.criterion, nn.Module) and state.get("criterion"):
        solver.criterion.load_state_dict(state["criterion"])
    if state.get("optimizer") is not None:
        solver.ensure_optimizer().load_state_dict(state["optimizer"])
    saved_schedulers = state.get("schedulers", [])
    for i, item in enumerate(check_schedules(solver) if saved_schedulers else []):
        if isinstance(item, TorchScheduler) and i < len(saved_schedulers) and saved_schedulers[i]:
            item.scheduler.load_state_dict(saved_schedulers[i])
    for penalty, saved in zip(solver.penalties, state.get("penalties", [])):
        if saved and hasattr(penalty, "load_state_dict"):
            penalty.load_state_dict(saved)
    if "progress" in state:
        training_state = solver.state_class()
        training_state.load_state_dict(state["progress"])
        solver.training_state_ = training_state
    if "monitor" in state:
        solver.monitor_, solver.mode_ = state["monitor"]
    if "loaders" in state or strict:
        solver.loader_states_ = dict(state.get("loaders", {}))
    if "history" in state:
        solver.log = [dict(row) for row in state["history"]]
    solver.recovered_ = None  # a state loaded after a recover() replaces what the next fit would continue
    torch.clear_autocast_cache()  # parameters written in place: no stale autocast casts (batches.begin_sequence)


#: solver fields whose value a resumed fit takes from the checkpoint's optimizer, not from the solver
_FROM_CHECKPOINT = ("lr", "weight_decay")
_COMPARED = ("lr", "weight_decay", "patience", "monitor", "mode", "min_delta", "plateau_patience", "lr_decay", "grad_clip", "metrics", "standardize", "init")


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value if isinstance(value, (bool, int, float, str, list, type(None))) else repr(value)


def recorded_options(solver: Any) -> Dict[str, Any]:
    """The options of ``solver`` worth comparing on resume, as JSON values (plus the criterion's class)."""
    options = {name: _plain(getattr(solver, name, None)) for name in _COMPARED}
    options["solver"] = type(solver).__name__
    options["criterion"] = type(solver.criterion).__name__
    options["optimizer"] = type(solver.optimizer).__name__ if solver.optimizer is not None else None
    # a fit argument, not an option, but a resume on the full data after an overfit check is another training
    options["overfit_batches"] = getattr(solver, "overfit_batches_", None)
    return options


def warn_changed_options(solver: Any, saved: Mapping[str, Any], source: str) -> None:
    """Warn once, naming every option of ``solver`` that differs from ``saved`` (what :py:func:`recorded_options` gave).

    Args:
        solver: The solver about to resume or continue.
        saved: The checkpoint's record (checkpoints of older versions have none: nothing to compare).
        source: The checkpoint file, for the message.
    """
    if not isinstance(saved, Mapping):
        return
    now = recorded_options(solver)
    changes = []
    for name, value in now.items():
        if name not in saved or saved[name] == value:
            continue
        if name == "optimizer" and value is not None and saved[name] is None:
            continue  # the default optimizer, built by the run that wrote the checkpoint
        kept = "the checkpoint's value goes on" if name in _FROM_CHECKPOINT else "the new value is used"
        changes.append(f"{name}: {short_repr(saved[name])} in the checkpoint, {short_repr(value)} now ({kept})")
    if changes:
        warnings.warn(
            f"resuming from {source} with options that differ from the run that wrote it: " + "; ".join(changes)
            + ". Start a fresh fit (another logdir, or resume=False) to train with the new options from the start.",
            UserWarning,
            stacklevel=5,
        )
