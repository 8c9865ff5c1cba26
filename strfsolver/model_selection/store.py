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
import re
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np

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


class FoldStore:
    """The folder of finished folds of one comparison.

    Args:
        out: The comparison's output folder; fold files go under ``out/folds/``.
    """

    def __init__(self, out: Union[str, Path]):
        self.root = Path(out) / "folds"

    def path(self, model: str, fold: int) -> Path:
        """Where the fold's file lives."""
        return self.root / (_UNSAFE.sub("_", model) or "model") / f"fold-{int(fold)}.safetensors"

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
                f"{path} holds fold {fold} of model {model!r} fitted with other settings or data; "
                f"use another output folder, or delete {self.root} to start this comparison afresh."
            )
        return state["result"]

    def save(self, model: str, fold: int, expected: str, result: Dict[str, Any]) -> Path:
        """Store a finished fold atomically; returns its path."""
        path = self.path(model, fold)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_state(path, {"fingerprint": expected, "result": result})
        return path
