"""Experiment tracking: a config of every knob, a run name from it, and loggers.

- :py:func:`auto_config` collects what decides a fit (the model's registered
  name and constructor arguments, the solver's options, the data set and
  anything extra) into a dict that :py:func:`json.dumps` accepts.
- :py:func:`slug_from_config` turns such a dict into a short, deterministic,
  filesystem-safe name for the run's folder.
- Loggers receive every epoch dict of a fit (``solver.init(...,
  loggers=[...])``). The protocol: ``logger(epoch_dict)`` after each epoch;
  ``finalize(final_metrics)`` when the fit ends; ``close()`` last. Three
  kinds: files (:py:class:`CSVLogger`, :py:class:`JSONLinesLogger`, no extra
  dependency, from :py:mod:`strfsolver.solver.loggers`), TensorBoard
  (:py:class:`TensorBoardLogger`) and Weights & Biases
  (:py:class:`WandbLogger`, offline by default). TensorBoard and wandb are
  imported only when such a logger is built.

Example::

    config = auto_config(model, {"lr": 1e-2, "max_epochs": 50}, "synthetic", {"fold": 0})
    logdir = Path("runs") / slug_from_config(config)
    solver = strfsolver.solver.init("population", model=model, lr=1e-2, max_epochs=50,
                                    loggers=[TensorBoardLogger(logdir, config=config)])
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

from strfsolver.solver.loggers import CSVLogger, JSONLinesLogger, Logger, history_to_csv

__all__ = [
    "auto_config",
    "slug_from_config",
    "flatten_config",
    "Logger",
    "CSVLogger",
    "JSONLinesLogger",
    "history_to_csv",
    "TensorBoardLogger",
    "WandbLogger",
    "neuron_summary",
]

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
        raise ValueError(f"max_length must be an integer >= 8, got {max_length!r}.")
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
                    raise ValueError(f"slug key {key!r} is not in the config (no {step!r}); top-level keys: {sorted(config)}.")
                value = value[step]
            pairs.append((key.split(".")[-1], value))
    parts += [f"{k}={_short(v)}" for k, v in pairs]
    readable = _UNSAFE.sub("_", "-".join(parts)).strip("._-")[:max_length].rstrip("._-")
    return f"{readable}-{digest}" if readable else digest


# ----------------------------------------------------------------------------------------
# loggers
# ----------------------------------------------------------------------------------------
def _scalar(value: Any) -> Optional[float]:
    """A Python float for a number or a one-value tensor/array; ``None`` otherwise."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, Tensor) and value.numel() == 1 and not value.is_complex():
        return float(value.item())
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "biuf":
        return float(value.item())
    return None


def _values(value: Any) -> Optional[np.ndarray]:
    """The finite values of a tensor/array of more than one value (a per-neuron metric); ``None`` otherwise."""
    if isinstance(value, Tensor):
        if value.numel() <= 1:
            return None
        array = value.detach().double().cpu().numpy().ravel()
    elif isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        if value.size <= 1:
            return None
        array = value.astype(np.float64).ravel()
    else:
        return None
    return array[np.isfinite(array)]


def neuron_summary(values: Any) -> Dict[str, float]:
    """Mean and 10th/50th/90th percentiles over neurons of ``(N,)`` values, NaN neurons left out
    (all NaN when every neuron is): the per-epoch summary the TensorBoard and W&B loggers write."""
    tensor = torch.as_tensor(values).detach().double().reshape(-1).cpu()
    quantiles = torch.nanquantile(tensor, torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)) if tensor.numel() else torch.full((3,), math.nan)
    return {"mean": float(tensor.nanmean()), "p10": float(quantiles[0]), "p50": float(quantiles[1]), "p90": float(quantiles[2])}


def _flat_items(metrics: Mapping[str, Any], prefix: str = ""):
    # finalize receives nested per-neuron results ({"neurons": {"valid": {"val_cc": (N,)}}})
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flat_items(value, name + "/")
        else:
            yield name, value


