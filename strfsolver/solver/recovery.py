"""Indexed checkpoints and recovery of chosen parts of a saved solver state.

Besides the last and best states (:py:mod:`strfsolver.solver.checkpoint`),
``fit(..., logdir=..., keep_every=k)`` keeps the state after every k-th epoch
under its index, the number of epochs done::

    logdir/checkpoints/000000.safetensors   the initial model, before any update
    logdir/checkpoints/000012.safetensors   the state after 12 epochs

so a learning curve can be revisited at any kept point.
:py:meth:`~strfsolver.solver.Solver.recover` (:py:func:`recover`) puts chosen
parts of one of these states (``"best"``, ``"last"``, an index, or the best
epoch by another key of the history, :py:func:`best_checkpoint`) back into a
solver, e.g. the model alone to inspect it.

Recovering the ``"progress"`` part too (the training state) makes the next
``fit`` *continue* from the recovered epoch instead of starting afresh
(:py:class:`Continuation`, kept in ``solver.recovered_`` until that fit
starts): it keeps the recovered history, counts on from its epoch and
step, and, given the ``"loaders"`` and ``"rng"`` parts as well, ends with
the same parameters, bit for bit on the CPU, as the run it was recovered
from. A continued fit writing into that same logdir drops the states of
the abandoned epochs after the recovered one (:py:func:`drop_later_states`).
:py:func:`find_fit_checkpoint` is where
:py:meth:`~strfsolver.solver.Solver.load` looks when it is given a folder alone.
"""

from __future__ import annotations

import dataclasses
import math
import re
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from strfsolver.utils.checks import short_repr
from strfsolver.solver import checkpoint as _checkpoint
from strfsolver.solver.loop import monitor_mode
from strfsolver.solver.state import NeuronTrainingState

__all__ = ["CHECKPOINT_FOLDER", "PARTS", "Continuation", "recover", "best_checkpoint", "indexed_path", "save_indexed",
           "clear_indexed", "drop_later_states", "indexed_checkpoints", "checkpoint_path", "find_fit_checkpoint", "select_parts"]

#: the folder of the indexed checkpoints inside a logdir
CHECKPOINT_FOLDER = "checkpoints"
#: the parts of a solver state that can be recovered one by one (``"rng"``: the random generators'
#: states, put back when the next fit continues, as ``"loaders"`` are put into its loaders)
PARTS = ("model", "optimizer", "schedulers", "penalties", "criterion", "progress", "monitor", "history", "loaders", "rng")
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


def select_parts(state: Dict[str, Any], parts: Sequence[str], strict: bool = True) -> Dict[str, Any]:
    """The entries of ``state`` that ``parts`` names.

    Args:
        state: A solver state.
        parts: Names of :data:`PARTS`.
        strict: Refuse a part the state lacks; ``False`` leaves it out (with a warning naming it).

    Raises:
        ValueError: for a name that is not a recoverable part, or (``strict``) a part the state lacks.
    """
    if isinstance(parts, str):
        parts = (parts,)
    unknown = [part for part in parts if part not in PARTS]
    if unknown or not parts:
        raise ValueError(f"parts must name some of {PARTS}, got {short_repr(tuple(parts))}.")
    missing = [part for part in parts if part not in state]
    if missing:
        message = f"the checkpoint has no {missing} part; it has {sorted(k for k in state if k in PARTS)}"
        if strict:
            raise ValueError(message + " (strict=False recovers the parts it has).")
        warnings.warn(message + "; recovering the others.", UserWarning, stacklevel=4)
    return {key: state[key] for key in parts if key in state}


@dataclasses.dataclass
class Continuation:
    """What :py:func:`recover` put back for the next ``fit`` to continue from (``solver.recovered_``).

    Attributes:
        source: The checkpoint file it came from.
        epoch: Epochs done in the recovered training state; the continued fit's first epoch has this index.
        rng: The random generators' states to set when the fit starts (the ``"rng"`` part), or ``None``.
        loaders: The loaders' states (``{"train": ..., "valid": ...}``, the ``"loaders"`` part), or ``None``.
        options: The checkpoint's record of the options it was trained with (compared, with a
            warning, against the continuing solver's), or ``None``.
    """

    source: Path
    epoch: int
    rng: Optional[Dict[str, Any]] = None
    loaders: Optional[Dict[str, Any]] = None
    options: Optional[Dict[str, Any]] = None

    @property
    def logdir(self) -> Path:
        """The fit folder the checkpoint belongs to (an indexed one lies in its ``checkpoints`` folder)."""
        folder = self.source.parent
        return folder.parent if folder.name == CHECKPOINT_FOLDER else folder


