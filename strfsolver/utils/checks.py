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

__all__ = ["is_count", "check_count", "is_real", "check_real", "check_flag", "check_choice", "all_finite", "check_finite_weights", "to_json"]


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
        raise ValueError(f"{where}{name} must be an integer >= {minimum}{extra}, got {value!r}.")
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
        raise ValueError(f"{where}{name} must be {expected}{extra}, got {value!r}.")
    return float(value)


def check_flag(value: Any, name: str, where: str = "") -> bool:
    """``value`` as a ``bool`` if it is ``True`` or ``False`` (a NumPy bool too)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{where}{name} must be True or False, got {value!r}.")
    return bool(value)


def check_choice(value: Any, name: str, options: Iterable[Any], where: str = "") -> Any:
    """``value`` if it is one of ``options``."""
    options = tuple(options)
    if not any(value == option and type(value) is type(option) for option in options):
        raise ValueError(f"{where}{name} must be one of {list(options)}, got {value!r}.")
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
        f"{source}: {field} tensor {name!r} holds {count} non-finite value(s) (NaN or inf); "
        "strfsolver never stores nor loads a diverged model."
    )


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