class TensorBoardLogger:
    """Writes a fit to a TensorBoard event file.

    Per epoch, every numeric value of the epoch dict becomes a scalar
    (``train_loss``, ``val_cc_norm``, ...) at step ``epoch_dict["epoch"]``.
    :py:meth:`finalize` writes the final metrics: scalars under ``final/``,
    tensors and arrays with one value per neuron as histograms under
    ``final/`` (NaN neurons left out), and the hyperparameters (``config``,
    flattened) with the scalar final metrics for TensorBoard's HPARAMS tab.

    Args:
        logdir: The run's folder (created).
        config: The run's hyperparameters, e.g. from :py:func:`auto_config`.
        flush_secs: How often the writer flushes to disk.

    Raises:
        ImportError: without the ``tensorboard`` package, with the install command.
    """

    def __init__(self, logdir: Union[str, os.PathLike], config: Optional[Mapping[str, Any]] = None, flush_secs: int = 30):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise ImportError(
                f"TensorBoardLogger needs the tensorboard package ({error}): pip install strfsolver[tensorboard]"
            ) from error
        if config is not None and not isinstance(config, Mapping):
            raise ValueError(f"config must be a dict (e.g. from auto_config) or None, got {type(config).__name__}.")
        self.logdir = Path(logdir)
        self.config = dict(config or {})
        self.writer = SummaryWriter(log_dir=os.fspath(self.logdir), flush_secs=flush_secs)
        self._step = 0
        self._closed = False

    def __call__(self, epoch: Dict[str, Any]) -> None:
        step = int(epoch.get("epoch", self._step))
        for key, value in epoch.items():
            if key == "epoch":
                continue
            number = _scalar(value)
            if number is not None:
                self.writer.add_scalar(key, number, global_step=step)
                continue
            values = _values(value)
            if values is not None and values.size:
                self.writer.add_histogram(key, values, global_step=step)
        self._step = step + 1

    def log_neurons(self, epoch: int, values: Mapping[str, Any]) -> None:
        """Per validated epoch and metric: ``<metric>/mean``, ``/p10``, ``/p50``, ``/p90`` over neurons
        and the histogram ``<metric>/neurons`` (NaN neurons left out); epoch -1 is the initial model."""
        for key, tensor in values.items():
            for stat, number in neuron_summary(tensor).items():
                self.writer.add_scalar(f"{key}/{stat}", number, global_step=int(epoch))
            finite = _values(tensor)
            if finite is not None and finite.size:
                self.writer.add_histogram(f"{key}/neurons", finite, global_step=int(epoch))

    def finalize(self, final_metrics: Dict[str, Any]) -> None:
        """Final scalars, per-neuron histograms and the hyperparameters with the final metrics."""
        from torch.utils.tensorboard.summary import hparams

        step = int(final_metrics.get("best_epoch") or 0) if isinstance(final_metrics.get("best_epoch"), numbers.Integral) else 0
        metrics = {}
        for key, value in _flat_items(final_metrics):
            number = _scalar(value)
            if number is not None:
                self.writer.add_scalar(f"final/{key}", number, global_step=step)
                if math.isfinite(number):
                    metrics[f"final/{key}"] = number
                continue
            values = _values(value)
            if values is not None and values.size:
                self.writer.add_histogram(f"final/{key}", values, global_step=step)
        if self.config or metrics:
            # written by this writer (add_hparams would open a second run folder)
            experiment, start, end = hparams(flatten_config(self.config), metrics)
            for summary in (experiment, start, end):
                self.writer.file_writer.add_summary(summary)
        self.writer.flush()

    def close(self) -> None:
        """Flush and close the event file (idempotent)."""
        if not self._closed:
            self.writer.flush()
            self.writer.close()
            self._closed = True


