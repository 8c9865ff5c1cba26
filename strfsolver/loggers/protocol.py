"""The logger protocol: where the per-epoch dictionaries of a fit go, besides the history.

A logger is any callable ``logger(epoch_dict)``; the solver calls it after
every epoch with the same dict it appends to :py:attr:`Solver.log`. Two
optional methods are called when the fit ends (also when it stops with an
error): ``finalize(final_metrics)`` with the best epoch's dict (plus
``"best_epoch"``), then ``close()``. The solver only calls the loggers it is
given; it does not import this package.
"""

from __future__ import annotations

from typing import Any, Dict, Protocol, runtime_checkable

__all__ = ["Logger"]


@runtime_checkable
class Logger(Protocol):
    """What a logger provides: ``__call__(epoch_dict)``; ``finalize`` and ``close`` are optional."""

    def __call__(self, epoch: Dict[str, Any]) -> None:
        ...
