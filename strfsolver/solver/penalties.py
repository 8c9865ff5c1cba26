"""Penalties: terms added to the training loss to regularize a model.

Each penalty is a callable ``penalty(model) -> scalar tensor`` equal to
``weight * value(model)``; :py:meth:`strfsolver.solver.Solver.step` adds the
sum of the solver's penalties to the data loss before the backward pass.
Every value of a parameter penalty is an exact, documented sum (no hidden
factor of 1/2, no averaging), so a weight means the same thing for every
model size.

A penalty that judges what the model *predicts* rather than its parameters
says so with the class attribute ``sees_predictions = True``
(:py:class:`PredictionPenalty`): the solver then calls it as
``penalty(model, predictions)`` at every step, with the batch's
:py:class:`StepPredictions` (the prediction with its graph, which bins were
recorded, the step index). Penalties and plain callables without the
attribute keep being called with the model alone.

Registered by name (``penalties.init("l2", weight=1e-3)``):

=================  ================================================================
``"l2"``           ``sum_p sum(p ** 2)`` over the selected parameters (weight decay
                   in the loss, on the parameters you choose)
``"l2-init"``      ``sum_p sum((p - p_0) ** 2)``: pull towards the values ``p_0``
                   the parameters had when :py:meth:`Penalty.setup` ran (start of fit)
``"l1-strf"``      ``sum |k|`` over the STRF kernels ``k``: sparse STRFs
``"smooth-strf"``  ``sum (diff_F^d k) ** 2 + sum (diff_L^d k) ** 2``: squared
                   ``d``-th differences along frequency and lag; smooth STRFs
``"activity"``     flyvis's activity penalty, on the predictions: the mean over
                   (stimulus, neuron) of ``(below * relu(b - m)) ** 2 +
                   (above * relu(m - b)) ** 2``, ``m`` each one's mean prediction
                   after its transient and ``b`` the ``baseline``
=================  ================================================================

Parameters are selected by their name in ``model.named_parameters()`` with
glob patterns (``include``, ``exclude``). STRF kernels are
``model.strf()`` (``(N, C, F, L)``) when the model has that method and no
pattern is given, otherwise the selected parameters, read with frequency and
lag as their last two axes.

A penalty's weight can follow a schedule: use its :py:attr:`Penalty.name` as
the schedule's target; ``"<name>.<field>"`` targets another numeric field
(``"activity.baseline"``, ``"activity.above_weight"``).

Example:

    >>> import torch
    >>> from strfsolver.solver import penalties
    >>> model = torch.nn.Linear(2, 1, bias=False)
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.tensor([[1.0, -2.0]]))
    >>> penalties.init("l2", weight=0.5)(model)
    tensor(2.5000, grad_fn=<MulBackward0>)
    >>> penalties.init("l1-strf", weight=1.0, include=("weight",))(model)
    tensor(3., grad_fn=<MulBackward0>)
"""

from __future__ import annotations

import abc
import fnmatch
import math
import numbers
import sys
from typing import ClassVar, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from literate_dataclasses import dataclass, field
from torch import Tensor, nn

from strfsolver.utils.checks import check_count, check_real, short_repr
from strfsolver import registry
from strfsolver.solver.batches import recorded_bins

registry.add_helper_functions(sys.modules[__name__])

__all__ = ["Penalty", "PredictionPenalty", "StepPredictions", "L2Penalty", "L2InitPenalty", "L1StrfPenalty",
           "SmoothStrfPenalty", "ActivityPenalty"]

_WEIGHT_DOC = "Factor of the penalty in the loss (>= 0); a schedule can change it during training."
_INCLUDE_DOC = "Glob patterns on parameter names (``model.named_parameters()``); a parameter is selected if it matches any."
_EXCLUDE_DOC = "Glob patterns of parameter names left out even if included."


def _patterns(value, name: str, kind: str) -> Tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    value = tuple(value)
    if not all(isinstance(p, str) for p in value):
        raise ValueError(f"{kind} penalty: {name} must be glob patterns (strings), got {short_repr(value)}.")
    return value


