"""What a fit has to remember between epochs: the typed training state.

:py:class:`TrainingState` holds the counters and the early-stopping
bookkeeping of one :py:meth:`~strfsolver.solver.Solver.fit` (epoch, step,
best score and epoch, patience counter, why it stopped, the best model
state). It is saved in every checkpoint (``state_dict()``, plain values and
tensors) and restored on resume. A solver that needs more subclasses it and
names the subclass in its ``state_class``; :py:class:`NeuronTrainingState`
is the one of the per-neuron solvers (``"single-cell"``,
``"per-cell-best"``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Mapping, Optional

from torch import Tensor

__all__ = ["TrainingState", "NeuronTrainingState"]

#: reasons a fit ended, as written to ``TrainingState.stop_reason`` and the log
STOP_REASONS = ("max_epochs", "patience", "all neurons stopped", "closed form")


@dataclasses.dataclass
class TrainingState:
    """Counters and best-state bookkeeping of one fit.

    Attributes:
        epoch: Epochs completed.
        step: Gradient steps completed.
        best_score: Best monitored value so far (``None`` before the first evaluation).
        best_epoch: Epoch of ``best_score``.
        bad_epochs: Evaluated epochs since the last improvement.
        stopped: Whether early stopping ended the fit.
        stop_reason: ``"max_epochs"``, ``"patience"``, ``"all neurons stopped"`` or ``"closed form"``
            once the fit has ended, else ``None``.
        best_model: The model's state at ``best_epoch`` (detached copies).
        neuron_history: Every validated epoch's per-neuron values
            (:py:mod:`strfsolver.solver.neurons`), ``None`` before one; on the CPU.
        time_trained: Seconds spent in the epochs (training and validation) of this training,
            summed over the fits that resumed or continued it.
    """

    epoch: int = 0
    step: int = 0
    best_score: Optional[float] = None
    best_epoch: Optional[int] = None
    bad_epochs: int = 0
    stopped: bool = False
    stop_reason: Optional[str] = None
    best_model: Optional[Dict[str, Tensor]] = None
    neuron_history: Optional[Dict[str, Tensor]] = None
    time_trained: float = 0.0

    def state_dict(self) -> Dict[str, Any]:
        """The fields as a dict (tensors are not copied)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :py:meth:`state_dict`'s values; fields missing from ``state`` keep their defaults.

        Raises:
            ValueError: for a key that is no field of this state (a checkpoint of another solver).
        """
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(state) - names - set(self._renamed()))
        if unknown:
            raise ValueError(
                f"the checkpoint's training state has {unknown}, which a {type(self).__name__} does not keep; "
                "was it written by another solver?"
            )
        fresh = type(self)()
        for name in names:
            setattr(self, name, getattr(fresh, name))
        for key, value in state.items():
            if key == "neuron_history" and value:
                # a record for the user, kept on the CPU as a fit builds it (a checkpoint loaded onto
                # CUDA brought it there, and the next epoch's CPU row could not join it)
                value = {name: column.cpu() for name, column in value.items()}
            setattr(self, self._renamed().get(key, key), value)

    @staticmethod
    def _renamed() -> Dict[str, str]:
        """Keys of older checkpoints and the fields they are now."""
        return {}


@dataclasses.dataclass
class NeuronTrainingState(TrainingState):
    """:py:class:`TrainingState` plus each neuron's own early-stopping bookkeeping.

    All per-neuron tensors have the neuron axis first and live on the
    solver's device (a resumed fit on CUDA finds them there, like the model).

    Attributes:
        neuron_best_score: ``(N,)`` float64, each neuron's best monitored value (NaN before one).
        neuron_best_epoch: ``(N,)`` long, the epoch of it (-1 before one).
        neuron_bad_epochs: ``(N,)`` long, evaluated epochs since the neuron's last improvement.
        neuron_stopped_epoch: ``(N,)`` long, the epoch at which the neuron was frozen (-1: active).
        neuron_best_model: Each neuron's slice of its best state, as tensors of
            the model's ``state_dict`` names (all of them for a frozen stack,
            only the per-neuron ones for ``"per-cell-best"``).
    """

    neuron_best_score: Optional[Tensor] = None
    neuron_best_epoch: Optional[Tensor] = None
    neuron_bad_epochs: Optional[Tensor] = None
    neuron_stopped_epoch: Optional[Tensor] = None
    neuron_best_model: Optional[Dict[str, Tensor]] = None

    @staticmethod
    def _renamed() -> Dict[str, str]:
        # "per-cell-best" checkpoints of strfsolver 0.1 kept the snapshots under this name
        return {"neuron_best_params": "neuron_best_model"}
