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
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Mapping, Union

import torch
from torch import nn

from strfsolver._version import __version__
from strfsolver.solver.checkpoint_schema import check_checkpoint
from strfsolver.utils import io

__all__ = ["LAST", "BEST", "FORMAT", "VERSION", "save_checkpoint", "load_checkpoint", "check_model_state"]

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
        raise ValueError(f"{path} is a strfsolver state file but not a solver checkpoint (format {found!r}, expected {FORMAT!r}).")
    version = state.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"{path}: field 'version' must be an integer, got {version!r}.")
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
            problems.append(f"{name!r}: {source} has shape {tuple(tensor.shape)}, the model has {tuple(own[name].shape)}")
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
