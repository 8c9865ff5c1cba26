"""The argument checks every part of strfsolver shares, and its one JSON converter.

Each check raises ``ValueError`` naming the argument, what was expected and
what came (docs/conventions.md §5), and returns the value in its plain Python
type, so a call site reads ``self.patience = check_count(patience, "patience", 1)``.
Booleans are never accepted as numbers: ``True`` is an ``int`` to Python but
almost always a mistake where a count is expected.
"""

from __future__ import annotations

import math
import numbers
from pathlib import PurePath
from typing import Any, Iterable, Mapping, Optional

import numpy as np
import torch

__all__ = [
    "short_repr", "check_seed", "check_device", "usable_devices", "is_count", "check_count", "is_real", "check_real",
    "check_flag", "check_choice", "all_finite", "check_finite_weights", "to_json",
    "FLOAT32_MAX", "as_float32", "MAX_TENSOR_ELEMENTS", "check_tensor_size",
]

#: The largest finite float32 (about 3.4e38).
FLOAT32_MAX = float(np.finfo(np.float32).max)
#: The most elements strfsolver allocates in one tensor from sizes it is given (2**31: 8 GiB of float32).
MAX_TENSOR_ELEMENTS = 2**31


class _Full(Exception):
    """The budget of :py:func:`short_repr` is spent."""


def short_repr(value: Any, limit: int = 200) -> str:
    """``repr(value)`` cut to about ``limit`` characters, without ever building the whole repr.

    Lists, tuples, dicts, sets and dataclasses are walked item by item until the
    budget is spent, so a huge or deeply aliased structure (a YAML "billion
    laughs" bomb) costs ``O(limit)``; strings are sliced before their repr.
    Within the limit the text is ``repr(value)`` exactly. Every error message
    that shows a value the user gave goes through here.
    """
    import dataclasses

    parts: list = []
    budget = [int(limit)]

    def emit(text: str) -> None:
        parts.append(text)
        budget[0] -= len(text)
        if budget[0] < 0:
            raise _Full

    def walk(item: Any) -> None:
        kind = type(item)
        if kind in (list, tuple, set, frozenset):
            if kind in (set, frozenset) and not item:
                emit(f"{kind.__name__}()")
                return
            opening, closing = {list: ("[", "]"), tuple: ("(", ")"), set: ("{", "}"), frozenset: ("frozenset({", "})")}[kind]
            emit(opening)
            for index, element in enumerate(item):
                if index:
                    emit(", ")
                walk(element)
            emit("," + closing if kind is tuple and len(item) == 1 else closing)
        elif kind is dict:
            emit("{")
            for index, (key, element) in enumerate(item.items()):
                if index:
                    emit(", ")
                walk(key)
                emit(": ")
                walk(element)
            emit("}")
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            emit(f"{kind.__qualname__}(")
            for index, field in enumerate(f for f in dataclasses.fields(item) if f.repr):
                emit(f"{', ' if index else ''}{field.name}=")
                walk(getattr(item, field.name))
            emit(")")
        elif isinstance(item, (str, bytes)):
            emit(repr(item[: max(budget[0], 0) + 1]))
        elif isinstance(item, int) and not isinstance(item, bool) and item.bit_length() > 256:
            emit(f"<an integer of {item.bit_length()} bits>")
        else:
            emit(repr(item))

    try:
        walk(value)
    except _Full:
        pass
    except RecursionError:  # deeper than the interpreter allows: what was walked so far is shown
        pass
    text = "".join(parts)
    return text if len(text) <= limit and budget[0] >= 0 else text[: max(limit - 3, 0)] + "..."


#: the largest seed strfsolver takes: what every generator it seeds accepts (torch and NumPy
#: accept up to 2**64 - 1, but seeds are stored in int64 tensors and offset per fold and seed)
MAX_SEED = 2**63 - 1


def check_seed(value: Any, name: str = "seed", *, allow_none: bool = False, where: str = "") -> Optional[int]:
    """``value`` as an ``int`` if it is a seed in ``[0, 2**63 - 1]``, else a ``ValueError`` naming ``name``."""
    if value is None and allow_none:
        return None
    if not is_count(value, 0) or value > MAX_SEED:
        extra = " or None" if allow_none else ""
        raise ValueError(f"{where}{name} must be an integer in [0, 2**63 - 1]{extra} (a seed), got {short_repr(value)}.")
    return int(value)


