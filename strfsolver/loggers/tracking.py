"""Experiment tracking: TensorBoard and Weights & Biases loggers.

Loggers receive every epoch dict of a fit (``solver.init(...,
loggers=[...])``). The protocol (:py:mod:`strfsolver.loggers.protocol`):
``logger(epoch_dict)`` after each epoch; ``finalize(final_metrics)`` when the
fit ends; ``close()`` last. Three kinds: files (:py:class:`CSVLogger`,
:py:class:`JSONLinesLogger`, no extra dependency, from
:py:mod:`strfsolver.loggers.files`), TensorBoard (:py:class:`TensorBoardLogger`)
and Weights & Biases (:py:class:`WandbLogger`, offline by default).
TensorBoard and wandb are imported only when such a logger is built.

A run's config and folder name come from :py:func:`auto_config` and
:py:func:`slug_from_config` (:py:mod:`strfsolver.loggers.run_config`, also
importable from here).

Example::

    config = auto_config(model, {"lr": 1e-2, "max_epochs": 50}, "synthetic", {"fold": 0})
    logdir = Path("runs") / slug_from_config(config)
    solver = strfsolver.solver.init("population", model=model, lr=1e-2, max_epochs=50,
                                    loggers=[TensorBoardLogger(logdir, config=config)])
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import numpy as np
import torch
from torch import Tensor

from strfsolver.loggers.files import CSVLogger, JSONLinesLogger, history_to_csv
from strfsolver.loggers.protocol import Logger
from strfsolver.loggers.run_config import auto_config, flatten_config, slug_from_config
from strfsolver.utils.checks import short_repr

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
            raise ValueError(f"mode must be 'offline', 'online' or 'disabled', got {short_repr(mode)}.")
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
