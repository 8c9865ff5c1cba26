"""Safe, atomic files: tensors in safetensors, everything else in JSON.

Loading a file written here never runs code from it (no pickle), and every
file is written to a temporary name in the target folder and renamed into
place, so a crash leaves either the old file or the new one, never half of
one (CONVENTIONS.md §6).

The safetensors format is simple enough to write without the ``safetensors``
package: an 8-byte little-endian header length, a JSON header mapping each
name to ``dtype``, ``shape`` and ``data_offsets``, then the raw bytes. Files
written here load with ``safetensors.torch.load_file`` and vice versa.

Nested states (an optimizer's ``state_dict``, RNG states, a history) are
stored by :py:func:`save_state` as one safetensors file whose tensors are the
leaves and whose ``__metadata__`` holds the JSON structure around them.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import torch

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "save_tensors",
    "load_tensors",
    "save_state",
    "load_state",
]

PathLike = Union[str, os.PathLike]

_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
_DTYPES_BACK = {v: k for k, v in _DTYPES.items()}


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: PathLike, obj: Any, indent: int = 2) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=indent, allow_nan=True) + "\n")


# --------------------------------------------------------------------------
# flat tensors <-> safetensors bytes
# --------------------------------------------------------------------------
def _tensors_to_bytes(tensors: Dict[str, torch.Tensor], metadata: Optional[Dict[str, str]]) -> bytes:
    header: Dict[str, Any] = {}
    if metadata:
        for key, value in metadata.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise ValueError(
                    f"safetensors metadata maps str to str; got {key!r}: {type(value).__name__}."
                )
        header["__metadata__"] = dict(metadata)
    blobs = []
    offset = 0
    for name in sorted(tensors):
        tensor = tensors[name]
        if not isinstance(tensor, torch.Tensor):
            raise ValueError(f"{name!r} is a {type(tensor).__name__}, expected a torch.Tensor.")
        if tensor.dtype not in _DTYPES:
            raise ValueError(f"{name!r} has dtype {tensor.dtype}, which safetensors cannot store.")
        data = tensor.detach().to("cpu").contiguous()
        # bool and bfloat16 have no NumPy view; reinterpret the raw bytes instead.
        raw = data.view(torch.uint8) if data.dtype == torch.bool else data
        if raw.dtype == torch.bfloat16:
            raw = raw.view(torch.int16)
        blob = raw.numpy().tobytes() if raw.numel() else b""
        header[name] = {
            "dtype": _DTYPES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        blobs.append(blob)
        offset += len(blob)
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)  # 8-byte alignment of the data
    return struct.pack("<Q", len(header_bytes)) + header_bytes + b"".join(blobs)


def _bytes_to_tensors(buffer: bytes, source: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    if len(buffer) < 8:
        raise ValueError(f"{source} is not a safetensors file (only {len(buffer)} bytes).")
    (header_len,) = struct.unpack("<Q", buffer[:8])
    if header_len > len(buffer) - 8:
        raise ValueError(f"{source} is truncated or not a safetensors file.")
    try:
        header = json.loads(buffer[8 : 8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{source} has a corrupt safetensors header: {error}") from None
    metadata = header.pop("__metadata__", {}) or {}
    data = memoryview(buffer)[8 + header_len :]
    tensors = {}
    for name, info in header.items():
        dtype = _DTYPES_BACK.get(info["dtype"])
        if dtype is None:
            raise ValueError(f"{source}: tensor {name!r} has unsupported dtype {info['dtype']}.")
        start, stop = info["data_offsets"]
        if stop > len(data):
            raise ValueError(f"{source} is truncated: tensor {name!r} runs past the end.")
        chunk = bytearray(data[start:stop])  # a private, writable copy: the tensors own it
        shape = tuple(info["shape"])
        if dtype == torch.bool:
            tensor = torch.frombuffer(chunk, dtype=torch.uint8).view(torch.bool) if chunk else torch.empty(0, dtype=torch.bool)
        elif chunk:
            tensor = torch.frombuffer(chunk, dtype=dtype)
        else:
            tensor = torch.empty(0, dtype=dtype)
        tensors[name] = tensor.reshape(shape)
    return tensors, metadata


def save_tensors(path: PathLike, tensors: Dict[str, torch.Tensor], metadata: Optional[Dict[str, str]] = None) -> None:
    """Save a flat ``{name: tensor}`` dict as a safetensors file, atomically.

    Args:
        path: Destination file.
        tensors: Tensors to store; they are copied to the CPU.
        metadata: Optional ``{str: str}`` stored in the header.
    """
    atomic_write_bytes(path, _tensors_to_bytes(tensors, metadata))


def load_tensors(path: PathLike, device: Union[str, torch.device] = "cpu", with_metadata: bool = False):
    """Load a safetensors file written by :py:func:`save_tensors` (or by ``safetensors``).

    Returns:
        ``{name: tensor}``, or ``(tensors, metadata)`` with ``with_metadata=True``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No safetensors file at {path}.")
    tensors, metadata = _bytes_to_tensors(path.read_bytes(), str(path))
    tensors = {k: v.to(device) for k, v in tensors.items()}
    return (tensors, metadata) if with_metadata else tensors


