"""The solver options a checkpoint records, and the warning when a resumed fit changes them.

A resumed fit continues the run that wrote the checkpoint: its optimizer
state (learning rate included, as the schedules and plateaus left it), its
counters and its history. Options given to the new solver that differ from
the recorded ones would otherwise be ignored or mixed in silently, so
``fit(..., resume=True)`` warns, naming each changed option with both values
and which one the fit goes on with. ``max_epochs`` is not compared: raising
it is how a finished run is continued.
"""

from __future__ import annotations

import warnings
from typing import Any, Dict, Mapping

__all__ = ["recorded_options", "warn_changed_options"]

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
    return options


def warn_changed_options(solver: Any, saved: Mapping[str, Any], source: str) -> None:
    """Warn once, naming every option of ``solver`` that differs from ``saved`` (what :py:func:`recorded_options` gave).

    Args:
        solver: The solver about to resume.
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
        changes.append(f"{name}: {saved[name]!r} in the checkpoint, {value!r} now ({kept})")
    if changes:
        warnings.warn(
            f"resuming from {source} with options that differ from the run that wrote it: " + "; ".join(changes)
            + ". Start a fresh fit (another logdir, or resume=False) to train with the new options from the start.",
            UserWarning,
            stacklevel=5,
        )
