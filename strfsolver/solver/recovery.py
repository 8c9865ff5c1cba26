"""Indexed checkpoints and recovery of chosen parts of a saved solver state.

Besides the last and best states (:py:mod:`strfsolver.solver.checkpoint`),
``fit(..., logdir=..., keep_every=k)`` keeps the state after every k-th epoch
under its index, the number of epochs done::

    logdir/checkpoints/000000.safetensors   the initial model, before any update
    logdir/checkpoints/000012.safetensors   the state after 12 epochs

so a learning curve can be revisited at any kept point.
:py:meth:`~strfsolver.solver.Solver.recover` puts chosen parts of one of
these states (``"best"``, ``"last"`` or an index) back into a solver, e.g.
the model alone to inspect it, or the model and optimizer to train on from
there. :py:func:`find_fit_checkpoint` is where
:py:meth:`~strfsolver.solver.Solver.load` looks when it is given a folder alone.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List, Sequence, Union

from strfsolver.utils.checks import short_repr
from strfsolver.solver import checkpoint as _checkpoint

__all__ = ["CHECKPOINT_FOLDER", "PARTS", "indexed_path", "save_indexed", "clear_indexed", "indexed_checkpoints", "checkpoint_path", "find_fit_checkpoint", "select_parts"]

#: the folder of the indexed checkpoints inside a logdir
CHECKPOINT_FOLDER = "checkpoints"
#: the parts of a solver state that can be recovered one by one
PARTS = ("model", "optimizer", "schedulers", "penalties", "criterion", "progress", "monitor", "history", "loaders")
_INDEX_NAME = re.compile(r"^(\d{6,})\.safetensors$")


def indexed_path(logdir: Union[str, Path], index: int) -> Path:
    """``logdir/checkpoints/<index, 6 digits>.safetensors``."""
    return Path(logdir) / CHECKPOINT_FOLDER / f"{int(index):06d}.safetensors"


def save_indexed(logdir: Union[str, Path], index: int, state: Dict[str, Any]) -> Path:
    """Write ``state`` as the indexed checkpoint ``index`` (atomically, like every checkpoint)."""
    path = indexed_path(logdir, index)
    _checkpoint.save_checkpoint(path, state)
    return path


def clear_indexed(logdir: Union[str, Path]) -> List[int]:
    """Remove the indexed checkpoints of an earlier run in ``logdir`` (a fresh fit there starts
    its own; :py:func:`indexed_checkpoints` must not mix two runs). Returns the removed indices."""
    removed = indexed_checkpoints(logdir)
    for index in removed:
        indexed_path(logdir, index).unlink(missing_ok=True)
    return removed


def indexed_checkpoints(logdir: Union[str, Path]) -> List[int]:
    """The indices kept in ``logdir``, in increasing order (empty when there are none)."""
    folder = Path(logdir) / CHECKPOINT_FOLDER
    if not folder.is_dir():
        return []
    found = (_INDEX_NAME.match(path.name) for path in folder.iterdir())
    return sorted(int(match.group(1)) for match in found if match)


def checkpoint_path(logdir: Union[str, Path], which: Union[str, int]) -> Path:
    """The file of ``which`` (``"best"``, ``"last"`` or an index) in ``logdir``.

    Raises:
        ValueError: for another ``which``.
        FileNotFoundError: if that checkpoint was not written, listing those that were.
    """
    logdir = Path(logdir)
    if which == "best":
        path = logdir / _checkpoint.BEST
    elif which == "last":
        path = logdir / _checkpoint.LAST
    elif isinstance(which, int) and not isinstance(which, bool) and which >= 0:
        path = indexed_path(logdir, which)
    else:
        raise ValueError(f"which must be 'best', 'last' or a checkpoint index (an int >= 0), got {short_repr(which)}.")
    if not path.is_file():
        kept = indexed_checkpoints(logdir)
        named = [name for name, file in (("best", _checkpoint.BEST), ("last", _checkpoint.LAST)) if (logdir / file).is_file()]
        raise FileNotFoundError(
            f"there is no {short_repr(which)} checkpoint in {logdir} ({path.name}); it has {named or 'no best or last state'} "
            f"and the indices {kept} (fit(..., keep_every=k) keeps indexed ones)."
        )
    return path


def find_fit_checkpoint(logdir: Union[str, Path]) -> Path:
    """What :py:meth:`~strfsolver.solver.Solver.load` reads from a folder: the last state ``fit`` wrote,
    else the file :py:meth:`~strfsolver.solver.Solver.save` writes by default.

    Raises:
        FileNotFoundError: if the folder holds neither.
    """
    logdir = Path(logdir)
    for name in (_checkpoint.LAST, "checkpoint.safetensors"):
        if (logdir / name).is_file():
            return logdir / name
    present = sorted(p.name for p in logdir.iterdir()) if logdir.is_dir() else None
    raise FileNotFoundError(
        f"{logdir} holds no solver checkpoint: expected {_checkpoint.LAST} (written by fit(logdir=...)) or "
        f"checkpoint.safetensors (written by save()); "
        + ("the folder does not exist." if present is None else f"it has {present}.")
    )


def select_parts(state: Dict[str, Any], parts: Sequence[str]) -> Dict[str, Any]:
    """The entries of ``state`` that ``parts`` names (and its tags).

    Raises:
        ValueError: for a name that is not a recoverable part, or a part the state lacks.
    """
    if isinstance(parts, str):
        parts = (parts,)
    unknown = [part for part in parts if part not in PARTS]
    if unknown or not parts:
        raise ValueError(f"parts must name some of {PARTS}, got {short_repr(tuple(parts))}.")
    missing = [part for part in parts if part not in state]
    if missing:
        raise ValueError(f"the checkpoint has no {missing} part; it has {sorted(k for k in state if k in PARTS)}.")
    return {key: state[key] for key in parts}
