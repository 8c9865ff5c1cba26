"""Data files: a documented ``.npz`` schema for stimuli and responses.

Schema (every array plain numeric or unicode; files load with
``allow_pickle=False``, so opening one never runs code):

=================  ==================  ==============================================
key                shape / dtype       meaning
=================  ==================  ==============================================
``format``         str                 ``"strfsolver-npz"``
``version``        int                 schema version, currently ``1``
``dt_ms``          float               bin width in milliseconds
``n_stims``        int                 S, the number of stimuli
``stim_{i}``       ``(F, T_i)`` float  spectrogram of stimulus i (or ``(C, F, T_i)``)
``response_{i}``   ``(N, R_i, T_i)``   responses to stimulus i; NaN = not recorded
``neuron_ids``     ``(N,)`` str        optional; defaults to ``"0", "1", ...``
``stim_names``     ``(S,)`` str        optional; defaults to ``"stim_0", ...``
=================  ==================  ==============================================

A simpler layout is accepted on reading too, for data that are already
rectangular: ``stims`` ``(S, F, T)`` and ``responses`` ``(S, N, R, T)`` plus
``dt_ms``.

Everything read is validated by :py:class:`~strfsolver.data.NeuralDataset`,
so a file with a wrong shape fails with a message naming the stimulus.
"""

from __future__ import annotations

import io as _io
import itertools
import os
import re
from typing import Optional, Sequence, Union

import numpy as np

from strfsolver.data.dataset import NeuralDataset
from strfsolver.utils.io import atomic_write_bytes
from strfsolver.utils.checks import short_repr

__all__ = ["save_npz", "load_npz", "NPZ_FORMAT", "NPZ_VERSION"]

NPZ_FORMAT = "strfsolver-npz"
NPZ_VERSION = 1
PathLike = Union[str, os.PathLike]


def _neuron_ids(dataset: NeuralDataset, neuron_ids: Optional[Sequence]) -> np.ndarray:
    if neuron_ids is None:
        neuron_ids = dataset.neuron_ids
    ids = np.asarray([str(n) for n in neuron_ids])
    if ids.shape != (dataset.n_neurons,):
        raise ValueError(
            f"neuron_ids has {ids.size} entries but the dataset has {dataset.n_neurons} neurons; "
            f"expected one id per neuron."
        )
    return ids


def save_npz(path: PathLike, dataset: NeuralDataset, neuron_ids: Optional[Sequence] = None, stim_names: Optional[Sequence] = None, compress: bool = True) -> None:
    """Write ``dataset`` to ``path`` in the schema above, atomically.

    Args:
        path: Destination, conventionally ending in ``.npz``.
        dataset: The data to store.
        neuron_ids: One id per neuron (strings or numbers); defaults to
            ``0 .. N-1``.
        stim_names: One name per stimulus; defaults to each stimulus'
            ``meta["name"]`` or ``"stim_{i}"``.
        compress: Use ``np.savez_compressed``.
    """
    if not isinstance(dataset, NeuralDataset):
        raise ValueError(f"save_npz expects a NeuralDataset, got {type(dataset).__name__}.")
    if stim_names is None:
        stim_names = [str(m.get("name", f"stim_{i}")) for i, m in enumerate(dataset.meta)]
    stim_names = np.asarray([str(s) for s in stim_names])
    if stim_names.shape != (dataset.n_stims,):
        raise ValueError(
            f"stim_names has {stim_names.size} entries but the dataset has {dataset.n_stims} "
            f"stimuli; expected one name per stimulus."
        )
    arrays = {
        "format": np.asarray(NPZ_FORMAT),
        "version": np.asarray(NPZ_VERSION),
        "dt_ms": np.asarray(dataset.dt_ms, dtype=np.float64),
        "n_stims": np.asarray(dataset.n_stims),
        "neuron_ids": _neuron_ids(dataset, neuron_ids),
        "stim_names": stim_names,
    }
    for i, (stim, response) in enumerate(zip(dataset.stims, dataset.responses)):
        arrays[f"stim_{i}"] = stim.numpy()
        arrays[f"response_{i}"] = response.numpy()
    buffer = _io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