class Penalty(abc.ABC):
    """Base of every penalty: ``penalty(model) = weight * value(model)``.

    Subclasses are literate dataclasses with at least ``weight`` and ``name``
    fields, and implement :py:meth:`value`. Stateful penalties (such as
    ``"l2-init"``) also implement :py:meth:`setup`, :py:meth:`state_dict`
    and :py:meth:`load_state_dict` so that resumed runs see the same state.
    """

    weight: float
    name: str
    #: Whether the solver calls this penalty with the step's predictions, ``penalty(model, predictions)``.
    sees_predictions: ClassVar[bool] = False

    def _check_common(self) -> None:
        kind = type(self).__name__
        if isinstance(self.weight, bool) or not isinstance(self.weight, numbers.Real) or not math.isfinite(self.weight) or self.weight < 0:
            raise ValueError(f"{kind}: weight must be a finite number >= 0, got {short_repr(self.weight)}.")
        self.weight = float(self.weight)
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"{kind}: name must be a non-empty string, got {short_repr(self.name)}.")

    @abc.abstractmethod
    def value(self, model: nn.Module) -> Tensor:
        """The unweighted penalty, a differentiable scalar tensor."""

    def __call__(self, model: nn.Module) -> Tensor:
        return self.weight * self.value(model)

    def setup(self, model: nn.Module) -> None:
        """Called by the solver at the start of a fit (not on resume). No-op by default."""

    def state_dict(self) -> dict:
        """Whatever must be saved with a checkpoint (nothing by default)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :py:meth:`state_dict` returned."""


class _SelectsParameters:
    include: Sequence[str]
    exclude: Sequence[str]

    def _check_patterns(self, kind: str) -> None:
        self.include = _patterns(self.include, "include", kind)
        self.exclude = _patterns(self.exclude, "exclude", kind)

    def selected(self, model: nn.Module) -> List[Tuple[str, nn.Parameter]]:
        """The ``(name, parameter)`` pairs this penalty applies to.

        Raises:
            ValueError: if no parameter matches, listing the model's parameter names.
        """
        # a model with one readout per session offers only the active session's (and what they share)
        in_use = getattr(model, "named_parameters_in_use", model.named_parameters)
        chosen = [
            (name, p)
            for name, p in in_use()
            if any(fnmatch.fnmatchcase(name, pat) for pat in self.include)
            and not any(fnmatch.fnmatchcase(name, pat) for pat in self.exclude)
        ]
        if not chosen:
            names = [name for name, _ in model.named_parameters()]
            raise ValueError(
                f"{type(self).__name__} {short_repr(getattr(self, 'name', ''))}: no parameter matches include="
                f"{list(self.include)} and exclude={list(self.exclude)}; the model's parameters are {names}."
            )
        return chosen


@register("l2")
@dataclass
class L2Penalty(_SelectsParameters, Penalty):
    """L2 weight decay in the loss: ``weight * sum_p sum(p ** 2)``.

    Unlike AdamW's decoupled ``weight_decay``, which shrinks every parameter,
    this one acts on the parameters you select and goes through the gradient.

    Args:
        (fields)
    """

    weight: float = field(default=1e-4, doc=_WEIGHT_DOC)
    include: Sequence[str] = field(default=("*",), doc=_INCLUDE_DOC)
    exclude: Sequence[str] = field(default=("*bias*",), doc=_EXCLUDE_DOC)
    name: str = field(default="l2", doc="Name of the penalty, e.g. a schedule's target.")

    def __post_init__(self):
        self._check_common()
        self._check_patterns("l2")

    def value(self, model: nn.Module) -> Tensor:
        return sum(p.square().sum() for _, p in self.selected(model))


