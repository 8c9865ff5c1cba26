"""What a solver checkpoint must hold, checked field by field when it is written and read.

:py:func:`strfsolver.utils.io.load_state` guarantees a well-formed file (header,
offsets, checksum); this module guarantees a well-formed *solver state*: the
parts :py:meth:`~strfsolver.solver.Solver.load_state_dict` reads, each of the
type it expects, and model weights that are all finite (docs/conventions.md §6:
a checkpoint never holds non-finite values). A file edited by hand
(``progress.epoch = "five"``) or a state whose weights went NaN is refused
with a ``ValueError`` naming the file and the field, before anything is
loaded into a solver.
"""

from __future__ import annotations

import numbers
from typing import Any, Dict, Mapping, Optional

from torch import Tensor

from strfsolver.utils.checks import check_finite_weights
from strfsolver.solver.state import STOP_REASONS

__all__ = ["check_checkpoint"]


def _fail(source: str, field: str, expected: str, value: Any) -> None:
    shown = f"a {type(value).__name__}" if isinstance(value, (dict, list, Tensor)) else repr(value)
    raise ValueError(f"{source}: field {field!r} must be {expected}, got {shown}.")


def _is_int(value: Any, minimum: Optional[int] = None) -> bool:
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    return ok and (minimum is None or value >= minimum)


def _check_weights(state: Mapping[str, Any], key: str, source: str, optional: bool) -> None:
    weights = state.get(key)
    if weights is None and optional:
        return
    if not isinstance(weights, dict) or not all(isinstance(t, Tensor) for t in weights.values()):
        _fail(source, key, "a mapping of tensor names to tensors", weights)
    check_finite_weights(weights, source, key)


def _check_progress(progress: Any, source: str) -> None:
    if not isinstance(progress, dict):
        _fail(source, "progress", "a mapping", progress)
    for key in ("epoch", "step", "bad_epochs"):
        if key in progress and not _is_int(progress[key], 0):
            _fail(source, f"progress.{key}", "an integer >= 0", progress[key])
    if progress.get("best_epoch") is not None and not _is_int(progress["best_epoch"], 0):
        _fail(source, "progress.best_epoch", "an integer >= 0 or null", progress["best_epoch"])
    score = progress.get("best_score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, numbers.Real)):
        _fail(source, "progress.best_score", "a number or null", score)
    if "stopped" in progress and not isinstance(progress["stopped"], bool):
        _fail(source, "progress.stopped", "true or false", progress["stopped"])
    reason = progress.get("stop_reason")
    if reason is not None and not isinstance(reason, str):
        # a solver may add its own reasons (the ridge solver's "closed form")
        _fail(source, "progress.stop_reason", f"null or a string such as {STOP_REASONS[0]!r}", reason)
    for key in ("best_model", "neuron_best_model"):
        _check_weights(progress, key, f"{source}: progress", optional=True)
    history = progress.get("neuron_history")
    if history is not None and not (isinstance(history, dict) and all(isinstance(v, Tensor) for v in history.values())):
        _fail(source, "progress.neuron_history", "a mapping of names to tensors, or null", history)
    for key, value in progress.items():
        if key.startswith("neuron_") and key not in ("neuron_best_model", "neuron_history") and value is not None and not isinstance(value, Tensor):
            _fail(source, f"progress.{key}", "a tensor or null", value)


def check_checkpoint(state: Any, source: str) -> Dict[str, Any]:
    """Check the parts of a solver state that loading reads; returns ``state``.

    Args:
        state: What :py:func:`strfsolver.utils.io.load_state` read, or what is about to be written.
        source: The file, for messages.

    Raises:
        ValueError: naming ``source`` and the first field that is missing,
            of the wrong type, or (model weights) not finite.
    """
    if not isinstance(state, dict):
        raise ValueError(f"{source}: a solver checkpoint is a mapping, got {type(state).__name__}.")
    for key in ("model", "progress", "history"):
        if key not in state:
            raise ValueError(f"{source}: the solver state has no {key!r} entry; it has {sorted(state)}.")
    _check_weights(state, "model", source, optional=False)
    optimizer = state.get("optimizer")
    if optimizer is not None and not (isinstance(optimizer, dict) and {"state", "param_groups"} <= set(optimizer)):
        _fail(source, "optimizer", "null or an optimizer state_dict (with 'state' and 'param_groups')", optimizer)
    _check_progress(state["progress"], source)
    history = state["history"]
    if not isinstance(history, list) or not all(isinstance(row, dict) for row in history):
        _fail(source, "history", "a list of epoch dicts", history)
    monitor = state.get("monitor")
    if monitor is not None and not (isinstance(monitor, (list, tuple)) and len(monitor) == 2 and all(isinstance(m, str) for m in monitor)):
        _fail(source, "monitor", "[monitor, mode], two strings", monitor)
    for key in ("schedulers", "penalties"):
        if key in state and not isinstance(state[key], list):
            _fail(source, key, "a list", state[key])
    for key in ("rng", "loaders", "criterion"):
        if key in state and state[key] is not None and not isinstance(state[key], dict):
            _fail(source, key, "a mapping", state[key])
    return state