def usable_devices() -> list:
    """The device names this torch can compute on: ``cpu``, each CUDA index, ``mps`` when built and available."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        names.append("mps")
    return names


def check_device(device: Any, name: str = "device", where: str = "") -> torch.device:
    """``device`` as a ``torch.device`` that this machine can compute on; a ``ValueError`` naming it otherwise.

    Refuses what torch would only refuse deep in a fit: ``"meta"`` (no data),
    ``"mps"`` or ``"cuda"`` where they are not available, a CUDA index beyond
    ``torch.cuda.device_count()``, and any type other than cpu, cuda and mps.
    Every entry point that takes a device (solvers, estimator, loaders,
    experiments, ``from_pretrained``, the command line) calls it.
    """
    usable = usable_devices()
    hint = f"; usable devices here: {', '.join(usable)}"
    if isinstance(device, bool) or not isinstance(device, (str, torch.device)) and not is_count(device, 0):
        raise ValueError(f"{where}{name} must name a torch device such as 'cpu' or 'cuda:0', got {short_repr(device)}{hint}.")
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as error:
        raise ValueError(f"{where}{name} must name a torch device such as 'cpu' or 'cuda:0', got {short_repr(device)}: {str(error)[:200]}{hint}.") from None
    shown = short_repr(str(parsed))
    if parsed.type == "cpu":
        return parsed
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{where}{name}={shown} but this torch has no usable CUDA device{hint}.")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(f"{where}{name}={shown} but this machine has {torch.cuda.device_count()} CUDA device(s){hint}.")
        return parsed
    if parsed.type == "mps":
        if "mps" not in usable:
            raise ValueError(f"{where}{name}={shown} but this torch has no usable MPS (Apple GPU) device{hint}.")
        return parsed
    if parsed.type == "meta":
        raise ValueError(f"{where}{name}={shown}: a meta tensor holds no data, so nothing can be fitted or predicted on it{hint}.")
    raise ValueError(f"{where}{name}={shown}: strfsolver computes on cpu, cuda or mps only{hint}.")


def is_count(value: Any, minimum: int = 0) -> bool:
    """Whether ``value`` is an integer (not a bool) ``>= minimum``."""
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, numbers.Integral) and value >= minimum


def check_count(value: Any, name: str, minimum: int = 0, *, allow_none: bool = False, where: str = "") -> Optional[int]:
    """``value`` as an ``int`` if it is an integer ``>= minimum`` (or ``None`` when allowed).

    Args:
        value: What the caller gave.
        name: The argument's name, for the message.
        minimum: The smallest value accepted.
        allow_none: Accept ``None`` (returned as is).
        where: Prefix of the message (e.g. ``"linear schedule: "``).

    Raises:
        ValueError: naming ``name``, the expected range and the value given.
    """
    if value is None and allow_none:
        return None
    if not is_count(value, minimum):
        extra = " or None" if allow_none else ""
        raise ValueError(f"{where}{name} must be an integer >= {minimum}{extra}, got {short_repr(value)}.")
    return int(value)


def is_real(value: Any) -> bool:
    """Whether ``value`` is a finite real number (not a bool)."""
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, numbers.Real) and math.isfinite(value)


def check_real(
    value: Any,
    name: str,
    low: Optional[float] = None,
    high: Optional[float] = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    allow_none: bool = False,
    where: str = "",
) -> Optional[float]:
    """``value`` as a ``float`` if it is finite and inside ``[low, high]`` (ends open on request).

    Raises:
        ValueError: naming ``name``, the interval and the value given.
    """
    if value is None and allow_none:
        return None
    ok = is_real(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        if low is None and high is None:
            expected = "a finite number"
        elif high is None or high == math.inf:
            expected = f"a number {'>' if low_open else '>='} {low:g}"
        elif low is None or low == -math.inf:
            expected = f"a number {'<' if high_open else '<='} {high:g}"
        else:
            expected = "a number in " + ("(" if low_open else "[") + f"{low:g}, {high:g}" + (")" if high_open else "]")
        extra = " or None" if allow_none else ""
        raise ValueError(f"{where}{name} must be {expected}{extra}, got {short_repr(value)}.")
    return float(value)


def check_flag(value: Any, name: str, where: str = "") -> bool:
    """``value`` as a ``bool`` if it is ``True`` or ``False`` (a NumPy bool too)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{where}{name} must be True or False, got {short_repr(value)}.")
    return bool(value)


def check_choice(value: Any, name: str, options: Iterable[Any], where: str = "") -> Any:
    """``value`` if it is one of ``options``."""
    options = tuple(options)
    if not any(value == option and type(value) is type(option) for option in options):
        raise ValueError(f"{where}{name} must be one of {list(options)}, got {short_repr(value)}.")
    return value


def _finite_flags(tensors) -> torch.Tensor:
    # one reduction per tensor and a single host sync for all of them
    return torch.stack([t.detach().isfinite().all() for t in tensors])


def all_finite(tensors: Iterable[torch.Tensor]) -> bool:
    """Whether every tensor is free of NaN and infinities (``True`` for none)."""
    tensors = list(tensors)
    return not tensors or bool(_finite_flags(tensors).all())