@register("l2-init")
@dataclass
class L2InitPenalty(_SelectsParameters, Penalty):
    """Pull towards the initial values: ``weight * sum_p sum((p - p_0) ** 2)``.

    ``p_0`` is a copy of each selected parameter taken by :py:meth:`setup`
    when a fit starts (or given through :py:meth:`load_state_dict`), so a
    model fine-tuned from pretrained weights stays close to them.

    Args:
        (fields)
    """

    weight: float = field(default=1e-3, doc=_WEIGHT_DOC)
    include: Sequence[str] = field(default=("*",), doc=_INCLUDE_DOC)
    exclude: Sequence[str] = field(default=(), doc=_EXCLUDE_DOC)
    name: str = field(default="l2-init", doc="Name of the penalty, e.g. a schedule's target.")

    def __post_init__(self):
        self._check_common()
        self._check_patterns("l2-init")
        self.reference: Dict[str, Tensor] = {}

    def setup(self, model: nn.Module) -> None:
        self.reference = {name: p.detach().clone() for name, p in self.selected(model)}

    def value(self, model: nn.Module) -> Tensor:
        if not self.reference:
            # first call outside a fit: the current values are the reference
            self.setup(model)
        total = 0.0
        for name, p in self.selected(model):
            if name not in self.reference:
                raise ValueError(
                    f"l2-init penalty {short_repr(self.name)}: parameter {short_repr(name)} has no initial value; "
                    f"the reference holds {sorted(self.reference)}. Call setup(model) again."
                )
            ref = self.reference[name]
            if ref.shape != p.shape:
                raise ValueError(
                    f"l2-init penalty {short_repr(self.name)}: parameter {short_repr(name)} has shape {tuple(p.shape)} "
                    f"but its initial value has shape {tuple(ref.shape)}."
                )
            total = total + (p - ref.to(p.device)).square().sum()
        return total

    def state_dict(self) -> dict:
        return {"reference": dict(self.reference)}

    def load_state_dict(self, state: dict) -> None:
        self.reference = {k: v.detach().clone() for k, v in state.get("reference", {}).items()}


class _StrfKernels(_SelectsParameters):
    def kernels(self, model: nn.Module) -> List[Tensor]:
        """STRF kernels with frequency and lag as the last two axes."""
        if self.include is None:
            strf = getattr(model, "strf", None)
            if not callable(strf):
                names = [name for name, _ in model.named_parameters()]
                raise ValueError(
                    f"{type(self).__name__} {short_repr(self.name)}: the model ({type(model).__name__}) has no strf() "
                    f"method; select its STRF parameters with include=(...) among {names}."
                )
            kernel = strf()
            # the STRF's shape in stimulus units, its size made independent of them: smoothness is
            # judged on what the user reads, and a penalty weight means the same at any stimulus scale
            scale = getattr(getattr(model, "standardize", None), "scale", None)
            if isinstance(scale, torch.Tensor):
                kernel = kernel * scale.detach().mean().to(kernel)
            if not kernel.requires_grad and any(p.requires_grad for p in model.parameters()):
                raise ValueError(
                    f"{type(self).__name__} {short_repr(self.name)}: {type(model).__name__}.strf() returns a tensor "
                    "without gradient, so the penalty could not train the model; select its STRF "
                    "parameters with include=(...) instead."
                )
            return [kernel]
        chosen = self.selected(model)
        for name, p in chosen:
            if p.ndim < 2:
                raise ValueError(
                    f"{type(self).__name__} {short_repr(self.name)}: parameter {short_repr(name)} has shape {tuple(p.shape)}; "
                    "expected at least 2 axes (..., frequency, lag)."
                )
        return [p for _, p in chosen]


@register("l1-strf")
@dataclass
class L1StrfPenalty(_StrfKernels, Penalty):
    """Sparse STRFs: ``weight * sum |k|`` over the STRF kernels.

    Args:
        (fields)
    """

    weight: float = field(default=1e-4, doc=_WEIGHT_DOC)
    include: Optional[Sequence[str]] = field(
        default=None, doc="Glob patterns of the STRF parameters; ``None`` uses ``model.strf()``."
    )
    exclude: Sequence[str] = field(default=(), doc=_EXCLUDE_DOC)
    name: str = field(default="l1-strf", doc="Name of the penalty, e.g. a schedule's target.")

    def __post_init__(self):
        self._check_common()
        if self.include is not None:
            self._check_patterns("l1-strf")

    def value(self, model: nn.Module) -> Tensor:
        return sum(k.abs().sum() for k in self.kernels(model))


