"""Finished folds on disk, so that an interrupted comparison continues where it stopped.

Each finished (model, fold) is one safetensors file
``out/folds/<model>/fold-<k>.safetensors`` written atomically by
:py:func:`strfsolver.utils.io.save_state` (no pickle; a crash never leaves half a
file). Beside the result it holds a fingerprint of what was fitted: the
spec, the search grid, the fold's stimuli and a digest of the data. A file
whose fingerprint differs from the run asking for it belongs to another
comparison and is refused rather than silently reused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np

from strfsolver.utils.checks import short_repr
from strfsolver.utils.io import load_state, save_state

__all__ = ["FoldStore", "fingerprint", "data_digest"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def data_digest(dataset) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([dataset.n_neurons, dataset.lengths, dataset.n_repeats, dataset.dt_ms]).encode())
    for stim, response in zip(dataset.stims, dataset.responses):
        digest.update(np.ascontiguousarray(stim.numpy()).tobytes())
        digest.update(np.ascontiguousarray(np.nan_to_num(response.numpy(), nan=-1.2345)).tobytes())
    return digest.hexdigest()[:16]


def fingerprint(spec, param_grid: Any, train: Sequence[int], test: Sequence[int], dataset, settings: Dict[str, Any], data_digest: Optional[str] = None) -> str:
    """A short digest of everything that decides one fold's result."""
    description = {
        "spec": {k: v for k, v in dataclasses.asdict(spec).items() if k != "progress"},
        "param_grid": param_grid,
        "train": [int(i) for i in train],
        "test": [int(i) for i in test],
        "data": data_digest if data_digest is not None else data_digest(dataset),
        "settings": settings,
    }
    text = json.dumps(description, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def folder_name(model: str) -> str:
    """The folder of ``model``'s folds: the name itself when it is safe on every file system,
    else its safe characters plus a short hash of the whole name, so two names never share a
    folder (``"a/b"`` and ``"a:b"`` do not)."""
    safe = _UNSAFE.sub("_", model).strip(".") or "model"
    if safe == model and safe.lower() not in _RESERVED and len(safe) <= 100:
        return model
    return f"{safe[:80]}-{hashlib.sha256(model.encode('utf-8', 'surrogatepass')).hexdigest()[:10]}"


#: names Windows refuses for files and folders (compared in lower case)
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}


def check_writable_folder(path: Union[str, Path], name: str) -> Path:
    """``path`` as a folder that is, or can be created, writable; a ``ValueError`` naming ``name`` otherwise.

    Run before any fit, so that a comparison never loses its first folds to a bad output folder.
    """
    if not isinstance(path, (str, os.PathLike)) or isinstance(path, bool):
        raise ValueError(f"{name} must be a folder path, got {type(path).__name__} {short_repr(path)}.")
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{name} {short_repr(str(folder))} is a file, not a folder; give a folder for the finished folds.")
    # nothing is created here: a comparison refused later leaves no folder behind
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{name} {short_repr(str(folder))} cannot be created: {short_repr(str(existing))} is a file.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{name} {short_repr(str(folder))} is not writable ({short_repr(str(existing))} is not); give a folder this process can write to.")
    return folder


class FoldStore:
    """The folder of finished folds of one comparison.

    Args:
        out: The comparison's output folder; fold files go under ``out/folds/``.
    """

    def __init__(self, out: Union[str, Path]):
        self.root = check_writable_folder(out, "logdir") / "folds"

    def path(self, model: str, fold: int) -> Path:
        """Where the fold's file lives."""
        return self.root / folder_name(model) / f"fold-{int(fold)}.safetensors"

    def load(self, model: str, fold: int, expected: str) -> Optional[Dict[str, Any]]:
        """The stored result of a finished fold, or ``None`` when it has not finished.

        Raises:
            ValueError: when the stored fold was fitted from other settings or data.
        """
        path = self.path(model, fold)
        if not path.is_file():
            return None
        state = load_state(path)
        if state.get("fingerprint") != expected:
            raise ValueError(
                f"{path} holds fold {fold} of model {short_repr(model)} fitted with other settings or data; "
                f"use another output folder, or delete {self.root} to start this comparison afresh."
            )
        return state["result"]

    def save(self, model: str, fold: int, expected: str, result: Dict[str, Any]) -> Path:
        """Store a finished fold atomically; returns its path."""
        path = self.path(model, fold)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_state(path, {"fingerprint": expected, "result": result})
        return path
