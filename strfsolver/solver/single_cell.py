"""The ``"single-cell"`` solver: one independent model per neuron, all trained at once.

Fitting each neuron alone is the classic way to estimate STRFs: neuron n's
fit never sees neuron m's data, has its own optimizer state, stops on its own
validation score and keeps its own best state. Done with a Python loop that
is N fits, each too small to keep a CPU or GPU busy. This solver trains the N
fits together and gives what the loop gives: it is the
:py:class:`~strfsolver.solver.neuron_stack.NeuronStack` (N one-neuron copies
of the model run as one module), a per-neuron loss and a
:py:class:`~strfsolver.solver.neurons.NeuronTracker` in ``"freeze"`` mode.

Why it equals N separate fits:

- the training loss is the *sum* of the per-neuron losses, so the gradient
  of neuron n's entries is exactly the gradient of neuron n's own loss;
- elementwise optimizers (``Adam``, ``AdamW``, ``SGD``, ``RMSprop``, ...)
  applied to stacked tensors are N independent optimizers (same
  hyperparameters); an optimizer that couples elements (``LBFGS``) is not;
- ``grad_clip`` clips each neuron's gradient norm separately;
- penalties of :py:mod:`strfsolver.solver.penalties` are sums over
  parameter entries, so on the stack they add up the per-neuron penalties;
- every neuron has its own monitored score, patience counter and best
  snapshot; they are updated with masks (``torch.where``), not a loop.

When a neuron's patience runs out it is *frozen*: its loss leaves the sum
(no gradient), its parameters are set to its best snapshot and held there
after every optimizer step, so its validation score no longer changes.
Training stops when every neuron is frozen (or at ``max_epochs``); each
neuron then gets its best snapshot. Evaluated epochs' dicts gain
``n_active`` (neurons still training after the epoch), ``n_improved`` and
``n_stopped`` (neurons frozen at that epoch);
:py:attr:`SingleCellSolver.stopped_epochs_` and
:py:attr:`SingleCellSolver.best_epochs_` give them per neuron.

The result. ``solver.model`` is the :py:class:`NeuronStack`: a module that
maps ``(B, F, T)`` stimuli to ``(B, N, 1, T)`` like any population model, so
:py:meth:`~strfsolver.solver.Solver.transform`, ``validation``, checkpoints
and resume work as for the population solver; ``stack.neuron_model(n)`` is
neuron n's fitted model as a standalone one-neuron model of the original
class (with ``save_pretrained``). When the model has no shared parameter
(``"linear"``, ``"ln"``: every tensor has a neuron axis) :py:meth:`fit`
also writes the per-neuron results back into the population model that was
passed in, in place, so ``model`` afterwards is the fitted population model.
A model with a shared core (``"nrf"``, ``"cnn2d"``, ``"statenet"``,
``"transformer"``) ends with N different cores, which one population model
cannot hold: it is left untouched and the stack is the result.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import torch
from torch import Tensor, nn

from strfsolver.solver._registry import register
from strfsolver.solver.base import Solver, _solver_dataclass
from strfsolver.solver.fit_loop import ACTIVE_NEURONS
from strfsolver.solver.loop import EarlyStopping
from strfsolver.solver.neuron_stack import FunctionalRNN, NeuronStack, neuron_axes, single_neuron_replica
from strfsolver.solver.neurons import NeuronTracker, _along, bin_counts, neuron_losses
from strfsolver.solver.state import NeuronTrainingState

__all__ = ["SingleCellSolver", "NeuronStack", "FunctionalRNN", "single_neuron_replica", "neuron_axes"]


@register("single-cell")
@_solver_dataclass
class SingleCellSolver(Solver):
    """Fit every neuron with its own model, optimizer state, early stopping and best state, all at once.

    ``model`` is a population :py:class:`~strfsolver.models.NeuralModel` of N
    neurons; the solver replaces it by a :py:class:`NeuronStack` of N
    one-neuron copies (``solver.model``) that starts from the population
    model's values, and trains the N copies together as N independent fits
    (see the module documentation for why the result is the same). The
    options are those of every solver and apply to each neuron: ``patience``
    counts each neuron's own evaluated epochs without improvement of its own
    ``monitor`` value; ``grad_clip`` bounds each neuron's gradient norm.
    ``optimizer`` must be ``None`` or a factory ``params -> optimizer`` of an
    elementwise optimizer (the stack's parameters are new tensors).
    Schedules act on all neurons alike (a plateau scheduler sees the mean
    monitored value).

    After :py:meth:`fit` every neuron holds its best snapshot; when the model
    has no shared parameter the results are also written into the model
    that was passed in (:py:attr:`population_model`).

    Args:
        (fields)

    Attributes: ``population_model`` (the model given), ``stopped_epochs_``,
    ``best_epochs_``, ``best_scores_`` (per neuron, ``(N,)``), and those of
    :py:class:`~strfsolver.solver.Solver` (``best_epoch_`` / ``best_score_``
    follow the mean monitored value over neurons).
    """

    state_class = NeuronTrainingState

    def __post_init__(self):
        if isinstance(self.model, NeuronStack):
            self.population_model = None
        elif isinstance(self.model, nn.Module):
            self.population_model = self.model
            self.model = NeuronStack(self.model)
        super().__post_init__()
        if isinstance(self.criterion, nn.Module) and any(p.requires_grad for p in self.criterion.parameters()):
            raise ValueError(
                "single-cell needs a criterion without trainable parameters: they would be shared by the neurons' fits."
            )
        if isinstance(self.optimizer, torch.optim.Optimizer):
            own = {id(p) for p in self.model.parameters()}
            if any(id(p) not in own for group in self.optimizer.param_groups for p in group["params"]):
                raise ValueError(
                    "single-cell trains new stacked copies of the model's parameters, so an optimizer built on the "
                    "model cannot update them; pass a factory instead, e.g. optimizer=lambda params: "
                    "torch.optim.Adam(params, lr=1e-2)."
                )

    def _inference(self, batch: Dict[str, Any]) -> Tensor:
        return self.model(batch["stims"])

    def _loss(self, pred: Tensor, batch: Dict[str, Any]) -> Dict[str, Tensor]:
        """The sum over active neurons of each neuron's own criterion; reports their mean.

        Summing (not averaging) makes each neuron's gradient that of its own
        fit. A neuron with valid bins and a non-finite loss makes the sum
        non-finite, which :py:meth:`fit` reports as a divergence.
        """
        responses = batch["responses"]
        per_neuron = neuron_losses(self.criterion, pred, responses)
        has_data = bin_counts(responses) > 0
        active = batch.get(ACTIVE_NEURONS)  # set by the fit loop: the neurons not yet frozen
        weight = has_data if active is None else has_data & active.to(has_data.device)
        total = torch.where(weight, per_neuron, 0.0).sum()
        mean = torch.where(has_data, per_neuron.detach(), 0.0).sum() / has_data.sum().clamp(min=1)
        return {"loss": total, "data_loss": mean, "neuron_loss": per_neuron}

    @torch.no_grad()
    def _clip_gradients(self) -> None:
        """Clip each neuron's own gradient norm to ``grad_clip``."""
        if self.grad_clip is None:
            return
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        if not grads:
            return
        # every stacked tensor has the neuron axis first, also a shared scalar (shape (N,))
        norms = torch.stack([g.detach().reshape(g.shape[0], -1).double().square().sum(1) for g in grads]).sum(0).sqrt()
        # the coefficient of nn.utils.clip_grad_norm_, one per neuron
        scale = (self.grad_clip / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(_along(scale.to(g.dtype), g))

    def _tracker(self, stopping: EarlyStopping) -> NeuronTracker:
        # the neurons decide when the fit ends, not the mean score
        stopping.patience = None
        axes = {name: 0 for name in self.model.state_dict()}
        return NeuronTracker("freeze", stopping.improves_each, self.patience, axes)

    @property
    def stopped_epochs_(self) -> Optional[Tensor]:
        """``(N,)`` the epoch after which each neuron stopped (its patience ran out); a
        neuron that trained to the end has the last epoch. ``None`` before a fit."""
        stopped = self.training_state_.neuron_stopped_epoch
        if stopped is None:
            return None
        stopped = stopped.detach().cpu()
        return torch.where(stopped >= 0, stopped, len(self.log) - 1)

    def fit(self, loader, valid_loader=None, **kwargs) -> "SingleCellSolver":
        """As :py:meth:`Solver.fit`, each neuron stopping on its own; every
        neuron ends with its best snapshot. Evaluated epochs' dicts also hold
        ``n_active``, ``n_improved`` and ``n_stopped``. When the model has no
        shared parameter (or N = 1) the result is written into
        :py:attr:`population_model`."""
        super().fit(loader, valid_loader, **kwargs)
        if self.population_model is not None and not self.model.differing_shared():
            self.model.to_population(self.population_model)
        return self
