"""Safe, atomic files: tensors in safetensors, everything else in JSON.

Loading a file written here never runs code from it (no pickle), and every
file is written to a temporary name in the target folder and renamed into
place, so a crash leaves either the old file or the new one, never half of
one (docs/conventions.md §6).

The safetensors format is simple enough to write without the ``safetensors``
package: an 8-byte little-endian header length, a JSON header mapping each
name to ``dtype``, ``shape`` and ``data_offsets``, then the raw bytes. Files
written here load with ``safetensors.torch.load_file`` and vice versa.

Nested states (an optimizer's ``state_dict``, RNG states, a history) are
stored by :py:func:`save_state` as one safetensors file whose tensors are the
leaves and whose ``__metadata__`` holds the JSON structure around them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
import struct
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import torch
from strfsolver.utils.checks import short_repr

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "save_tensors",
    "load_tensors",
    "save_state",
    "load_state",
    "stale_temporaries",
    "parse_json",
    "read_json",
    "file_sha256",
    "CHECKSUM_KEY",
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


#: the temporary names of :py:func:`atomic_write_bytes`: ``.<target name>.<random hex>.tmp``
_TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp$")


def _open_temporary(folder: Path, name: str) -> Tuple[int, Path]:
    # os.open with mode 0o666 lets the umask decide the final mode, as open() would
    # (tempfile.mkstemp would force 0600, narrower than the user asked for)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = folder / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:  # pragma: no cover - 48 random bits
            continue


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    The file gets the mode the process's umask gives (0644 under 022); the
    temporary file is removed if the write fails. A ``path`` that is a symbolic
    link (or a chain of them, dangling or not) is written through: the link
    stays a link and its final target receives the new content, atomically
    (the temporary file sits beside the target, so the rename stays within
    one file system).
    """
    path = Path(path)
    if path.is_symlink():
        # os.replace onto the link would replace the link itself with a regular file
        path = Path(os.path.realpath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _open_temporary(path.parent, path.name)
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


def stale_temporaries(folder: PathLike) -> list:
    """The temporary files :py:func:`atomic_write_bytes` left in ``folder`` when a process died mid-write."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _TEMPORARY.match(p.name) and p.is_file())


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: PathLike, obj: Any, indent: int = 2) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=indent, allow_nan=True) + "\n")


def parse_json(text: Union[str, bytes], source: str) -> Any:
    """``json.loads(text)``, with every way it can fail turned into a ``ValueError`` naming ``source``.

    The one JSON parser of strfsolver (configs, ``estimator.json``, ``config.json``,
    safetensors headers, saved states, checkpoints): a document nested deeper
    than the interpreter's recursion limit is refused as "nested too deeply"
    rather than escaping as a ``RecursionError``; bytes that are not UTF-8 and
    malformed JSON are refused naming the file; so is an object that repeats
    a key (``json.loads`` would keep the last one silently, e.g. one of two
    tensors of the same name in a safetensors header).
    """
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except _DuplicateKey as duplicate:
        raise ValueError(f"{source} repeats the key {short_repr(duplicate.key)} in one JSON object; "
                         "which of its values is meant is ambiguous, so the file is refused.") from None
    except RecursionError:
        raise ValueError(f"{source} is nested too deeply to read as JSON (deeper than {_recursion_limit()} levels); "
                         "strfsolver never writes such a file.") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"{source} is not UTF-8 text: {error}.") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{source} is not valid JSON: {error}.") from None


class _DuplicateKey(Exception):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list) -> dict:
    """The ``object_pairs_hook`` of :py:func:`parse_json`: a dict, or :py:class:`_DuplicateKey` for a repeated key."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


def _recursion_limit() -> int:
    import sys

    return sys.getrecursionlimit()


def read_json(path: PathLike) -> Any:
    """The JSON document in the file ``path``, read through :py:func:`parse_json` (strict UTF-8)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; expected a JSON file.")
    return parse_json(path.read_bytes(), str(path))


def file_sha256(path: PathLike) -> str:
    """The SHA-256 (hex) of the file ``path``'s bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------
# flat tensors <-> safetensors bytes
# --------------------------------------------------------------------------
#: metadata key of the SHA-256 of a file's tensor bytes; safetensors itself has no checksum
CHECKSUM_KEY = "strfsolver_sha256"
_ITEM_SIZES = {name: torch.empty(0, dtype=dtype).element_size() for dtype, name in _DTYPES.items()}


def _tensors_to_bytes(tensors: Dict[str, torch.Tensor], metadata: Optional[Dict[str, str]]) -> bytes:
    header: Dict[str, Any] = {}
    metadata = dict(metadata or {})
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(
                f"safetensors metadata maps str to str; got {short_repr(key)}: {type(value).__name__}."
            )
    if CHECKSUM_KEY in metadata:
        raise ValueError(f"metadata key {short_repr(CHECKSUM_KEY)} is reserved for the checksum strfsolver writes.")
    blobs = []
    offset = 0
    for name in sorted(tensors):
        tensor = tensors[name]
        if not isinstance(tensor, torch.Tensor):
            raise ValueError(f"{short_repr(name)} is a {type(tensor).__name__}, expected a torch.Tensor.")
        if tensor.dtype not in _DTYPES:
            raise ValueError(f"{short_repr(name)} has dtype {tensor.dtype}, which safetensors cannot store.")
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
    body = b"".join(blobs)
    metadata[CHECKSUM_KEY] = hashlib.sha256(body).hexdigest()
    header = {"__metadata__": metadata, **header}
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)  # 8-byte alignment of the data
    return struct.pack("<Q", len(header_bytes)) + header_bytes + body


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_entry(source: str, name: str, info: Any, data_size: int) -> Tuple[torch.dtype, Tuple[int, ...], int, int]:
    """The dtype, shape and byte range of one header entry, every field checked against the file."""
    where = f"{source}: tensor {name!r}"
    if not isinstance(info, dict):
        raise ValueError(f"{where} has a header entry of type {type(info).__name__}; expected an object with dtype, shape and data_offsets.")
    missing = sorted({"dtype", "shape", "data_offsets"} - set(info))
    if missing:
        raise ValueError(f"{where} has no {short_repr(missing[0])} in its header entry; found {sorted(info)}.")
    dtype = _DTYPES_BACK.get(info["dtype"]) if isinstance(info["dtype"], str) else None
    if dtype is None:
        raise ValueError(f"{where} has unsupported dtype {short_repr(info['dtype'])}; expected one of {sorted(_DTYPES_BACK)}.")
    shape = info["shape"]
    if not isinstance(shape, list) or not all(_is_index(d) for d in shape):
        raise ValueError(f"{where} has shape {short_repr(shape)}; expected a list of non-negative integers.")
    offsets = info["data_offsets"]
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_index(o) for o in offsets):
        raise ValueError(f"{where} has data_offsets {short_repr(offsets)}; expected [start, stop], two non-negative integers.")
    start, stop = offsets
    if start > stop or stop > data_size:
        raise ValueError(
            f"{where} has data_offsets [{start}, {stop}] outside the {data_size} data bytes of the file "
            "(truncated or corrupt)."
        )
    expected = math.prod(shape) * _ITEM_SIZES[info["dtype"]]
    if stop - start != expected:
        raise ValueError(
            f"{where} has shape {shape} of {info['dtype']} ({expected} bytes) but data_offsets [{start}, {stop}] "
            f"hold {stop - start} bytes."
        )
    return dtype, tuple(shape), start, stop


