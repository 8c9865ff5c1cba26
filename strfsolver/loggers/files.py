"""File loggers: the per-epoch dictionaries of a fit in a CSV or JSON-lines file.

A logger is any callable ``logger(epoch_dict)`` (:py:class:`Logger`, in
:py:mod:`strfsolver.loggers.protocol`): the solver calls it after every epoch
with the same dict it appends to :py:attr:`Solver.log`, then ``finalize`` and
``close`` when the fit ends.

Two file loggers are provided. Both rewrite their file atomically (through
:py:mod:`strfsolver.utils.io`) so that an interrupted run leaves a readable file.
"""

from __future__ import annotations

import csv
import io as _stdio
import json
import math
import os
from pathlib import Path
from typing import Any, Dict, List, Union

from strfsolver.loggers.protocol import Logger
from strfsolver.solver.neurons import long_form_rows
from strfsolver.utils import io
from strfsolver.utils.checks import to_json

__all__ = ["Logger", "CSVLogger", "JSONLinesLogger", "history_to_csv"]


def _columns(rows: List[Dict[str, Any]]) -> List[str]:
    # first-seen order: val_* keys appear with the first validation epoch
    columns: List[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    return columns


def history_to_csv(rows: List[Dict[str, Any]]) -> str:
    """A list of epoch dicts as CSV text; keys missing from a row are left empty."""
    buffer = _stdio.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_columns(rows), restval="", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
    return buffer.getvalue()


class CSVLogger:
    """Writes the history so far to a CSV file after every epoch.

    With ``neurons_path``, every validated epoch's per-neuron values also go
    to a second CSV file in long form, one row per epoch, neuron and metric
    (``epoch,neuron,metric,value``; ``metric`` as in the epoch dicts, e.g.
    ``val_cc``; epoch ``-1`` is the initial model), the layout
    ``pandas.read_csv(...).pivot_table`` and plotting libraries take.

    Args:
        path: The CSV file; its folder is created.
        neurons_path: The long-form per-neuron file, or ``None``.
    """

    def __init__(self, path: Union[str, os.PathLike], neurons_path: Union[str, os.PathLike, None] = None):
        self.path = Path(path)
        self.neurons_path = None if neurons_path is None else Path(neurons_path)
        self.rows: List[Dict[str, Any]] = []
        self._neurons_started = False

    def __call__(self, epoch: Dict[str, Any]) -> None:
        self.rows.append(dict(epoch))
        # the header can grow (validation keys), so the whole file is rewritten
        io.atomic_write_text(self.path, history_to_csv(self.rows))

    def log_neurons(self, epoch: int, values: Dict[str, Any]) -> None:
        """Append one epoch's per-neuron values to ``neurons_path`` (nothing without one)."""
        if self.neurons_path is None:
            return
        buffer = _stdio.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        if not self._neurons_started:
            writer.writerow(["epoch", "neuron", "metric", "value"])
        writer.writerows(long_form_rows(epoch, values))
        # appended, not rewritten: the file grows by N rows per metric and epoch; one
        # write per epoch, so an interruption can cut only the last epoch's block
        self.neurons_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.neurons_path, "w" if not self._neurons_started else "a", encoding="utf-8") as handle:
            handle.write(buffer.getvalue())
        self._neurons_started = True


class JSONLinesLogger:
    """Appends one JSON object per epoch to a file (``.jsonl``).

    Args:
        path: The file; its folder is created and an existing file is replaced.
    """

    def __init__(self, path: Union[str, os.PathLike]):
        self.path = Path(path)
        self.lines: List[str] = []

    def __call__(self, epoch: Dict[str, Any]) -> None:
        self.lines.append(json.dumps(to_json(epoch, nonfinite="repr")))
        io.atomic_write_text(self.path, "\n".join(self.lines) + "\n")

    def finalize(self, final_metrics: Dict[str, Any]) -> None:
        """Appends ``{"final": final_metrics}`` as the last line."""
        self.lines.append(json.dumps({"final": to_json(final_metrics, nonfinite="repr")}))
        io.atomic_write_text(self.path, "\n".join(self.lines) + "\n")