def check_finite_weights(weights: Mapping[str, Any], source: str, field: str = "model") -> None:
    """Raise a ``ValueError`` naming the first tensor of ``weights`` with a NaN or an infinity.

    Args:
        weights: A ``state_dict``-like mapping of names to tensors.
        source: The file (or "the state") for the message.
        field: Where the mapping sits in the state, for the message.
    """
    floating = [(name, t) for name, t in weights.items() if isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel()]
    if not floating:
        return
    finite = _finite_flags([t for _, t in floating])
    if bool(finite.all()):
        return
    name, tensor = floating[int((~finite).nonzero()[0])]
    count = int((~tensor.isfinite()).sum())
    raise ValueError(
        f"{source}: {field} tensor {short_repr(name)} holds {count} non-finite value(s) (NaN or inf); "
        "strfsolver never stores nor loads a diverged model."
    )


def as_float32(value: Any, what: str) -> Any:
    """``value`` (a real NumPy array or tensor) cast to float32, the one cast every input goes through.

    A finite value beyond float32's range would become an infinity in the
    cast, and then be reported as "non-finite" data the user never had; it
    is refused here instead, naming ``what`` and the first such position.

    Returns:
        A float32 array (for an array) or tensor (for a tensor); it may share
        memory with ``value`` when that already is float32.

    Raises:
        ValueError: ``"{what} holds 1e+39 at index (0, 3): finite but beyond
            float32's range (max 3.4e38); rescale ..."``.
    """
    if isinstance(value, torch.Tensor):
        if value.is_floating_point() and value.dtype != torch.float32 and torch.finfo(value.dtype).max > FLOAT32_MAX:
            data = value.detach()
            beyond = data.isfinite() & (data.abs() > FLOAT32_MAX)
            if bool(beyond.any()):
                index = beyond.nonzero()[0].tolist()
                _beyond_float32(what, index, float(data[tuple(index)]))
        return value.to(torch.float32)
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as error:  # ragged nesting
        raise ValueError(f"{what} must be an array of real numbers, got {type(value).__name__} that is not one ({error}).") from None
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{what} must hold real numbers, got an array of dtype {array.dtype} (kind {array.dtype.kind!r}); "
                         "convert it to floats (times, strings and objects are not data).")
    if array.dtype.kind == "f" and np.finfo(array.dtype).max > FLOAT32_MAX:
        with np.errstate(invalid="ignore"):
            beyond = np.isfinite(array) & (np.abs(array) > FLOAT32_MAX)
        if beyond.any():
            index = [int(i) for i in np.argwhere(beyond)[0]]
            _beyond_float32(what, index, float(array[tuple(index)]))
    elif array.dtype.kind in "iu" and array.size and max(abs(int(array.max())), abs(int(array.min()))) > FLOAT32_MAX:
        index = [int(i) for i in np.argwhere(np.abs(array.astype(np.float64)) > FLOAT32_MAX)[0]]
        _beyond_float32(what, index, float(array[tuple(index)]))
    return array.astype(np.float32, copy=False)


def _beyond_float32(what: str, index: list, value: float) -> None:
    where = f"index {tuple(index)}" if len(index) != 1 else f"index {index[0]}"
    raise ValueError(
        f"{what} holds {value:.3g} at {where}: finite but beyond float32's range (max {FLOAT32_MAX:.2g}); "
        "rescale it (e.g. divide by its maximum, or use other units)."
    )


def check_tensor_size(sizes: Mapping[str, int], what: str, limit: int = MAX_TENSOR_ELEMENTS) -> int:
    """Refuse sizes whose product (the elements of one tensor) exceeds ``limit``, before allocating it.

    Args:
        sizes: The argument names and their values, e.g. ``{"n_neurons": 10**9, "n_lags": 20}``.
        what: The tensor, for the message (e.g. ``"the STRF weights (n_neurons, n_channels, n_freqs, n_lags)"``).
        limit: The most elements allowed.

    Returns:
        The product.

    Raises:
        ValueError: naming every size with its value, the product and the limit.
    """
    total = math.prod(int(v) for v in sizes.values())
    if total > limit:
        given = ", ".join(f"{name}={int(value)}" for name, value in sizes.items())
        raise ValueError(
            f"{what} would hold {total:.3g} elements ({given}); at most {limit:.3g} are allowed in one tensor. "
            "Check these sizes: one of them is probably not what you meant."
        )
    return total


def to_json(value: Any, *, nonfinite: str = "keep") -> Any:
    """A copy of ``value`` made of JSON types: dicts (string keys), lists, numbers, strings, None.

    Tensors and NumPy arrays become (nested) lists, NumPy scalars Python
    numbers, tuples lists and paths strings.

    Args:
        value: Any nesting of the above.
        nonfinite: ``"keep"`` leaves NaN and infinities as floats (Python's
            ``json`` writes them as ``NaN``/``Infinity``); ``"repr"`` writes
            them as the strings ``"nan"``, ``"inf"``, ``"-inf"``, for readers
            that follow the JSON standard strictly.
    """
    if isinstance(value, dict):
        return {str(k): to_json(v, nonfinite=nonfinite) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v, nonfinite=nonfinite) for v in value]
    if isinstance(value, (torch.Tensor, np.ndarray, np.generic)):
        return to_json(value.tolist(), nonfinite=nonfinite)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value) and nonfinite == "repr":
        return repr(value)
    return value
