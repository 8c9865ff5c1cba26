"""The config of a run: every knob that decides a fit, and a folder name from it.

- :py:func:`auto_config` collects what decides a fit (the model's registered
  name and constructor arguments, the solver's options, the data set and
  anything extra) into a dict that :py:func:`json.dumps` accepts.
- :py:func:`flatten_config` flattens it for TensorBoard's HPARAMS tab.
- :py:func:`slug_from_config` turns such a dict into a short, deterministic,
  filesystem-safe name for the run's folder.

Example::

    config = auto_config(model, {"lr": 1e-2, "max_epochs": 50}, "synthetic", {"fold": 0})
    logdir = Path("runs") / slug_from_config(config)
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
import re
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor, nn
from strfsolver.utils.checks import short_repr

__all__ = ["auto_config", "slug_from_config", "flatten_config"]

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]+")
_SMALL_TENSOR = 16  # tensors up to this many values are written out, larger ones summarised


def _callable_name(value: Any) -> str:
    module = getattr(value, "__module__", None) or ""
    name = getattr(value, "__qualname__", None) or getattr(value, "__name__", None) or type(value).__name__
    return f"{module}.{name}" if module and module != "builtins" else name


def _readable(value: Any) -> Any:
    """A JSON value for ``value``: itself when JSON already, else a readable, stable string.

    Memory addresses (``at 0x7f...``) are removed so that the same settings
    always give the same config, and hence the same slug.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else repr(value)  # JSON has no NaN / inf
    if isinstance(value, Path):
        return os.fspath(value)
    if isinstance(value, torch.device):
        return str(value)
    if isinstance(value, torch.dtype):
        return str(value)
    if isinstance(value, (Tensor, np.ndarray)):
        array = value.detach().cpu().numpy() if isinstance(value, Tensor) else value
        if array.size <= _SMALL_TENSOR:
            return _readable(array.tolist())
        return f"{type(value).__name__}(shape={list(array.shape)}, dtype={array.dtype})"
    if isinstance(value, Mapping):
        return {str(k): _readable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [_readable(v) for v in items]
    if isinstance(value, torch.optim.Optimizer):
        defaults = {k: _readable(v) for k, v in sorted(value.defaults.items()) if isinstance(v, (numbers.Number, str, bool, tuple))}
        return f"{type(value).__name__}({', '.join(f'{k}={v}' for k, v in defaults.items())})"
    if isinstance(value, nn.Module):
        name = getattr(value, "registered_name", None)
        registered = name() if callable(name) else None
        # a module's repr lists its layers and sizes: readable and stable
        text = _ADDRESS.sub("", repr(value))
        return f"{registered}: {text}" if registered else text
    if isinstance(value, type):
        return _callable_name(value)
    if callable(value) and hasattr(value, "__qualname__"):
        return _callable_name(value)
    return _ADDRESS.sub("", repr(value))


def _model_entry(model: Any) -> Dict[str, Any]:
    if model is None:
        return {"name": None}
    if isinstance(model, str):
        return {"name": model}
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be an nn.Module, a registered model name or None, got {type(model).__name__}.")
    registered = getattr(model, "registered_name", None)
    entry: Dict[str, Any] = {
        "name": registered() if callable(registered) else None,
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
    }
    config = getattr(model, "config", None)
    if isinstance(config, Mapping):
        entry["config"] = _readable(dict(config))
    entry["n_parameters"] = int(sum(p.numel() for p in model.parameters() if p.requires_grad))
    return entry


def auto_config(
    model: Any = None,
    solver_kwargs: Optional[Mapping[str, Any]] = None,
    dataset_name: Optional[str] = None,
    extra: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    """A JSON-serialisable dict of every knob of a fit.

    Args:
        model: The model (an ``nn.Module``; a :py:class:`~strfsolver.models.NeuralModel`
            contributes its registered name and constructor arguments), a
            registered model name, or ``None``.
        solver_kwargs: The solver's options as passed to ``solver.init``
            (the solver's own name may be among them under ``"solver"``).
            Values that are not JSON become readable strings: a function its
            qualified name, a module its ``repr``, an optimizer its class and
            defaults, a large tensor its shape and dtype.
        dataset_name: A name for the data.
        extra: Anything else that defines the run (a fold, a grid point, a note).

    Returns:
        ``{"model": {"name", "class", "config", "n_parameters"}, "solver": {...},
        "dataset": dataset_name, "extra": {...}}``; ``json.dumps`` accepts it.

    Raises:
        ValueError: if ``solver_kwargs`` or ``extra`` is not a mapping.
    """
    for name, value in (("solver_kwargs", solver_kwargs), ("extra", extra)):
        if value is not None and not isinstance(value, Mapping):
            raise ValueError(f"{name} must be a dict (or None), got {type(value).__name__}.")
    solver = {str(k): _readable(v) for k, v in sorted((solver_kwargs or {}).items()) if k != "model"}
    return {
        "model": _model_entry(model),
        "solver": solver,
        "dataset": _readable(dataset_name),
        "extra": {str(k): _readable(v) for k, v in sorted((extra or {}).items())},
    }


def flatten_config(config: Mapping[str, Any], separator: str = "/") -> Dict[str, Union[int, float, str, bool]]:
    """One level of ``{"a/b": value}`` with scalar values (lists and ``None`` as strings),
    as TensorBoard's hyperparameters and most trackers want them."""
    flat: Dict[str, Union[int, float, str, bool]] = {}

    def visit(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                visit(f"{prefix}{separator}{key}" if prefix else str(key), item)
        elif isinstance(value, (bool, int, float, str)) and not isinstance(value, np.generic):
            flat[prefix] = value
        else:
            flat[prefix] = json.dumps(_readable(value), sort_keys=True)

    visit("", config)
    return flat


def _short(value: Any) -> str:
    if isinstance(value, float):
        return format(value, "g")
    return str(value)


def slug_from_config(config: Mapping[str, Any], keys: Optional[Sequence[str]] = None, max_length: int = 80) -> str:
    """A short, deterministic, filesystem-safe name for a run, e.g. ``"ln-population-fold=0-lr=0.01-3f2a9c1b"``.

    The readable part is the model's name, the solver's name (``config["solver"]["solver"]``
    or ``["name"]``, default ``population``) and ``key=value`` for each of
    ``keys`` (dotted paths into ``config``, e.g. ``"solver.lr"``) or, by
    default, for each scalar of ``config["extra"]``. The hash (8 hex digits)
    is over the whole config, so two configs that differ anywhere get
    different slugs and the same config always gets the same one.

    Args:
        config: A JSON-serialisable dict, such as :py:func:`auto_config`'s.
        keys: Dotted paths of the values to show in the name.
        max_length: The readable part is cut to this many characters (>= 8).

    Returns:
        A string of letters, digits and ``._=+-``.

    Raises:
        ValueError: if ``config`` is not JSON-serialisable or a key is missing.
    """
    if not isinstance(config, Mapping):
        raise ValueError(f"config must be a dict, got {type(config).__name__}.")
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 8:
        raise ValueError(f"max_length must be an integer >= 8, got {short_repr(max_length)}.")
    try:
        canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"config must be JSON-serialisable (see auto_config): {error}") from None
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:8]

    parts = []
    model = config.get("model")
    model_name = model.get("name") if isinstance(model, Mapping) else model
    if model_name:
        parts.append(str(model_name))
    solver = config.get("solver")
    if isinstance(solver, Mapping):
        parts.append(str(solver.get("solver") or solver.get("name") or "population"))
    if keys is None:
        extra = config.get("extra")
        pairs = [(k, v) for k, v in sorted(extra.items()) if isinstance(v, (str, int, float, bool))] if isinstance(extra, Mapping) else []
    else:
        pairs = []
        for key in keys:
            value: Any = config
            for step in key.split("."):
                if not isinstance(value, Mapping) or step not in value:
                    raise ValueError(f"slug key {short_repr(key)} is not in the config (no {short_repr(step)}); top-level keys: {sorted(config)}.")
                value = value[step]
            pairs.append((key.split(".")[-1], value))
    parts += [f"{k}={_short(v)}" for k, v in pairs]
    readable = _UNSAFE.sub("_", "-".join(parts)).strip("._-")[:max_length].rstrip("._-")
    return f"{readable}-{digest}" if readable else digest
