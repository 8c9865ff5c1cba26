"""The ``"population"`` solver: every neuron fitted jointly by one model."""

from __future__ import annotations

from typing import Any, Dict

from torch import Tensor

from strfsolver.solver._registry import register
from strfsolver.solver.base import Solver, _solver_dataclass

__all__ = ["PopulationSolver"]


@register("population")
@_solver_dataclass
class PopulationSolver(Solver):
    """Fit all neurons at once: one forward pass per batch, loss reduced over neurons.

    The model maps a batch's stimuli to every neuron's prediction
    ``(B, N, 1, T)``; the criterion averages each neuron's loss over its
    valid bins and then over neurons (docs/conventions.md §3), so each neuron
    weighs the same whatever its firing rate or number of recorded bins.
    Shared parameters (a common front end, a shared core) and per-neuron
    ones (a linear STRF each) train together, and N neurons cost one
    batched convolution rather than N fits.

    Args:
        (fields)
    """

    def _inference(self, batch: Dict[str, Any]) -> Tensor:
        return self.model(batch["stims"])