class WandbLogger:
    """Logs a fit to Weights & Biases; offline by default (nothing leaves the machine).

    Per epoch, the numeric values of the epoch dict are logged at step
    ``epoch``; :py:meth:`finalize` puts the scalar final metrics in the
    run's summary and logs per-neuron tensors as histograms;
    :py:meth:`close` finishes the run. Offline runs can be uploaded later
    with ``wandb sync``.

    Args:
        project: The W&B project.
        config: The run's hyperparameters, e.g. from :py:func:`auto_config`.
        mode: ``"offline"``, ``"online"`` or ``"disabled"``; ``None`` (default): the
            ``WANDB_MODE`` environment variable (``"dryrun"`` read as offline, ``"run"``
            as online), else ``"offline"``.
        name: The run's name (e.g. :py:func:`slug_from_config`).
        dir: Folder for wandb's local files.
        **init_kwargs: More arguments of ``wandb.init``.

    Raises:
        ImportError: without the ``wandb`` package, with the install command.
    """

    def __init__(
        self,
        project: str,
        config: Optional[Mapping[str, Any]] = None,
        mode: Optional[str] = None,
        name: Optional[str] = None,
        dir: Optional[Union[str, os.PathLike]] = None,
        **init_kwargs: Any,
    ):
        try:
            import wandb
        except ImportError as error:
            raise ImportError(f"WandbLogger needs the wandb package ({error}): pip install strfsolver[wandb]") from error
        if mode is None:
            mode = os.environ.get("WANDB_MODE") or "offline"
            mode = {"dryrun": "offline", "run": "online"}.get(mode, mode)
        if mode not in ("offline", "online", "disabled"):
            raise ValueError(f"mode must be 'offline', 'online' or 'disabled', got {mode!r}.")
        if config is not None and not isinstance(config, Mapping):
            raise ValueError(f"config must be a dict (e.g. from auto_config) or None, got {type(config).__name__}.")
        self._wandb = wandb
        self.run = wandb.init(
            project=project,
            config=dict(config or {}),
            mode=mode,
            name=name,
            dir=None if dir is None else os.fspath(dir),
            **init_kwargs,
        )
        self._closed = False

    def __call__(self, epoch: Dict[str, Any]) -> None:
        row = {k: n for k, n in ((k, _scalar(v)) for k, v in epoch.items() if k != "epoch") if n is not None}
        self.run.log(row, step=int(epoch["epoch"]) if "epoch" in epoch else None)

    def log_neurons(self, epoch: int, values: Mapping[str, Any]) -> None:
        """Per validated epoch and metric: mean and 10/50/90 percentiles over neurons and a histogram
        (``<metric>/neurons``); the initial model (epoch -1; W&B steps start at 0) goes to the summary."""
        row: Dict[str, Any] = {}
        for key, tensor in values.items():
            row.update({f"{key}/{stat}": number for stat, number in neuron_summary(tensor).items()})
            finite = _values(tensor)
            if finite is not None and finite.size:
                row[f"{key}/neurons"] = self._wandb.Histogram(finite)
        if epoch < 0:
            for key, value in row.items():
                if not key.endswith("/neurons"):
                    self.run.summary[f"initial/{key}"] = value
        else:
            # logged before the epoch's own dict, at the same step: W&B merges them
            self.run.log(row, step=int(epoch))

    def finalize(self, final_metrics: Dict[str, Any]) -> None:
        """Scalar final metrics into the run's summary, per-neuron ones as histograms."""
        histograms = {}
        for key, value in _flat_items(final_metrics):
            number = _scalar(value)
            if number is not None:
                self.run.summary[f"final/{key}"] = number
                continue
            values = _values(value)
            if values is not None and values.size:
                histograms[f"final/{key}"] = self._wandb.Histogram(values)
        if histograms:
            self.run.log(histograms)

    def close(self) -> None:
        """Finish the run (idempotent)."""
        if not self._closed:
            self.run.finish()
            self._closed = True