@register("smooth-strf")
@dataclass
class SmoothStrfPenalty(_StrfKernels, Penalty):
    """Smooth STRFs: ``weight * (sum (D_F k) ** 2 + sum (D_L k) ** 2)``.

    ``D_F`` and ``D_L`` are ``order``-th finite differences along the
    frequency and lag axes (``torch.diff(k, n=order, dim=-2)`` and
    ``dim=-1``). ``order=1`` penalizes steps, ``order=2`` curvature (a
    discrete Laplacian prior).

    Args:
        (fields)
    """

    weight: float = field(default=1e-3, doc=_WEIGHT_DOC)
    order: int = field(default=1, doc="Order of the differences (>= 1).")
    axes: Sequence[str] = field(default=("freq", "lag"), doc="Axes to smooth along: any of ``\"freq\"`` and ``\"lag\"``.")
    include: Optional[Sequence[str]] = field(
        default=None, doc="Glob patterns of the STRF parameters; ``None`` uses ``model.strf()``."
    )
    exclude: Sequence[str] = field(default=(), doc=_EXCLUDE_DOC)
    name: str = field(default="smooth-strf", doc="Name of the penalty, e.g. a schedule's target.")

    def __post_init__(self):
        self._check_common()
        if isinstance(self.order, bool) or not isinstance(self.order, numbers.Integral) or self.order < 1:
            raise ValueError(f"smooth-strf penalty: order must be an integer >= 1, got {short_repr(self.order)}.")
        self.axes = tuple(_patterns(self.axes, "axes", "smooth-strf"))
        if not self.axes or any(a not in ("freq", "lag") for a in self.axes):
            raise ValueError(f"smooth-strf penalty: axes must be among ('freq', 'lag'), got {short_repr(self.axes)}.")
        if self.include is not None:
            self._check_patterns("smooth-strf")

    def value(self, model: nn.Module) -> Tensor:
        dims = {"freq": -2, "lag": -1}
        total = 0.0
        for k in self.kernels(model):
            for axis in self.axes:
                if k.shape[dims[axis]] > self.order:
                    total = total + torch.diff(k, n=self.order, dim=dims[axis]).square().sum()
        if not torch.is_tensor(total):
            total = torch.zeros((), device=k.device)
        return total


class StepPredictions(NamedTuple):
    """What a :py:class:`PredictionPenalty` receives with the model at each training step."""

    #: ``(B, N, 1, T)`` the batch's prediction, with its graph (the penalty's gradient reaches the model)
    pred: Tensor
    #: ``(B, N, R, T)`` the batch's responses (NaN where nothing was recorded), or their PSTH ``(B, N, 1, T)``
    responses: Tensor
    #: gradient steps done before this one (the solver's ``training_state_.step``)
    step: int

    @property
    def recorded(self) -> Tensor:
        """``(B, N, 1, T)`` bool: the bins where the batch has a response in some repeat (padding excluded)."""
        return recorded_bins(self.responses)


class PredictionPenalty(Penalty):
    """Base of the penalties on the predictions: ``penalty(model, predictions) = weight * value(model, predictions)``.

    The solver calls them at every step with the batch's :py:class:`StepPredictions`.
    """

    sees_predictions: ClassVar[bool] = True

    @abc.abstractmethod
    def value(self, model: nn.Module, predictions: StepPredictions) -> Tensor:
        """The unweighted penalty of one batch's predictions, a differentiable scalar tensor."""

    def __call__(self, model: nn.Module, predictions: Optional[StepPredictions] = None) -> Tensor:
        if not isinstance(predictions, StepPredictions):
            raise ValueError(
                f"{type(self).__name__} {short_repr(self.name)} penalizes predictions: call it as penalty(model, "
                f"StepPredictions(pred, responses, step)) (a solver does at every step), got {type(predictions).__name__}."
            )
        return self.weight * self.value(model, predictions)