def recover(solver: Any, which: Union[str, int] = "best", parts: Sequence[str] = ("model",),
            logdir: Optional[Union[str, Path]] = None, *, monitor: Optional[str] = None, mode: Optional[str] = None,
            strict: bool = True) -> None:
    """Put chosen parts of a kept state into ``solver``: the body of :py:meth:`strfsolver.solver.Solver.recover`.

    With the ``"progress"`` part, ``solver.recovered_`` becomes the :py:class:`Continuation`
    that the next ``fit`` continues from; otherwise it is ``None``.
    """
    logdir = solver.logdir_ if logdir is None else Path(logdir)
    if logdir is None:
        raise ValueError("recover() needs logdir=..., or a fit(logdir=...) before it.")
    if monitor is None:
        path = checkpoint_path(logdir, which)
    elif which != "best":
        raise ValueError(f"monitor= picks the best epoch by that key: use it with which='best', got which={short_repr(which)}.")
    else:
        custom = tuple(getattr(solver, "metric_functions", {}) or ())
        path = best_checkpoint(logdir, monitor, monitor_mode(monitor, mode, solver.metrics, custom))
    state = _checkpoint.load_checkpoint(path, device=solver.device)
    chosen = select_parts(state, parts, strict=strict)
    if "model" in chosen:
        _checkpoint.check_model_state(solver.model, chosen["model"], strict=strict)
    solver.load_state_dict(chosen, strict=False)  # the parts chosen, each checked above
    if which == "best" and monitor is None and "model" in chosen:
        overlay_neuron_bests(solver, logdir)
    continues = "progress" in chosen
    solver.recovered_ = (Continuation(path, solver.training_state_.epoch, chosen.get("rng"), chosen.get("loaders"), state.get("options"))
                         if continues else None)


def overlay_neuron_bests(solver: Any, logdir: Union[str, Path]) -> None:
    """Give each neuron of ``solver.model`` its own best state, as a per-neuron fit (``"per-cell-best"``)
    ends: the best checkpoint holds the epoch best over all neurons, and each neuron's own best, which
    later epochs may still have improved, is in the last state's training progress. Nothing for a
    solver whose neurons share one early stopping, or a fit without a last state."""
    if not issubclass(solver.state_class, NeuronTrainingState):
        return
    last = Path(logdir) / _checkpoint.LAST
    if not last.is_file():
        return
    progress = solver.state_class()
    progress.load_state_dict(_checkpoint.load_checkpoint(last, device=solver.device)["progress"])
    if progress.neuron_best_model is not None:
        solver.model.load_state_dict(progress.neuron_best_model, strict=False)


def best_checkpoint(logdir: Union[str, Path], monitor: str, mode: str) -> Path:
    """The kept checkpoint of the best epoch of a fit's history by ``monitor`` (``mode`` ``"min"`` or ``"max"``).

    The history is that of the fit's last state. Epoch ``e`` (its first best, skipping NaN) is the
    state after ``e + 1`` epochs: the fit's best checkpoint when the fit's own best epoch is ``e``,
    else the indexed checkpoint ``e + 1``.

    Raises:
        KeyError: if no epoch of the history has ``monitor`` (listing the keys it has).
        FileNotFoundError: if that epoch's state was not kept, listing the indices that were.
    """
    logdir = Path(logdir)
    last = _checkpoint.load_checkpoint(checkpoint_path(logdir, "last"))
    rows = [row for row in last["history"] if isinstance(row.get(monitor), (int, float)) and not math.isnan(row[monitor])]
    if not rows:
        keys = sorted({key for row in last["history"] for key in row})
        raise KeyError(f"no epoch of the history in {logdir} has a value of {short_repr(monitor)}; its keys are {keys}.")
    pick = min if mode == "min" else max
    best = pick(rows, key=lambda row: row[monitor])  # the first of equal values, as early stopping
    epoch = int(best["epoch"])
    best_file = logdir / _checkpoint.BEST
    if best_file.is_file() and last["progress"].get("best_epoch") == epoch:
        return best_file
    path = indexed_path(logdir, epoch + 1)
    if not path.is_file():
        raise FileNotFoundError(
            f"the best epoch by {short_repr(monitor)} ({mode}) is {epoch} ({monitor} = {best[monitor]:.6g}), but its state "
            f"(index {epoch + 1}: the state after epoch e has index e + 1) was not kept; the kept indices in {logdir} are "
            f"{indexed_checkpoints(logdir)}. fit(..., keep_every=1) keeps every epoch's state."
        )
    return path


def drop_later_states(logdir: Union[str, Path], continuation: Continuation, best_epoch: Optional[int],
                      best_score: Optional[float]) -> None:
    """Before a continued fit writes into ``logdir``: drop the states it would contradict.

    In the folder the continuation came from, the indexed checkpoints after its epoch (an abandoned
    future) go; in another folder, all of them (another run's). The best checkpoint stays only if
    it is that of the continued training state (same best epoch and score); the fit writes a new
    one at its next improvement.
    """
    logdir = Path(logdir)
    same_run = logdir.resolve() == continuation.logdir.resolve()
    for index in indexed_checkpoints(logdir):
        if not same_run or index > continuation.epoch:
            indexed_path(logdir, index).unlink(missing_ok=True)
    best = logdir / _checkpoint.BEST
    if best.is_file():
        saved = _checkpoint.load_checkpoint(best)["progress"]
        if (saved.get("best_epoch"), saved.get("best_score")) != (best_epoch, best_score):
            best.unlink()
