"""One parameter update from a forward function: the body of :py:meth:`Solver.step`.

:py:func:`gradient_update` takes a ``forward()`` that returns the prediction,
the loss parts and the penalty, back-propagates their sum, clips, and lets the
optimizer update. An optimizer whose ``step`` needs a closure
(``torch.optim.LBFGS``, a line search) gets one that calls ``forward`` again;
the first evaluation serves as its first closure call, so none is wasted.

A non-finite loss, a non-finite gradient under a finite loss, an update that
overflows, or (closure optimizers) a line search that leaves a non-finite
parameter never reaches the parameters: the update is skipped or undone and
reported as a non-finite ``"loss"``, which the fit loop turns into a
:py:class:`~strfsolver.solver.TrainingDivergedError`.

LBFGS is a full-batch method: give it a loader whose one batch holds every
training stimulus (``make_loader(train, batch_size=len(train))``).
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from strfsolver.utils.checks import all_finite
from strfsolver.solver.penalties import StepPredictions

__all__ = ["needs_closure", "check_optimizer_parameters", "loss_parts", "total_penalty", "gradient_update"]

#: what ``forward()`` returns: prediction, loss parts (see :py:func:`loss_parts`), penalty or None
Forward = Callable[[], Tuple[Tensor, Dict[str, Tensor], Optional[Tensor]]]


def needs_closure(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer.step`` has a ``closure`` argument without a default (``LBFGS``)."""
    try:
        parameter = inspect.signature(optimizer.step).parameters.get("closure")
    except (TypeError, ValueError):
        return False
    return parameter is not None and parameter.default is inspect.Parameter.empty


def check_optimizer_parameters(optimizer: torch.optim.Optimizer, parameters: Iterable[nn.Parameter]) -> None:
    """Refuse an optimizer that updates tensors other than ``parameters`` (the solver's trainable ones).

    Raises:
        ValueError: naming how many tensors it updates that are not the model's.
    """
    own = {id(p) for p in parameters}
    foreign = sum(1 for group in optimizer.param_groups for p in group["params"] if id(p) not in own)
    if foreign:
        raise ValueError(
            f"the optimizer updates {foreign} tensor(s) that are not the model's trainable parameters, so "
            "training would leave the model unchanged; build it on solver.model.parameters() (or pass a "
            "factory params -> optimizer)."
        )


def loss_parts(value: Union[Tensor, Dict[str, Tensor]]) -> Dict[str, Tensor]:
    """What a ``_loss`` hook returned, as a dict with at least ``"loss"``, a scalar tensor.

    Raises:
        ValueError: when the loss is not a scalar (a criterion with ``reduction="none"``).
    """
    parts = dict(value) if isinstance(value, dict) else {"loss": value}
    loss = parts.get("loss")
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        got = f"a tensor of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(f"the loss (the criterion, or a _loss hook) must be a scalar tensor to back-propagate, got {got}; "
                         "reduce it over neurons and bins (e.g. reduction='mean').")
    return parts


def total_penalty(penalties: List[Any], model: nn.Module, dtype: torch.dtype, device: torch.device,
                  predictions: Optional[StepPredictions] = None) -> Optional[Tensor]:
    """The sum of every penalty of ``model`` as a scalar tensor; ``None`` without penalties.

    A penalty with ``sees_predictions`` (:py:class:`~strfsolver.solver.penalties.PredictionPenalty`)
    is called as ``penalty(model, predictions)``, every other one as ``penalty(model)``.
    """
    if not penalties:
        return None
    terms = [penalty(model, predictions) if getattr(penalty, "sees_predictions", False) else penalty(model) for penalty in penalties]
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return torch.as_tensor(total, dtype=dtype, device=device)


def _overflow(optimizer: torch.optim.Optimizer, closure: Optional[Callable[[], Tensor]] = None) -> Optional[str]:
    """Run ``optimizer.step``; the cause of divergence when its update overflowed, else ``None``."""
    try:
        optimizer.step() if closure is None else optimizer.step(closure)
    except RuntimeError as error:
        # e.g. lr=1e38: Adam's step size lr / (1 - beta1) is beyond float32 and torch refuses it
        if "overflow" not in str(error):
            raise
        return f"the optimizer's update overflowed ({error}; lr={optimizer.param_groups[0]['lr']:g})"
    return None


def gradient_update(
    optimizer: torch.optim.Optimizer,
    forward: Forward,
    parameters: Callable[[], Iterable[nn.Parameter]],
    clip: Callable[[], None],
) -> Dict[str, Any]:
    """Evaluate ``forward``, back-propagate loss + penalty, ``clip`` and update.

    Args:
        optimizer: Updates ``parameters()``.
        forward: Zero-argument function giving ``(pred, parts, penalty)``.
        parameters: The trainable parameters (checked for finite gradients).
        clip: Clips the gradients in place.

    Returns:
        ``{"loss", "data_loss", "penalty"}`` as floats, ``"pred"`` (detached),
        ``"neuron_loss"`` when the parts have it, and ``"diverged"`` (a cause)
        when the update overflowed.
    """
    closure_optimizer = needs_closure(optimizer)

    def evaluate() -> Tuple[Tensor, Dict[str, Tensor], Optional[Tensor], Tensor]:
        optimizer.zero_grad(set_to_none=True)
        pred, parts, penalty = forward()
        return (parts["loss"] if penalty is None else parts["loss"] + penalty), parts, penalty, pred

    loss, parts, penalty, pred = evaluate()
    numbers = [loss, parts.get("data_loss", parts["loss"])] + ([] if penalty is None else [penalty])
    # one host sync per step for all the reported numbers
    values = torch.stack([p.detach().double().reshape(()) for p in numbers]).tolist()
    cause = None
    if math.isfinite(values[0]):
        loss.backward()
        clip()
        params = list(parameters())
        # a NaN gradient under a finite loss must not reach the parameters (nor a checkpoint)
        if not all_finite([p.grad for p in params if p.grad is not None]):
            values[0] = math.nan
        elif not closure_optimizer:
            cause = _overflow(optimizer)
        else:
            first = [loss.detach()]

            def closure() -> Tensor:
                if first:  # the gradients of this very point are already in place
                    return first.pop()
                again = evaluate()[0]
                again.backward()
                clip()
                return again.detach()

            before = [p.detach().clone() for p in params]
            cause = _overflow(optimizer, closure)
            if not all_finite(params):
                with torch.no_grad():
                    for p, saved in zip(params, before):
                        p.copy_(saved)
                values[0] = math.nan
    out = {"loss": values[0], "data_loss": values[1], "penalty": values[2] if penalty is not None else 0.0, "pred": pred.detach()}
    if cause is not None:
        out["loss"], out["diverged"] = math.inf, cause
    if "neuron_loss" in parts:
        out["neuron_loss"] = parts["neuron_loss"].detach()
    return out
