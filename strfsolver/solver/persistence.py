"""A solver's state as one dict, and back: what checkpoints, ``resume`` and ``recover`` store.

:py:func:`solver_state` is the default :py:meth:`Solver.state_dict
<strfsolver.solver.Solver.state_dict>` and :py:func:`load_solver_state` the
default :py:meth:`Solver.load_state_dict
<strfsolver.solver.Solver.load_state_dict>`. Both read and write the solver's
public attributes only, so a subclass that keeps more extends the hooks
with ``super()`` and adds its own entries (``"ridge"`` keeps its alphas).
The file format is that of :py:mod:`strfsolver.solver.checkpoint`.
"""

from __future__ import annotations

from typing import Any, Dict

import torch
from torch import nn

from strfsolver.utils import seeding as _random
from strfsolver.solver import checkpoint as _checkpoint
from strfsolver.solver.resume_options import recorded_options
from strfsolver.solver.schedules import TorchScheduler, check_schedules

__all__ = ["solver_state", "load_solver_state", "REQUIRED_PARTS"]

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
    resumed fit only); see :py:meth:`Solver.load_state_dict <strfsolver.solver.Solver.load_state_dict>`."""
    for key in REQUIRED_PARTS if strict else ():
        if key not in state:
            raise ValueError(f"the solver state has no {key!r} entry; it has {sorted(state)}.")
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