class _Archive:
    """Read access to an open ``.npz`` with every failure turned into a ``ValueError`` naming the file and key."""

    def __init__(self, archive, path: PathLike):
        self.archive, self.path = archive, path
        self.keys = set(archive.files)

    def array(self, key: str) -> np.ndarray:
        try:
            return self.archive[key]
        except ValueError as error:
            # allow_pickle=False: an object array is refused here, when it is read, not at np.load
            raise ValueError(f"{self.path}: key {short_repr(key)} holds objects that need pickle to load; strfsolver refuses them ({error}).") from None
        except Exception as error:
            raise ValueError(f"{self.path}: key {short_repr(key)} cannot be read: {error}") from None

    def scalar(self, key: str, kind: str, what: str):
        value = self.array(key)
        if value.ndim != 0 or value.dtype.kind not in kind:
            shown = value.tolist() if value.size <= 4 else f"an array of shape {value.shape}"
            raise ValueError(f"{self.path}: key {short_repr(key)} must be {what}, got {short_repr(shown)} (dtype {value.dtype}).")
        return value.item()

    def strings(self, key: str, count: Optional[int], what: str) -> list:
        value = self.array(key)
        if value.ndim != 1 or value.dtype.kind not in "USiu":
            raise ValueError(f"{self.path}: key {short_repr(key)} must be a 1-D array of strings, got shape {value.shape} and dtype {value.dtype}.")
        if count is not None and len(value) != count:
            raise ValueError(f"{self.path}: key {short_repr(key)} has {len(value)} entries for {count} {what}; expected one per {what[:-1] if what.endswith('s') else what}.")
        return [str(v) for v in value]


_INDEXED = re.compile(r"^(stim|response)_(\d+)$")


def _indexed_layout(archive: _Archive) -> tuple:
    """Stimuli and responses of the ``n_stims`` + ``stim_i``/``response_i`` layout, every key accounted for."""
    path = archive.path
    n_stims = archive.scalar("n_stims", "iu", "a positive integer (the number of stimuli)")
    if n_stims < 1:
        raise ValueError(f"{path}: key 'n_stims' must be a positive integer (the number of stimuli), got {n_stims}.")
    # the declared count is checked against the keys, never iterated in full: a corrupt
    # n_stims=10**12 is refused at once, before any array is read
    missing = list(itertools.islice((k for i in range(n_stims) for k in (f"stim_{i}", f"response_{i}") if k not in archive.keys), 4))
    if missing:
        held = sum(1 for k in archive.keys if k.startswith("stim_") and _INDEXED.match(k))
        raise ValueError(f"{path} declares n_stims={n_stims} but lacks {missing} (it holds {held} stim_i entries).")
    beyond = sorted((k for k in archive.keys if _INDEXED.match(k) and int(_INDEXED.match(k).group(2)) >= n_stims), key=lambda k: (len(k), k))
    if beyond:
        raise ValueError(
            f"{path} declares n_stims={n_stims} but also holds {beyond[:4]}; fix n_stims so that no stimulus is dropped."
        )
    stims = [archive.array(f"stim_{i}") for i in range(n_stims)]
    responses = [archive.array(f"response_{i}") for i in range(n_stims)]
    return stims, responses


def _rectangular_layout(archive: _Archive) -> tuple:
    path = archive.path
    stims_array, responses_array = archive.array("stims"), archive.array("responses")
    if stims_array.ndim not in (3, 4) or responses_array.ndim != 4:
        raise ValueError(
            f"{path}: rectangular layout expects stims (S, F, T) and responses (S, N, R, T); "
            f"got {stims_array.shape} and {responses_array.shape}."
        )
    if len(stims_array) != len(responses_array):
        raise ValueError(
            f"{path}: stims hold {len(stims_array)} stimuli but responses hold "
            f"{len(responses_array)}; expected the same first dimension."
        )
    return list(stims_array), list(responses_array)


