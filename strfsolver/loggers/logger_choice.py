"""Loggers named in a config or an estimator argument: ``"csv"``, ``"jsonl"``, ``"tensorboard"``, ``"wandb"``.

A config cannot hold a logger object, so it names one: a string, or a
mapping with ``kind`` and the logger's own options
(``{"kind": "wandb", "project": "a1", "mode": "offline"}``).
:py:func:`check_logger_choices` refuses a bad list before anything is
fitted; :py:func:`make_loggers` builds the loggers of
:py:mod:`strfsolver.loggers.tracking` for one fit into one folder, and
:py:func:`logger_factory` one set per seed (each seed in its own folder).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union
from strfsolver.utils.checks import short_repr

__all__ = ["LOGGER_KINDS", "check_logger_choices", "make_loggers", "logger_factory"]

#: the logger names, with the file or folder each writes inside the fit's folder
LOGGER_KINDS: Dict[str, str] = {
    "csv": "history.csv",
    "jsonl": "history.jsonl",
    "tensorboard": "tensorboard",
    "wandb": "wandb",
}


def check_logger_choices(choices: Any, what: str = "loggers") -> List[Dict[str, Any]]:
    """The choices as ``[{"kind": ..., **options}]``; raises ``ValueError`` naming ``what`` for a bad one."""
    if choices is None:
        return []
    if isinstance(choices, (str, Mapping)) or not isinstance(choices, Sequence):
        raise ValueError(f"{what} must be a list of logger names ({', '.join(LOGGER_KINDS)}) or mappings with 'kind', got {short_repr(choices)}.")
    checked = []
    for choice in choices:
        entry = {"kind": choice} if isinstance(choice, str) else dict(choice) if isinstance(choice, Mapping) else None
        if entry is None or entry.get("kind") not in LOGGER_KINDS:
            raise ValueError(f"{what}: unknown logger {short_repr(choice)}; the loggers are {', '.join(LOGGER_KINDS)} (or {{'kind': name, ...options}}).")
        options = set(entry) - {"kind"}
        if entry["kind"] in ("csv", "jsonl") and options:
            raise ValueError(f"{what}: the {short_repr(entry['kind'])} logger takes no options, got {sorted(options)}.")
        if entry["kind"] == "tensorboard" and options - {"flush_secs"}:
            raise ValueError(f"{what}: the 'tensorboard' logger takes only 'flush_secs', got {sorted(options)}.")
        checked.append(entry)
    return checked


def make_loggers(choices: Any, folder: Union[str, os.PathLike], config: Optional[Mapping[str, Any]] = None) -> List[Any]:
    """Build the chosen loggers of one fit, writing inside ``folder``.

    Args:
        choices: Logger names or ``{"kind": name, **options}`` mappings.
        folder: The fit's folder (created by the loggers that write there).
        config: Hyperparameters for TensorBoard's HPARAMS tab and W&B's run config.

    Raises:
        ValueError: for a bad choice; ImportError: without the logger's package.
    """
    from strfsolver.loggers import tracking

    folder = Path(folder)
    loggers = []
    for entry in check_logger_choices(choices):
        kind, options = entry["kind"], {k: v for k, v in entry.items() if k != "kind"}
        target = folder / LOGGER_KINDS[kind]
        if kind == "csv":
            loggers.append(tracking.CSVLogger(target))
        elif kind == "jsonl":
            loggers.append(tracking.JSONLinesLogger(target))
        elif kind == "tensorboard":
            loggers.append(tracking.TensorBoardLogger(target, config=config, **options))
        else:
            options.setdefault("project", "strfsolver")
            options.setdefault("dir", os.fspath(target))
            target.mkdir(parents=True, exist_ok=True)
            loggers.append(tracking.WandbLogger(config=config, **options))
    return loggers


def logger_factory(choices: Any, folder: Union[str, os.PathLike], config: Optional[Mapping[str, Any]] = None) -> Optional[Callable[[int], List[Any]]]:
    """``seed -> loggers`` writing into each seed's folder of ``folder`` (the multi-seed solver's layout); ``None`` for no choice."""
    from strfsolver.solver.seed_runs import SEED_FOLDER

    if not check_logger_choices(choices):
        return None
    root = Path(folder)

    def build(seed: int) -> List[Any]:
        return make_loggers(choices, root / SEED_FOLDER.format(seed=seed), config)

    return build
