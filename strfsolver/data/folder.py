"""Datasets that stay on disk: a folder of ``.npy`` files, written piecewise, read per stimulus.

Layout (every array a plain ``.npy``; nothing is pickled)::

    dataset.json            format, version, dt_ms, repeats, neuron ids, and per stimulus
                            its length, repeat count and meta (written last: a folder
                            without it was never finished and is refused)
    stim_000000.npy         (F, T_i) or (C, F, T_i) float32
    response_000000.npy     (N, R_i, T_i) float32, NaN = not recorded
                            (a summarised folder: the PSTH, (N, 1, T_i))
    recorded.npy            (S, N) bool: neuron n has a recorded bin in stimulus s
    repeat_stats.npy        (S, 10, N) float64, summarised folders only
                            (the fields of strfsolver.metrics.RepeatStatistics)

Why ``.npy`` files rather than zarr or HDF5: NumPy alone reads them, memory-maps
them (``np.load(..., mmap_mode="c")``) so that a stimulus costs no read until
it is indexed, and one file per stimulus is what a batch reads; chunked,
compressed stores would add a dependency for data that are read whole, per
stimulus, every epoch.

:py:class:`FolderWriter` validates each stimulus as it is added (through
:py:class:`~strfsolver.data.NeuralDataset`), so :py:func:`open_folder` checks
shapes against the index but never scans the values again. A dataset opened
from a folder maps one stimulus' files when it is indexed and releases them
when its tensors are dropped, so a training loop holds one batch at a time
(:py:attr:`~strfsolver.data.PaddedLoader.streams`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from strfsolver.data.dataset import REPEATS, NeuralDataset
from strfsolver.data.inputs import _as_list
from strfsolver.metrics import RepeatStatistics
from strfsolver.utils.checks import check_choice, short_repr
from strfsolver.utils.io import atomic_write_json, read_json

__all__ = ["FolderWriter", "open_folder", "save_folder", "FOLDER_FORMAT", "FOLDER_VERSION"]

FOLDER_FORMAT = "strfsolver-folder"
FOLDER_VERSION = 1
INDEX = "dataset.json"
PathLike = Union[str, os.PathLike]


def _file(folder: Path, kind: str, i: int) -> Path:
    return folder / f"{kind}_{i:06d}.npy"


class _FolderArrays:
    """The ``stim`` or ``response`` arrays of a folder as a sequence of tensors, each read when indexed.

    Item ``i`` memory-maps its file copy-on-write (nothing is read until used;
    the caller may write to it without touching the file) and is released
    with the tensor. ``neurons`` keeps rows of each (a neuron selection).
    """

    def __init__(self, paths: List[Path], shapes: List[tuple], neurons: Optional[Tensor] = None):
        self.paths, self.shapes, self.neurons = paths, shapes, neurons

    def __len__(self) -> int:
        return len(self.paths)

    def shape_of(self, i: int) -> tuple:
        shape = self.shapes[i]
        return shape if self.neurons is None else (len(self.neurons),) + tuple(shape[1:])

    def __getitem__(self, i: int) -> Tensor:
        tensor = torch.from_numpy(np.load(self.paths[i], mmap_mode="c", allow_pickle=False))
        return tensor if self.neurons is None else tensor.index_select(0, self.neurons)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def take(self, stimuli: List[int], neurons: Optional[Tensor] = None) -> "_FolderArrays":
        if neurons is not None and self.neurons is not None:
            neurons = self.neurons.index_select(0, neurons)
        elif neurons is None:
            neurons = self.neurons
        return _FolderArrays([self.paths[i] for i in stimuli], [self.shapes[i] for i in stimuli], neurons)


def _json_meta(meta: Dict[str, Any], i: int) -> Dict[str, Any]:
    try:
        return json.loads(json.dumps(meta, allow_nan=True))
    except (TypeError, ValueError) as error:
        raise ValueError(f"meta of stimulus {i} must hold JSON values (str, numbers, lists, dicts) to be written to a folder: {error}") from None


class FolderWriter:
    """Write a dataset folder one stimulus (or one in-memory part) at a time.

    Each piece is validated as a :py:class:`~strfsolver.data.NeuralDataset`
    would validate it, and with ``repeats="summary"`` only its PSTH and repeat
    statistics are written: a recording larger than memory is summarised as it
    is read. The folder becomes readable (:py:func:`open_folder`) when
    :py:meth:`close` writes its index; use the writer as a context manager to
    close it when the block ends without an error.

    Args:
        path: A folder that does not exist yet, or is empty.
        dt_ms: Bin width in milliseconds.
        repeats: ``"all"`` or ``"summary"``.
        neuron_ids: Optional N identifiers.

    Example:

        >>> import numpy as np, tempfile, os
        >>> folder = os.path.join(tempfile.mkdtemp(), "data")
        >>> with FolderWriter(folder, dt_ms=5.0) as writer:
        ...     for t in (40, 60):
        ...         writer.add(np.ones((8, t)), np.zeros((3, 2, t)))
        >>> open_folder(folder).lengths
        [40, 60]
    """

    def __init__(self, path: PathLike, dt_ms: float, repeats: str = "all", neuron_ids: Optional[Sequence[Any]] = None):
        self.path = Path(path)
        if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise ValueError(f"{self.path} exists and is not an empty folder; a dataset folder is written into a new one.")
        self.path.mkdir(parents=True, exist_ok=True)
        self.dt_ms = dt_ms
        self.repeats = check_choice(repeats, "repeats", REPEATS)
        self.neuron_ids = None if neuron_ids is None else [str(n) for n in neuron_ids]
        self._entries: List[Dict[str, Any]] = []
        self._recorded: List[Tensor] = []
        self._stats: List[RepeatStatistics] = []
        self._layout: Optional[tuple] = None
        self._n_neurons: Optional[int] = None
        self.closed = False

    def add(self, stim: Any, response: Any, meta: Optional[Dict[str, Any]] = None) -> None:
        """Add one stimulus ``(F, T)`` (or ``(C, F, T)``) and its responses ``(N, R, T)``."""
        piece = NeuralDataset([stim], [response], self.dt_ms, meta=None if meta is None else [meta], repeats=self.repeats)
        if self.neuron_ids is not None and piece.n_neurons == len(self.neuron_ids):
            piece.neuron_ids = self.neuron_ids  # a bare array's neurons are the folder's, in its order
        self.add_dataset(piece)

    def add_dataset(self, dataset: NeuralDataset) -> None:
        """Add every stimulus of an in-memory dataset, in order."""
        if self.closed:
            raise ValueError(f"the writer of {self.path} is closed; open a new one to write another folder.")
        if not isinstance(dataset, NeuralDataset):
            raise ValueError(f"add_dataset expects a NeuralDataset, got {type(dataset).__name__}.")
        if dataset.repeats == "summary" and self.repeats == "all":
            raise ValueError("this writer keeps every repeat (repeats='all') but the dataset holds only their summary.")
        if abs(dataset.dt_ms - float(self.dt_ms)) > 1e-9 * float(self.dt_ms):
            raise ValueError(f"the dataset has dt_ms={dataset.dt_ms:g} but this folder's is {float(self.dt_ms):g}.")
        layout = (dataset.stim_ndim, dataset.n_channels, dataset.n_freqs)
        if self._layout is None:
            if self.neuron_ids is not None and len(self.neuron_ids) != dataset.n_neurons:
                raise ValueError(f"neuron_ids has {len(self.neuron_ids)} entries but the data have {dataset.n_neurons} neurons.")
            self._layout, self._n_neurons = layout, dataset.n_neurons
        elif layout != self._layout or dataset.n_neurons != self._n_neurons:
            raise ValueError(
                f"this part has {dataset.n_neurons} neurons and stimuli of (ndim, C, F) = {layout}, but the folder's "
                f"first part had {self._n_neurons} and {self._layout}; every part must match."
            )
        # the folder's neuron axis is labelled once (the writer's ids, else the first part's); a part whose
        # neurons are in another order would be written under the wrong labels, so it is refused, as concat does
        part_ids = [str(n) for n in dataset.neuron_ids]
        if self.neuron_ids is None:
            self.neuron_ids = part_ids
        elif part_ids != self.neuron_ids:
            first = next(i for i, (a, b) in enumerate(zip(part_ids, self.neuron_ids)) if a != b)
            raise ValueError(
                f"this part's neurons are {short_repr(part_ids)} but the folder's are {short_repr(self.neuron_ids)} "
                f"(position {first}: {part_ids[first]!r} against {self.neuron_ids[first]!r}); put the part's neurons in the "
                "folder's order first (dataset.select_neurons) or give both the same neuron_ids."
            )
        summarised = self.repeats == "summary"
        arrays = dataset.psths if summarised else dataset.responses
        stats = dataset.repeat_statistics if summarised else None
        recorded = dataset.recorded
        for i in range(len(dataset)):
            k = len(self._entries)
            np.save(_file(self.path, "stim", k), dataset.stims[i].numpy(), allow_pickle=False)
            np.save(_file(self.path, "response", k), arrays[i].numpy(), allow_pickle=False)
            entry = {"length": dataset.lengths[i], "repeats": dataset.n_repeats[i], "meta": _json_meta(dataset.meta[i], k)}
            self._entries.append(entry)
            self._recorded.append(recorded[i])
            if summarised:
                self._stats.append(RepeatStatistics(*(field[i : i + 1] for field in stats)))

    def close(self) -> Path:
        """Write the index: the folder is complete and readable. Returns its path."""
        if self.closed:
            return self.path
        if not self._entries:
            raise ValueError(f"nothing was added to {self.path}; a dataset needs at least one stimulus.")
        np.save(self.path / "recorded.npy", torch.stack(self._recorded).numpy(), allow_pickle=False)
        if self._stats:
            fields = RepeatStatistics.cat(self._stats)
            np.save(self.path / "repeat_stats.npy", torch.stack([f.double() for f in fields], 1).numpy(), allow_pickle=False)
        ndim, channels, freqs = self._layout
        index = {
            "format": FOLDER_FORMAT, "version": FOLDER_VERSION, "dt_ms": float(self.dt_ms), "repeats": self.repeats,
            "n_neurons": self._n_neurons, "stim_layout": [channels, freqs] if ndim == 3 else [freqs],
            "neuron_ids": self.neuron_ids, "stimuli": self._entries,
        }
        atomic_write_json(self.path / INDEX, index)
        self.closed = True
        return self.path

    def __enter__(self) -> "FolderWriter":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()


def save_folder(path: PathLike, dataset: NeuralDataset) -> Path:
    """Write an in-memory dataset to a new folder (:py:class:`FolderWriter`); returns its path."""
    if not isinstance(dataset, NeuralDataset):
        raise ValueError(f"save_folder expects a NeuralDataset, got {type(dataset).__name__}.")
    with FolderWriter(path, dataset.dt_ms, dataset.repeats, dataset.neuron_ids) as writer:
        writer.add_dataset(dataset)
    return writer.path


def _header_shape(path: Path) -> tuple:
    if not path.is_file():
        raise ValueError(f"{path} is missing; the folder is incomplete.")
    array = np.load(path, mmap_mode="r", allow_pickle=False)
    if array.dtype != np.float32:
        raise ValueError(f"{path} holds {array.dtype}; a dataset folder holds float32 arrays.")
    return tuple(array.shape)


def _read_index(folder: Path) -> Dict[str, Any]:
    if not (folder / INDEX).is_file():
        what = "an unfinished dataset folder (its writer was never closed)" if folder.is_dir() else "not a folder"
        raise ValueError(f"{folder} has no {INDEX}: {what}.")
    index = read_json(folder / INDEX)
    if not isinstance(index, dict) or index.get("format") != FOLDER_FORMAT:
        raise ValueError(f"{folder / INDEX} is not a strfsolver dataset index (format {short_repr(getattr(index, 'get', dict().get)('format'))}).")
    if index.get("version") != FOLDER_VERSION:
        raise ValueError(f"{folder / INDEX} has version {short_repr(index.get('version'))}; this strfsolver reads version {FOLDER_VERSION}.")
    missing = {"dt_ms", "repeats", "n_neurons", "stim_layout", "stimuli"} - set(index)
    if missing:
        raise ValueError(f"{folder / INDEX} lacks {sorted(missing)}.")
    check_choice(index["repeats"], "repeats", REPEATS, where=f"{folder / INDEX}: ")
    return index


def open_folder(path: PathLike) -> NeuralDataset:
    """The dataset in a folder written by :py:class:`FolderWriter`, its arrays left on disk.

    Every file's shape is checked against the index when the folder is
    opened; the values were checked when they were written.

    Raises:
        ValueError: for an unfinished folder, a missing file or a shape that
            differs from the index, naming the file.
    """
    folder = Path(path)
    index = _read_index(folder)
    entries = _as_list(index["stimuli"], "stimuli")
    neurons, layout = int(index["n_neurons"]), tuple(index["stim_layout"])
    summarised = index["repeats"] == "summary"
    paths = {kind: [_file(folder, kind, i) for i in range(len(entries))] for kind in ("stim", "response")}
    shapes = {"stim": [], "response": []}
    for i, entry in enumerate(entries):
        expected = {"stim": layout + (entry["length"],),
                    "response": (neurons, 1 if summarised else entry["repeats"], entry["length"])}
        for kind in ("stim", "response"):
            shape = _header_shape(paths[kind][i])
            if shape != expected[kind]:
                raise ValueError(f"{paths[kind][i]} has shape {shape} but the index says {expected[kind]}.")
            shapes[kind].append(shape)
    stats = None
    if summarised:
        table = torch.from_numpy(np.load(folder / "repeat_stats.npy", allow_pickle=False))
        if tuple(table.shape) != (len(entries), len(RepeatStatistics._fields), neurons):
            raise ValueError(f"{folder / 'repeat_stats.npy'} has shape {tuple(table.shape)}; expected {(len(entries), 10, neurons)}.")
        stats = RepeatStatistics(table[:, 0] > 0, *(table[:, k] for k in range(1, table.shape[1])))
    recorded = torch.from_numpy(np.load(folder / "recorded.npy", allow_pickle=False))
    if tuple(recorded.shape) != (len(entries), neurons) or recorded.dtype != torch.bool:
        raise ValueError(f"{folder / 'recorded.npy'} must be bool {(len(entries), neurons)}, got {recorded.dtype} {tuple(recorded.shape)}.")
    dataset = NeuralDataset._trusted(
        _FolderArrays(paths["stim"], shapes["stim"]), _FolderArrays(paths["response"], shapes["response"]),
        float(index["dt_ms"]), [dict(entry.get("meta", {}), index=i) for i, entry in enumerate(entries)],
        stats, [int(entry["repeats"]) for entry in entries] if summarised else None,
    )
    dataset._recorded = recorded
    dataset.neuron_ids = index.get("neuron_ids")
    return dataset
