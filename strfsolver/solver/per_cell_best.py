"""The ``"per-cell-best"`` solver: train jointly, keep each neuron's own best readout.

A population fit restores the state of one epoch, the best on average; but
neurons peak at different epochs (a strongly driven neuron early, a weak one
late, or it starts to overfit). This solver trains exactly as
``"population"`` (same steps, same early stopping on the mean monitored
value) and, in addition, keeps for every neuron a snapshot of *its own*
parameters at the epoch where *its own* monitored value was best (a
:py:class:`~strfsolver.solver.neurons.NeuronTracker` in ``"snapshot"``
mode). At the end it restores the globally best state and overlays each
neuron's snapshot on it.

Which parameters are a neuron's own. A tensor belongs to the neurons when it
has a neuron axis: the model is rebuilt with ``n_neurons=1``
(:py:func:`~strfsolver.solver.neuron_stack.single_neuron_replica`) and every
parameter or buffer whose shape differs from the one-neuron model's in
exactly one axis, of size N there and 1 in the replica, has that axis as its
neuron axis (:py:func:`~strfsolver.solver.neuron_stack.neuron_axes`): e.g.
the STRFs ``(N, C, F, L)``, biases and activation parameters ``(N,)``, the
readout weights ``(N, H)`` of ``"nrf"``/``"cnn2d"``. Everything else (a
core, a prefilter) is shared and comes from the globally best epoch. For a
model that is not a :py:class:`~strfsolver.models.NeuralModel` (any
``nn.Module``), name the per-neuron tensors and their axes with
``neuron_parameters``: the number of neurons is then the model's
``n_neurons``, a deepSTRF-style ``model.O``, or else the size of the named
tensors' neuron axes (which must agree), and is checked against the training
data when the fit starts.

Guarantee. When no parameter is shared (``"linear"``, ``"ln"``), neuron n's
output depends on neuron n's slice only, so after the fit each neuron's
validation score is its best over all evaluated epochs, and never worse than
the global restore. With a shared core the overlaid readout was best *with
the core of its own epoch*; combined with the best core it is usually, not
always, at least as good: compare with ``solver.validation`` if it matters.
"""

from __future__ import annotations

import fnmatch
from typing import Dict, Optional

from literate_dataclasses import field

from strfsolver.utils.checks import short_repr
from strfsolver.solver._registry import register
from strfsolver.solver.base import _solver_dataclass
from strfsolver.solver.data_checks import declared_neurons
from strfsolver.solver.loop import EarlyStopping
from strfsolver.solver.neuron_stack import neuron_axes
from strfsolver.solver.neurons import NeuronTracker
from strfsolver.solver.population import PopulationSolver
from strfsolver.solver.state import NeuronTrainingState

__all__ = ["PerCellBestSolver"]


@register("per-cell-best")
@_solver_dataclass
class PerCellBestSolver(PopulationSolver):
    """Joint training; each neuron ends with its own parameters from its own best epoch.

    Training, early stopping (on the mean of ``monitor`` over neurons) and
    the restored global best state are those of ``"population"``. After
    every evaluated epoch each neuron whose own ``monitor`` value improved
    (same ``mode`` and ``min_delta`` rule) gets a new snapshot of its slice
    of the per-neuron tensors, taken with a mask (no loop over neurons). At
    the end of :py:meth:`fit` the snapshots are overlaid on the global best
    state; evaluated epochs' dicts hold ``n_improved`` (neurons whose own
    score improved).

    Args:
        (fields)

    Attributes: ``neuron_parameters_`` (the per-neuron tensors used,
    ``{state_dict name: neuron axis}``), ``n_neurons_`` (the number of
    neurons N), ``best_epochs_`` and ``best_scores_`` (``(N,)``: each
    neuron's best epoch and value), and
    those of :py:class:`~strfsolver.solver.Solver`.
    """

    state_class = NeuronTrainingState

    neuron_parameters: Optional[Dict[str, int]] = field(
        default=None,
        doc="``{name or glob pattern of the model's state_dict: neuron axis}`` of the per-neuron tensors; "
        "``None`` finds them by rebuilding the model with ``n_neurons=1`` (a NeuralModel is required then).",
    )

    def __post_init__(self):
        super().__post_init__()
        sessions = tuple(getattr(self.model, "sessions", ()) or ())
        if sessions:
            raise ValueError(f"'per-cell-best' fits the neurons of one recording, but this {type(self.model).__name__} has one "
                             f"readout per session {list(sessions)} (n_neurons={short_repr(self.model.n_neurons)}); fit it with "
                             "the 'multi-session' solver, or build the model with an integer n_neurons.")
        state = self.model.state_dict()
        if self.neuron_parameters is None:
            axes = neuron_axes(self.model)
            self.neuron_parameters_ = {name: axis for name, axis in axes.items() if axis is not None and name in state}
            self.n_neurons_ = int(self.model.n_neurons)
            return
        if not isinstance(self.neuron_parameters, dict):
            raise ValueError(f"neuron_parameters must be a dict {{name or pattern: neuron axis}} or None, got {short_repr(self.neuron_parameters)}.")
        declared = declared_neurons(self.model)
        resolved, sizes = {}, {}
        for pattern, axis in self.neuron_parameters.items():
            names = [name for name in state if fnmatch.fnmatchcase(name, pattern)]
            if not names:
                raise ValueError(f"neuron_parameters names {short_repr(pattern)}, which matches none of the model's tensors {sorted(state)}.")
            for name in names:
                shape = tuple(state[name].shape)
                valid = not isinstance(axis, bool) and isinstance(axis, int) and -len(shape) <= axis < len(shape)
                if not valid or (declared is not None and shape[axis] != declared):
                    expected = f"an axis of size N = {declared}" if declared is not None else "an axis of that tensor"
                    raise ValueError(f"neuron_parameters gives axis {short_repr(axis)} for {short_repr(name)} of shape {shape}; expected {expected}.")
                resolved[name], sizes[name] = axis % len(shape), shape[axis]
        if len(set(sizes.values())) > 1:
            listed = ", ".join(f"{short_repr(name)}: {size}" for name, size in sizes.items())
            raise ValueError(f"the neuron_parameters tensors disagree on the number of neurons (the size of their neuron axis): {listed}; "
                             "every per-neuron tensor must hold one slice per neuron along its axis.")
        if declared is None and not sizes:
            raise ValueError(f"neuron_parameters names no tensor and {type(self.model).__name__} declares no n_neurons (or O); "
                             "name the per-neuron tensors, {name or pattern: neuron axis}.")
        #: the neurons N: the model's declared count, or that of its per-neuron tensors (checked against the data at fit start)
        self.n_neurons_: int = declared if declared is not None else next(iter(sizes.values()))
        self.neuron_parameters_: Dict[str, int] = resolved

    def _tracker(self, stopping: EarlyStopping) -> NeuronTracker:
        return NeuronTracker("snapshot", stopping.improves_each, None, self.neuron_parameters_)