def _open(path: PathLike):
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"No data file at {path}.") from None
    except IsADirectoryError:
        raise ValueError(f"{path} is a folder, not an .npz data file.") from None
    except ValueError as error:
        raise ValueError(f"{path} holds objects that need pickle to load; strfsolver refuses them: {error}") from None
    except Exception as error:
        raise ValueError(f"{path} is not a readable .npz file: {error}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        kind = f"a single .npy array of shape {archive.shape}" if isinstance(archive, np.ndarray) else type(archive).__name__
        raise ValueError(f"{path} is {kind}, not an .npz archive of the strfsolver schema (see strfsolver.data.save_npz).")
    return archive


def _few(keys: list, n: int = 4) -> str:
    """The first ``n`` of ``keys`` (and how many more) for a message."""
    return str(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")


def load_npz(path: PathLike) -> NeuralDataset:
    """Read a file written by :py:func:`save_npz` (or in the rectangular layout).

    Returns:
        A validated :py:class:`~strfsolver.data.NeuralDataset` whose ``meta``
        holds each stimulus' ``name`` and the file's ``neuron_ids``.

    Raises:
        ValueError: naming the file and the key for anything that does not
            follow the schema (a wrong type, a missing or extra stimulus, a
            format or version this strfsolver does not read, pickled objects,
            both layouts in one file).
    """
    with _open(path) as raw:
        archive = _Archive(raw, path)
        keys = archive.keys
        if "format" in keys:
            found = archive.array("format")
            if found.ndim != 0 or found.dtype.kind != "U" or str(found) != NPZ_FORMAT:
                raise ValueError(f"{path}: key 'format' is {short_repr(found.tolist())}; expected {short_repr(NPZ_FORMAT)}.")
        if "version" in keys:
            version = archive.scalar("version", "iu", "an integer schema version")
            if not 1 <= version <= NPZ_VERSION:
                raise ValueError(f"{path}: key 'version' is {version}; this strfsolver reads versions 1 to {NPZ_VERSION}.")
        if "dt_ms" not in keys:
            raise ValueError(f"{path} has no 'dt_ms' entry; found keys {sorted(keys)}.")
        dt_ms = archive.scalar("dt_ms", "iuf", "a number (the bin width in milliseconds)")
        indexed = sorted((k for k in keys if k == "n_stims" or _INDEXED.match(k)), key=lambda k: (k != "n_stims", len(k), k))
        stacked = sorted(keys & {"stims", "responses"})
        if indexed and stacked:
            raise ValueError(
                f"{path} holds both layouts: the indexed one ({_few(indexed)}) and the stacked one ({stacked}); "
                "only one would be read, so the file is refused. Keep one layout."
            )
        if "n_stims" in keys:
            stims, responses = _indexed_layout(archive)
        elif {"stims", "responses"} <= keys:
            stims, responses = _rectangular_layout(archive)
        else:
            raise ValueError(
                f"{path} has neither 'n_stims' with 'stim_i'/'response_i' entries nor "
                f"'stims'/'responses' arrays; found keys {sorted(keys)}."
            )
        n_stims = len(stims)
        names = archive.strings("stim_names", n_stims, "stimuli") if "stim_names" in keys else [f"stim_{i}" for i in range(n_stims)]
        # their count is checked against the responses by the dataset
        neuron_ids = archive.strings("neuron_ids", None, "neurons") if "neuron_ids" in keys else None
    meta = [{"index": i, "name": names[i]} for i in range(n_stims)]
    try:
        return NeuralDataset(stims, responses, dt_ms, meta=meta, neuron_ids=neuron_ids)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None

