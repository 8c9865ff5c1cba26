"""The read-only views of a finished fit that every solver offers (``best_epoch_``, ``best_epochs_``, ...).

They read the solver's ``training_state_``
(:py:class:`~strfsolver.solver.state.TrainingState`), which the fit loop
writes and checkpoints store, so they are right after a fit, a ``load`` or a
``recover`` alike.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from torch import Tensor

__all__ = ["FittedAttributes"]


class FittedAttributes:
    """Mixin of :py:class:`~strfsolver.solver.Solver`: fitted values read from ``training_state_``."""

    @property
    def best_epoch_(self) -> Optional[int]:
        """The best evaluated epoch of the last fit (``None`` before one)."""
        return self.training_state_.best_epoch

    @property
    def best_score_(self) -> Optional[float]:
        """The monitored value at :py:attr:`best_epoch_`."""
        return self.training_state_.best_score

    @property
    def best_epochs_(self) -> Optional[Tensor]:
        """``(N,)`` epoch at which each neuron had its own best monitored score, for the solvers
        that track each neuron (``"single-cell"``, ``"per-cell-best"``); ``None`` otherwise or before a fit."""
        value = getattr(self.training_state_, "neuron_best_epoch", None)
        return None if value is None else value.detach().cpu().clone()

    @property
    def best_scores_(self) -> Optional[Tensor]:
        """``(N,)`` each neuron's own best monitored score (see :py:attr:`best_epochs_`)."""
        value = getattr(self.training_state_, "neuron_best_score", None)
        return None if value is None else value.detach().cpu().clone()

    @property
    def time_trained_(self) -> float:
        """Seconds this training has spent in its epochs (training and validation), summed over the fits
        that resumed (``fit(..., resume=True)``) or continued (after :py:meth:`recover`) it; kept in checkpoints."""
        return float(self.training_state_.time_trained)

    @property
    def stop_reason_(self) -> Optional[str]:
        """Why the last fit ended: ``"max_epochs"``, ``"patience"``, ``"all neurons stopped"`` or ``"closed form"``."""
        return self.training_state_.stop_reason

    @property
    def history_neurons_(self) -> Optional[Dict[str, Tensor]]:
        """Every validated epoch's per-neuron values: ``{"epoch": (E,), "val_<metric>": (E, N), ...}``
        (:py:mod:`strfsolver.solver.neurons`); ``None`` before a validated epoch."""
        history = self.training_state_.neuron_history
        return None if history is None else {key: value.clone() for key, value in history.items()}

    @property
    def history_(self) -> List[Dict[str, Any]]:
        """The epoch dicts of the last fit (the same list as :py:attr:`log`)."""
        return self.log
