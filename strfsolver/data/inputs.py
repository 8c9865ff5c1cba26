"""Reading a dataset's inputs: arrays as float32 tensors, list arguments, bin widths and indices.

Private helpers of :py:class:`~strfsolver.data.NeuralDataset` and its writers;
every error names what was expected and what came.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, List, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from strfsolver.utils.checks import as_float32, short_repr

Index = Union[int, slice, Sequence[int], np.ndarray, Tensor]

_PLURAL = {"stimulus": "stimuli"}


def _shape(value: Tensor) -> tuple:
    return tuple(value.shape)


def _shares_float32(value: Any) -> bool:
    """Whether ``value`` is already what a dataset stores (float32, C-contiguous, on the CPU):
    then it is used in place, so that a lab-sized recording is never held twice."""
    if isinstance(value, Tensor):
        return value.dtype == torch.float32 and value.device.type == "cpu" and value.is_contiguous()
    return isinstance(value, np.ndarray) and value.dtype == np.float32 and value.flags.c_contiguous and value.dtype.isnative


def _to_float_tensor(value: Any, what: str) -> Tensor:
    """``value`` as a float32, contiguous CPU tensor: the caller's memory itself when it is one
    already (:func:`_shares_float32`), else a copy."""
    if _shares_float32(value):
        return value.detach() if isinstance(value, Tensor) else torch.from_numpy(value)
    if isinstance(value, Tensor):
        tensor = value.detach()
    else:
        try:
            array = np.asarray(value)
        except Exception as error:  # ragged nested lists, objects
            raise ValueError(f"{what} could not be read as a numeric array: {error}") from None
        if array.dtype.kind not in "biuf":
            raise ValueError(
                f"{what} must be a real-valued numeric array or tensor, got an array of dtype {array.dtype}."
            )
        # torch cannot wrap negatively strided or non-native byte order arrays
        tensor = torch.from_numpy(np.ascontiguousarray(as_float32(array, what)))
    if tensor.is_complex():
        raise ValueError(f"{what} must be real-valued, got dtype {tensor.dtype}.")
    return as_float32(tensor, what).to(device="cpu", copy=True).contiguous()


def _as_list(value: Any, name: str) -> list:
    if isinstance(value, (list, tuple)):
        return list(value)
    kind = type(value).__name__
    shape = f" of shape {tuple(value.shape)}" if hasattr(value, "shape") else ""
    raise ValueError(
        f"{name} must be a list with one array per stimulus, got a {kind}{shape}; "
        f"wrap a single stimulus as [{name[:-1] if name.endswith('s') else name}]."
    )


def _check_dt(dt_ms: Any) -> float:
    if isinstance(dt_ms, bool) or not isinstance(dt_ms, numbers.Real):
        raise ValueError(f"dt_ms must be a positive number of milliseconds, got {short_repr(dt_ms)}.")
    value = float(dt_ms)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"dt_ms must be a positive, finite number of milliseconds, got {short_repr(dt_ms)}.")
    return value


def _resolve_index(index: Index, size: int, what: str) -> List[int]:
    """Turn an int, slice, boolean mask or integer sequence into a list of
    non-negative positions below ``size``, with an error naming the bad entry."""
    if isinstance(index, slice):
        return list(range(size))[index]
    if isinstance(index, bool):
        raise ValueError(f"{what} index must be integers, a boolean mask or a slice, got {short_repr(index)}.")
    if isinstance(index, numbers.Integral):
        index = [int(index)]
    if isinstance(index, Tensor):
        index = index.detach().cpu().numpy()
    array = np.asarray(index)
    if array.ndim != 1:
        raise ValueError(f"{what} index must be one-dimensional, got shape {array.shape}.")
    if array.dtype == np.bool_:
        if array.shape[0] != size:
            raise ValueError(
                f"a boolean {what} mask must have one entry per {what} ({size}), got {array.shape[0]}."
            )
        return np.flatnonzero(array).tolist()
    if array.size == 0:
        return []
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{what} index must be integers, got values of dtype {array.dtype}.")
    bad = (array < -size) | (array >= size)
    if bad.any():
        first = int(array[np.flatnonzero(bad)[0]])
        raise ValueError(
            f"{what} index {first} is out of range: there are {size} {_PLURAL.get(what, what + 's')} "
            f"(valid: {-size} to {size - 1})."
        )
    return [int(i) % size for i in array]


def shape_of(arrays: Sequence[Tensor], i: int) -> tuple:
    """The shape of item ``i`` of a list of tensors, or of an on-disk sequence without reading its data."""
    shape = getattr(arrays, "shape_of", None)
    return tuple(shape(i)) if shape is not None else tuple(arrays[i].shape)


def take(arrays: Sequence[Tensor], stimuli: List[int], neurons: Optional[Tensor] = None) -> Sequence[Tensor]:
    """Items ``stimuli`` (rows ``neurons`` of each): shared tensors of a list, or a smaller on-disk sequence."""
    if hasattr(arrays, "take"):
        return arrays.take(stimuli, neurons)
    picked = [arrays[i] for i in stimuli]
    return picked if neurons is None else [a.index_select(0, neurons) for a in picked]
