"""Checkpoint files of a solver: safe (no pickle), atomic, checked on load.

A checkpoint is the nested dict of :py:meth:`strfsolver.solver.Solver.state_dict`
written with :py:func:`strfsolver.utils.io.save_state`: tensors in safetensors,
everything else as JSON in the same file, written to a temporary name and
renamed into place (docs/conventions.md §6). With a ``logdir``,
:py:meth:`~strfsolver.solver.Solver.fit` keeps two of them:

- :py:data:`LAST` (``checkpoint_last.safetensors``): the state after the most
  recent saved epoch, what ``fit(..., resume=True)`` continues from;
- :py:data:`BEST` (``checkpoint_best.safetensors``): the state after the epoch
  with the best monitored score so far.

What a solver checkpoint must hold is checked field by field when it is written and read
(:py:func:`check_checkpoint`): a hand-edited or diverged state is refused naming the file and the field.
"""

from __future__ import annotations

import numbers
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import torch
from torch import Tensor, nn

from strfsolver._version import __version__
from strfsolver.solver.state import STOP_REASONS
from strfsolver.utils import io
from strfsolver.utils.checks import check_finite_weights, short_repr

__all__ = ["LAST", "BEST", "FORMAT", "VERSION", "save_checkpoint", "load_checkpoint", "check_model_state", "check_checkpoint"]

LAST = "checkpoint_last.safetensors"
BEST = "checkpoint_best.safetensors"
#: tag stored in every solver checkpoint, to refuse other state files clearly
FORMAT = "strfsolver-solver-checkpoint"
VERSION = 1


def save_checkpoint(path: Union[str, os.PathLike], state: Dict[str, Any]) -> None:
    """Write a solver state to ``path`` atomically (folders are created), tagged with the
    checkpoint format, its version and the strfsolver version that wrote it (``package_version``).

    Raises:
        ValueError: if the state is malformed or its model weights are not
            finite; nothing is written then.
    """
    check_checkpoint(state, "the solver state to write")
    io.save_state(Path(path), {**state, "format": FORMAT, "version": VERSION, "package_version": __version__})


def load_checkpoint(path: Union[str, os.PathLike], device: Union[str, torch.device] = "cpu") -> Dict[str, Any]:
    """Read a solver state written by :py:func:`save_checkpoint`.

    Raises:
        FileNotFoundError: if there is no file at ``path``.
        ValueError: if the file is not a solver checkpoint, is corrupt
            (naming the field), or holds non-finite model weights.
    """
    state = io.load_state(Path(path), device=device)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"{path} is a strfsolver state file but not a solver checkpoint (format {short_repr(found)}, expected {short_repr(FORMAT)}).")
    version = state.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"{path}: field 'version' must be an integer, got {short_repr(version)}.")
    if version > VERSION:
        raise ValueError(f"{path} was written by a newer strfsolver (checkpoint version {state['version']}, this one reads up to {VERSION}).")
    return check_checkpoint(state, str(path))


def check_model_state(model: nn.Module, state: Mapping[str, torch.Tensor], strict: bool = True, source: str = "the checkpoint") -> None:
    """Check that ``state`` fits ``model`` before anything is loaded.

    Args:
        model: The model that would receive the state.
        state: A ``model.state_dict()``-like mapping.
        strict: Also refuse missing and unexpected tensor names.
        source: How to call the state in messages.

    Raises:
        ValueError: naming every tensor whose shape differs (with both
            shapes) and, with ``strict``, the missing and unexpected names.
    """
    own = model.state_dict()
    problems = []
    for name, tensor in state.items():
        if name in own and tuple(own[name].shape) != tuple(tensor.shape):
            problems.append(f"{short_repr(name)}: {source} has shape {tuple(tensor.shape)}, the model has {tuple(own[name].shape)}")
    if strict:
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing:
            problems.append(f"missing from {source}: {missing}")
        if unexpected:
            problems.append(f"in {source} but not in the model: {unexpected}")
    if problems:
        raise ValueError(
            f"{source} does not fit the model ({type(model).__name__}); "
            + "; ".join(problems)
            + ". Build the model with the same options (n_neurons, n_freqs, n_lags, ...) as the one saved."
        )


def _fail(source: str, field: str, expected: str, value: Any) -> None:
    shown = f"a {type(value).__name__}" if isinstance(value, (dict, list, Tensor)) else repr(value)
    raise ValueError(f"{source}: field {short_repr(field)} must be {expected}, got {shown}.")


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
    trained = progress.get("time_trained", 0.0)
    if isinstance(trained, bool) or not isinstance(trained, numbers.Real) or not trained >= 0:
        _fail(source, "progress.time_trained", "a number of seconds >= 0", trained)
    if "stopped" in progress and not isinstance(progress["stopped"], bool):
        _fail(source, "progress.stopped", "true or false", progress["stopped"])
    reason = progress.get("stop_reason")
    if reason is not None and not isinstance(reason, str):
        # a solver may add its own reasons (the ridge solver's "closed form")
        _fail(source, "progress.stop_reason", f"null or a string such as {short_repr(STOP_REASONS[0])}", reason)
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
            raise ValueError(f"{source}: the solver state has no {short_repr(key)} entry; it has {sorted(state)}.")
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