@register("activity")
@dataclass
class ActivityPenalty(PredictionPenalty):
    """flyvis's activity penalty: keep each neuron's mean prediction near a baseline, asymmetrically.

    For every (stimulus, neuron) pair of the batch, ``m`` is the mean
    prediction over its recorded bins after the first ``transient`` fraction
    of them (the onset response, which flyvis leaves out too). The value is
    the mean over pairs of ``(below_weight * relu(baseline - m)) ** 2 +
    (above_weight * relu(m - baseline)) ** 2``: a silent neuron is pushed up
    by ``below_weight``, an over-active one down by ``above_weight``
    (flyvis's defaults: 1.0 and 0.1). From step ``stop_iter`` on (the
    solver's gradient steps, flyvis's iterations) the penalty is off.

    Args:
        (fields)
    """

    baseline: float = field(doc="The activity level ``b`` the mean predictions are pulled towards, in the units of the predictions.")
    weight: float = field(default=0.1, doc=_WEIGHT_DOC)
    below_weight: float = field(default=1.0, doc="Factor of a mean below the baseline (>= 0), before squaring.")
    above_weight: float = field(default=0.1, doc="Factor of a mean above the baseline (>= 0), before squaring.")
    stop_iter: Optional[int] = field(default=None, doc="The step from which the penalty is off (>= 0); ``None``: never.")
    transient: float = field(default=0.25, doc="Fraction of each stimulus' recorded bins left out at its start (in [0, 1)).")
    name: str = field(default="activity", doc="Name of the penalty, e.g. a schedule's target.")

    def __post_init__(self):
        self._check_common()
        where = "activity penalty: "
        self.baseline = check_real(self.baseline, "baseline", where=where)
        self.below_weight = check_real(self.below_weight, "below_weight", 0.0, where=where)
        self.above_weight = check_real(self.above_weight, "above_weight", 0.0, where=where)
        self.stop_iter = check_count(self.stop_iter, "stop_iter", 0, allow_none=True, where=where)
        self.transient = check_real(self.transient, "transient", 0.0, 1.0, high_open=True, where=where)

    def mean_activity(self, predictions: StepPredictions) -> Tuple[Tensor, Tensor]:
        """``(B, N)`` each pair's mean prediction after its transient, and ``(B, N)`` whether it has a bin to average."""
        pred, recorded = predictions.pred, predictions.recorded
        if pred.shape != recorded.shape:
            raise ValueError(f"activity penalty: the prediction has shape {tuple(pred.shape)}, expected (B, N, 1, T) "
                             f"= {tuple(recorded.shape)} to match the responses.")
        # the rank of each recorded bin among its pair's recorded bins, so holes in valid_mask are skipped, not counted
        rank = recorded.cumsum(dim=-1)
        count = recorded.sum(dim=-1, keepdim=True)
        kept = recorded & (rank > torch.floor(count * self.transient))
        n_kept = kept.sum(dim=(-2, -1))
        # a pair without a kept bin divides 0 by 1: no NaN, whose gradient would poison the step
        mean = torch.where(kept, pred, torch.zeros((), dtype=pred.dtype, device=pred.device)).sum(dim=(-2, -1)) / n_kept.clamp(min=1)
        return mean, n_kept > 0

    def value(self, model: nn.Module, predictions: StepPredictions) -> Tensor:
        pred = predictions.pred
        if self.stop_iter is not None and predictions.step >= self.stop_iter:
            return torch.zeros((), dtype=pred.dtype, device=pred.device)
        mean, has_bins = self.mean_activity(predictions)
        below = torch.relu(self.baseline - mean) * self.below_weight
        above = torch.relu(mean - self.baseline) * self.above_weight
        per_pair = (below.square() + above.square()) * has_bins
        return per_pair.sum() / has_bins.sum().clamp(min=1)


registry.add_docstring(sys.modules[__name__])
