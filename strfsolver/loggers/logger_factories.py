"""Per-seed logger factories: one TensorBoard folder or one W&B run per seed of a group of fits.

deepSTRF names a multi-seed experiment's runs ``<group>-seed<s>`` and files
them under their group. These factories build exactly that for
``"multi-seed"``'s ``logger_factory`` (or :py:func:`strfsolver.run_many`)::

    factory = tensorboard_logger_factory("runs", group="ln-a1")
    ms = strfsolver.solver.init("multi-seed", model_factory=build, logger_factory=factory, ...)
    # runs/ln-a1/ln-a1-seed0/, runs/ln-a1/ln-a1-seed1/, ...

Each logger writes the epoch dicts, and, per validated epoch and metric, the
mean and the 10th, 50th and 90th percentiles over neurons with a histogram
(:py:meth:`~strfsolver.loggers.tracking.TensorBoardLogger.log_neurons`); its
``finalize`` receives the best state's per-neuron results on the validation
and test sets. The packages (``tensorboard``, ``wandb``) are imported only
when a seed's logger is built.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, List, Mapping, Optional, Union

from strfsolver.loggers.tracking import TensorBoardLogger, WandbLogger
from strfsolver.utils.deprecation import renamed
from strfsolver.utils.checks import short_repr

__all__ = ["run_name", "tensorboard_logger_factory", "wandb_logger_factory"]


def run_name(group: str, seed: int) -> str:
    """``<group>-seed<seed>``, the name of one seed's run."""
    return f"{group}-seed{int(seed)}"


def _check_group(group: Any) -> str:
    if not isinstance(group, str) or not group or os.sep in group or (os.altsep and os.altsep in group):
        raise ValueError(f"group must be a non-empty name without path separators, got {short_repr(group)}.")
    return group


def tensorboard_logger_factory(
    logdir: Optional[Union[str, os.PathLike]] = None,
    group: Optional[str] = None,
    config: Optional[Mapping[str, Any]] = None,
    flush_secs: int = 30,
    *,
    log_dir: Optional[Union[str, os.PathLike]] = None,
) -> Callable[[int], List[TensorBoardLogger]]:
    """``seed -> [TensorBoardLogger]`` writing to ``logdir/group/<group>-seed<seed>``.

    Args:
        logdir: The root of every group's folders (required).
        group: The experiment's name (a folder name; required).
        config: Hyperparameters for TensorBoard's HPARAMS tab (the seed is added).
        flush_secs: How often each writer flushes.
        log_dir: Old name of ``logdir``, taken for one release (with a ``DeprecationWarning``).
    """
    logdir = renamed(logdir, log_dir, "logdir", "log_dir", where="tensorboard_logger_factory()")
    if logdir is None:
        raise TypeError("tensorboard_logger_factory() needs logdir, the root of every group's folders.")
    group, root = _check_group(group), Path(logdir)

    def make(seed: int) -> List[TensorBoardLogger]:
        name = run_name(group, seed)
        return [TensorBoardLogger(root / group / name, config={**dict(config or {}), "seed": int(seed)}, flush_secs=flush_secs)]

    return make


def wandb_logger_factory(
    project: str,
    group: str,
    config: Optional[Mapping[str, Any]] = None,
    mode: Optional[str] = None,
    logdir: Optional[Union[str, os.PathLike]] = None,
    *,
    log_dir: Optional[Union[str, os.PathLike]] = None,
    **init_kwargs: Any,
) -> Callable[[int], List[WandbLogger]]:
    """``seed -> [WandbLogger]``: one W&B run per seed, named ``<group>-seed<seed>`` in the W&B group ``group``.

    Args:
        project: The W&B project.
        group: The W&B group of the seeds' runs.
        config: The run's hyperparameters (the seed is added).
        mode: ``None``: ``WANDB_MODE`` from the environment, else offline (see :py:class:`~strfsolver.loggers.tracking.WandbLogger`).
        logdir: Root of wandb's local files, one ``logdir/group/<run>`` folder per seed.
        log_dir: Old name of ``logdir``, taken for one release (with a ``DeprecationWarning``).
        **init_kwargs: More arguments of ``wandb.init``.
    """
    logdir = renamed(logdir, log_dir, "logdir", "log_dir", where="wandb_logger_factory()")
    group = _check_group(group)

    def make(seed: int) -> List[WandbLogger]:
        name = run_name(group, seed)
        folder = None
        if logdir is not None:
            folder = Path(logdir) / group / name
            folder.mkdir(parents=True, exist_ok=True)
        logger = WandbLogger(project, config={**dict(config or {}), "seed": int(seed)}, mode=mode, name=name, dir=folder, group=group, **init_kwargs)
        return [logger]

    return make