def _bytes_to_tensors(buffer: bytes, source: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    if len(buffer) < 8:
        raise ValueError(f"{source} is not a safetensors file (only {len(buffer)} bytes).")
    (header_len,) = struct.unpack("<Q", buffer[:8])
    if header_len > len(buffer) - 8:
        raise ValueError(f"{source} is truncated or not a safetensors file.")
    header = parse_json(bytes(buffer[8 : 8 + header_len]), f"{source}: the safetensors header")
    if not isinstance(header, dict):
        raise ValueError(f"{source} has a safetensors header of type {type(header).__name__}; expected a JSON object.")
    metadata = header.pop("__metadata__", {}) or {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ValueError(f"{source}: the safetensors __metadata__ must map strings to strings, got {short_repr(metadata, 200)}.")
    data = memoryview(buffer)[8 + header_len :]
    metadata = dict(metadata)
    checksum = metadata.pop(CHECKSUM_KEY, None)
    if checksum is not None and hashlib.sha256(data).hexdigest() != checksum:
        raise ValueError(
            f"{source}: the tensor data do not match the SHA-256 checksum in the file's header; "
            "the file was corrupted after it was written."
        )
    entries = {name: _check_entry(source, name, info, len(data)) for name, info in header.items()}
    ranges = sorted((start, stop, name) for name, (_, _, start, stop) in entries.items() if stop > start)
    for (_, stop, first), (start, _, second) in zip(ranges, ranges[1:]):
        if start < stop:
            raise ValueError(f"{source}: tensors {short_repr(first)} and {short_repr(second)} overlap in the file's data (corrupt header).")
    tensors = {}
    for name, (dtype, shape, start, stop) in entries.items():
        chunk = bytearray(data[start:stop])  # a private, writable copy: the tensors own it
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


def _unflatten(obj: Any, tensors: Dict[str, torch.Tensor], source: str) -> Any:
    if isinstance(obj, dict):
        if _TENSOR in obj and len(obj) == 1:
            return _tensor_named(obj[_TENSOR], tensors, source)
        if _NDARRAY in obj and len(obj) == 2:
            dtype = obj.get("dtype")
            try:
                kind = np.dtype(dtype).kind if isinstance(dtype, str) else None
            except TypeError:
                kind = None
            if kind not in ("b", "i", "u", "f"):
                raise ValueError(f"{source}: an array of the state has dtype {short_repr(dtype)}; expected a numeric NumPy dtype.")
            return _tensor_named(obj[_NDARRAY], tensors, source).cpu().numpy().astype(dtype)
        if _TUPLE in obj and len(obj) == 1:
            return tuple(_unflatten(v, tensors, source) for v in _list_of(obj[_TUPLE], _TUPLE, source))
        if _INTKEYS in obj and len(obj) == 1:
            pairs = _list_of(obj[_INTKEYS], _INTKEYS, source)
            if not all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], int) for p in pairs):
                raise ValueError(f"{source}: the state's {_INTKEYS} entry must hold [int, value] pairs.")
            return {k: _unflatten(v, tensors, source) for k, v in pairs}
        if _FLOAT in obj and len(obj) == 1:
            if obj[_FLOAT] not in ("nan", "inf", "-inf"):
                raise ValueError(f"{source}: the state's {_FLOAT} entry is {short_repr(obj[_FLOAT])}; expected 'nan', 'inf' or '-inf'.")
            return float(obj[_FLOAT])
        return {k: _unflatten(v, tensors, source) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unflatten(v, tensors, source) for v in obj]
    return obj


def _tensor_named(key: Any, tensors: Dict[str, torch.Tensor], source: str) -> torch.Tensor:
    if not isinstance(key, str) or key not in tensors:
        raise ValueError(f"{source}: the state refers to tensor {short_repr(key)}, which the file does not hold.")
    return tensors[key]


def _list_of(value: Any, what: str, source: str) -> list:
    if not isinstance(value, list):
        raise ValueError(f"{source}: the state's {what} entry is a {type(value).__name__}; expected a list.")
    return value


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
    structure = parse_json(metadata["strfsolver_state"], f"{path}: the state structure in the file's metadata")
    return _unflatten(structure, tensors, str(path))
