"""Optimizers that re-evaluate the loss: ``torch.optim.LBFGS`` and any whose ``step`` needs a closure.

A quasi-Newton or line-search optimizer evaluates the loss and its gradient
several times per update, so its ``step(closure)`` takes a function that
recomputes them. :py:meth:`strfsolver.solver.Solver.step` hands such an
optimizer one (:py:func:`closure_step`), built from the solver's own hooks
(``_inference``, ``_loss``, the penalties, ``_clip_gradients``), so every
solver works with it. Optimizers whose closure is optional (Adam, SGD, ...)
keep the ordinary path: their closure would compute the same thing once.

LBFGS is a full-batch method: give it a loader whose one batch holds every
training stimulus (``make_loader(train, batch_size=len(train))``); on
mini-batches its curvature estimates mix different problems. A convex STRF
fit (a ``"linear"`` model with the ``"mse"`` loss) then reaches the
least-squares solution in a few epochs.

The first evaluation is the reported loss and the divergence check, as in
an ordinary step; its gradients serve as the optimizer's first closure call,
so no evaluation is wasted. An update that leaves a non-finite parameter
(a line search gone wrong) is undone and reported as a NaN loss, which
:py:meth:`~strfsolver.solver.Solver.fit` turns into a
:py:class:`~strfsolver.solver.TrainingDivergedError`.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Dict

import torch

__all__ = ["needs_closure", "closure_step"]


def needs_closure(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer.step`` has a ``closure`` argument without a default (``LBFGS``)."""
    try:
        parameter = inspect.signature(optimizer.step).parameters.get("closure")
    except (TypeError, ValueError):
        return False
    return parameter is not None and parameter.default is inspect.Parameter.empty


def closure_step(solver: Any, batch: Dict[str, Any]) -> Dict[str, Any]:
    """One update of a closure optimizer on ``batch``; returns what :py:meth:`Solver.step` returns."""
    optimizer = solver._ensure_optimizer()
    solver.model.train()
    batch = solver._prepare(batch)

    def evaluate():
        optimizer.zero_grad(set_to_none=True)
        solver._begin_sequence()
        pred = solver._inference(batch)
        parts = solver._loss(pred, batch)
        parts = dict(parts) if isinstance(parts, dict) else {"loss": parts}
        penalty = solver._penalty()
        loss = parts["loss"] if penalty is None else parts["loss"] + penalty
        return loss, parts, penalty, pred

    loss, parts, penalty, pred = evaluate()
    reported = parts.get("data_loss", parts["loss"])
    numbers = [loss, reported] + ([] if penalty is None else [penalty])
    values = torch.stack([p.detach().double().reshape(()) for p in numbers]).tolist()
    if math.isfinite(values[0]):
        loss.backward()
        solver._clip_gradients()
        params = list(solver.parameters())
        grads = [p.grad for p in params if p.grad is not None]
        if grads and not bool(torch.stack([g.isfinite().all() for g in grads]).all()):
            values[0] = math.nan
        else:
            first = [loss.detach()]

            def closure():
                if first:
                    # the gradients of this very point are already in place
                    return first.pop()
                again, _, _, _ = evaluate()
                again.backward()
                solver._clip_gradients()
                return again.detach()

            before = [p.detach().clone() for p in params]
            optimizer.step(closure)
            if not bool(torch.stack([p.isfinite().all() for p in params]).all()):
                with torch.no_grad():
                    for p, saved in zip(params, before):
                        p.copy_(saved)
                values[0] = math.nan
    solver._after_update()
    out = {"loss": values[0], "data_loss": values[1], "penalty": values[2] if penalty is not None else 0.0, "pred": pred.detach()}
    if "neuron_loss" in parts:
        out["neuron_loss"] = parts["neuron_loss"].detach()
    return out