# --------------------------------------------------------------------------
# nested states
# --------------------------------------------------------------------------
_TENSOR = "__tensor__"
_TUPLE = "__tuple__"
_NDARRAY = "__ndarray__"
_INTKEYS = "__intkeys__"
_FLOAT = "__float__"


def _flatten(obj: Any, tensors: Dict[str, torch.Tensor], where: str) -> Any:
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj
        return {_TENSOR: key}
    if isinstance(obj, np.ndarray):
        key = f"t{len(tensors)}"
        array = np.ascontiguousarray(obj)
        if array.dtype.kind in "ui" and array.dtype not in (np.uint8, np.int8, np.int16, np.int32, np.int64):
            array = array.astype(np.int64)  # e.g. NumPy's uint32 RNG state
        tensors[key] = torch.from_numpy(array)
        return {_NDARRAY: key, "dtype": str(obj.dtype)}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: _flatten(v, tensors, f"{where}.{k}") for k, v in obj.items()}
        if all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) for k in obj):
            # optimizer states are keyed by parameter index
            return {_INTKEYS: [[int(k), _flatten(v, tensors, f"{where}[{k}]")] for k, v in obj.items()]}
        raise ValueError(f"{where}: dict keys must be all strings or all ints, got {list(obj)[:5]}.")
    if isinstance(obj, tuple):
        return {_TUPLE: [_flatten(v, tensors, f"{where}[{i}]") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_flatten(v, tensors, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, (bool, type(None), str)):
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        # JSON has no inf/nan; keep them exact through their repr
        return value if np.isfinite(value) else {_FLOAT: repr(value)}
    raise ValueError(
        f"{where}: cannot store a {type(obj).__name__} safely; expected tensors, "
        f"arrays, numbers, strings, lists, tuples or dicts."
    )


def _unflatten(obj: Any, tensors: Dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if _TENSOR in obj and len(obj) == 1:
            return tensors[obj[_TENSOR]]
        if _NDARRAY in obj and len(obj) == 2:
            return tensors[obj[_NDARRAY]].cpu().numpy().astype(obj["dtype"])
        if _TUPLE in obj and len(obj) == 1:
            return tuple(_unflatten(v, tensors) for v in obj[_TUPLE])
        if _INTKEYS in obj and len(obj) == 1:
            return {k: _unflatten(v, tensors) for k, v in obj[_INTKEYS]}
        if _FLOAT in obj and len(obj) == 1:
            return float(obj[_FLOAT])
        return {k: _unflatten(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    return obj


def save_state(path: PathLike, state: Any) -> None:
    """Save a nested state (dicts, lists, tuples, tensors, numbers) atomically.

    Tensors and arrays become safetensors entries; the structure around them
    is JSON in the file's metadata. Anything else (a function, an arbitrary
    object) is refused with a ``ValueError`` naming where it sits.
    """
    tensors: Dict[str, torch.Tensor] = {}
    structure = _flatten(state, tensors, "state")
    save_tensors(path, tensors, metadata={"strfsolver_state": json.dumps(structure)})


def load_state(path: PathLike, device: Union[str, torch.device] = "cpu") -> Any:
    """Load a state written by :py:func:`save_state`."""
    tensors, metadata = load_tensors(path, device=device, with_metadata=True)
    if "strfsolver_state" not in metadata:
        raise ValueError(f"{path} is a safetensors file but not a strfsolver state.")
    return _unflatten(json.loads(metadata["strfsolver_state"]), tensors)
