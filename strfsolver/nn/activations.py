"""Output activations with one set of parameters per neuron.

Every activation here maps ``(B, N, ...)`` to the same shape, the neuron
axis being axis 1, and holds its parameters as ``(N,)`` vectors: neuron n's
output depends on neuron n's parameters only. Positive parameters (gains,
slopes) are stored through a softplus, so they stay positive without a clamp.

With ``non_negative=True`` (the default) the output is >= 0 everywhere, as a
firing rate must be (and as a Poisson loss requires); with ``False`` a free
per-neuron ``baseline`` is added, so the output may go negative.
``baseline=True`` with ``non_negative=True`` adds a learned baseline that
stays >= 0 (stored through a softplus): a spontaneous rate under a
non-negative output, as deepSTRF's parametric activations have it.

- :py:class:`ParametricSoftplus`: ``gain * softplus(slope * (x - threshold)) / slope``
  (``softplus(x)`` at initialisation; ``slope`` sets how sharp the knee is).
- :py:class:`ParametricSigmoid`: ``gain * sigmoid(slope * (x - threshold))``.
- :py:class:`DoubleExponential`: ``gain * exp(-exp(-slope * (x - threshold)))``,
  the Gompertz-shaped double exponential used for cortical output
  nonlinearities (e.g. Willmore et al. 2016; Rabinowitz et al. 2011).

:py:func:`make_activation` builds one from a name in :data:`ACTIVATIONS`.
"""

from __future__ import annotations

import math
from typing import Optional, Union

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn
from strfsolver.nn._fused_softplus import fused_softplus
from strfsolver.registry import Aliases
from strfsolver.utils._autograd import plain_autograd
from strfsolver.utils.checks import short_repr

__all__ = [
    "PerNeuronActivation",
    "ParametricSoftplus",
    "ParametricSigmoid",
    "DoubleExponential",
    "make_activation",
    "ACTIVATIONS",
    "ACTIVATION_ALIASES",
]


def _inverse_softplus(value: float) -> float:
    return value + math.log(-math.expm1(-value))


class PerNeuronActivation(nn.Module):
    """Base class: per-neuron ``gain``, ``slope``, ``threshold`` and optional ``baseline``.

    Args:
        n_neurons: Number of neurons ``N``.
        non_negative: Keep the output >= 0 (no baseline) or add a learnable
            per-neuron baseline (initialised at 0).
        gain: Initial gain (> 0).
        slope: Initial slope (> 0).
        threshold: Initial threshold.
        baseline: Learn a per-neuron baseline; ``None``: only when the output is
            signed (``non_negative=False``). With ``non_negative`` it is kept >= 0.
        baseline_init: Its initial value; default 0 for a signed output, 1e-3 for
            a non-negative one (which must start > 0).
    """

    def __init__(
        self,
        n_neurons: int,
        non_negative: bool = True,
        gain: float = 1.0,
        slope: float = 1.0,
        threshold: float = 0.0,
        baseline: Optional[bool] = None,
        baseline_init: Optional[float] = None,
    ):
        super().__init__()
        if isinstance(n_neurons, bool) or not isinstance(n_neurons, int) or n_neurons < 1:
            raise ValueError(f"n_neurons must be an integer >= 1, got {short_repr(n_neurons)}.")
        if not (gain > 0 and slope > 0):
            raise ValueError(f"gain and slope must be > 0, got gain={short_repr(gain)}, slope={short_repr(slope)}.")
        self.n_neurons, self.non_negative = n_neurons, bool(non_negative)
        self.raw_gain = nn.Parameter(torch.full((n_neurons,), _inverse_softplus(gain)))
        self.raw_slope = nn.Parameter(torch.full((n_neurons,), _inverse_softplus(slope)))
        self.threshold = nn.Parameter(torch.full((n_neurons,), float(threshold)))
        if baseline is None:
            baseline = not self.non_negative
        if not isinstance(baseline, bool):
            raise ValueError(f"baseline must be True, False or None, got {short_repr(baseline)}.")
        # a signed output's baseline is the parameter itself (``baseline``); a non-negative
        # one's goes through a softplus (``raw_baseline``), so it can never push the output below 0
        self.baseline = self.raw_baseline = None
        if baseline:
            start = (1e-3 if self.non_negative else 0.0) if baseline_init is None else float(baseline_init)
            if self.non_negative and not start > 0:
                raise ValueError(f"baseline_init must be > 0 for a non-negative output (its baseline is kept > 0), got {short_repr(baseline_init)}.")
            if self.non_negative:
                self.raw_baseline = nn.Parameter(torch.full((n_neurons,), _inverse_softplus(start)))
            else:
                self.baseline = nn.Parameter(torch.full((n_neurons,), start))
        elif baseline_init is not None:
            raise ValueError("baseline_init is given but there is no baseline; pass baseline=True.")

    @property
    def gain(self) -> Tensor:
        """``(N,)`` positive gains."""
        return nnf.softplus(self.raw_gain)

    @property
    def slope(self) -> Tensor:
        """``(N,)`` positive slopes."""
        return nnf.softplus(self.raw_slope)

    def baseline_values(self) -> Optional[Tensor]:
        """``(N,)`` baselines (>= 0 for a non-negative output), or ``None`` without one."""
        if self.raw_baseline is not None:
            return nnf.softplus(self.raw_baseline)
        return self.baseline

    def _per_neuron(self, value: Tensor, x: Tensor) -> Tensor:
        return value.view(1, -1, *([1] * (x.dim() - 2)))

    def _shape(self, z: Tensor, slope: Tensor) -> Tensor:
        raise NotImplementedError

    def _fused(self, x: Tensor, threshold: Tensor, slope: Tensor, gain: Tensor) -> Optional[Tensor]:
        """``gain * _shape(slope * (x - threshold), slope)`` computed with less memory, the same values
        and gradients; ``None``: no fused form here (the composed operations are used)."""
        return None

    def forward(self, x: Tensor) -> Tensor:
        """``(B, N, ...)`` -> ``(B, N, ...)``."""
        if x.dim() < 2 or x.shape[1] != self.n_neurons:
            raise ValueError(f"{type(self).__name__} expects (B, {self.n_neurons}, ...), got {tuple(x.shape)}.")
        slope = self._per_neuron(self.slope, x)
        threshold, gain = self._per_neuron(self.threshold, x), self._per_neuron(self.gain, x)
        y = self._fused(x, threshold, slope, gain)
        if y is None:
            z = slope * (x - threshold)
            y = gain * self._shape(z, slope)
        baseline = self.baseline_values()
        if baseline is not None:
            y = y + self._per_neuron(baseline, x)
        return y

    def extra_repr(self) -> str:
        return f"n_neurons={self.n_neurons}, non_negative={self.non_negative}, baseline={self.baseline_values() is not None}"


class ParametricSoftplus(PerNeuronActivation):
    """``gain * softplus(slope * (x - threshold)) / slope`` per neuron (+ baseline if signed).

    Dividing by the slope keeps the asymptotic gain at ``gain`` whatever the
    sharpness of the knee; at initialisation it is ``softplus(x)``.
    """

    def _shape(self, z: Tensor, slope: Tensor) -> Tensor:
        return nnf.softplus(z) / slope

    def _fused(self, x: Tensor, threshold: Tensor, slope: Tensor, gain: Tensor) -> Optional[Tensor]:
        # the composed form keeps four (B, N, T) intermediates for backward; the fused one only x.
        # A subclass with its own _shape is another function: it gets the composed form
        if type(self)._shape is not ParametricSoftplus._shape or not plain_autograd(x, threshold, slope, gain):
            return None
        return fused_softplus(x, threshold, slope, gain)


class ParametricSigmoid(PerNeuronActivation):
    """``gain * sigmoid(slope * (x - threshold))`` per neuron (+ baseline if signed): saturates at ``gain``."""

    def _shape(self, z: Tensor, slope: Tensor) -> Tensor:
        return torch.sigmoid(z)


class DoubleExponential(PerNeuronActivation):
    """``gain * exp(-exp(-slope * (x - threshold)))`` per neuron (+ baseline if signed).

    An asymmetric sigmoid (Gompertz function): slow rise from 0, faster
    saturation at ``gain``.
    """

    def _shape(self, z: Tensor, slope: Tensor) -> Tensor:
        # clamp only the inner exponent's argument to keep exp finite; the
        # outer exp of a huge negative number is an exact 0, as it should be
        return torch.exp(-torch.exp(torch.clamp(-z, max=60.0)))


class _Fixed(nn.Module):
    def __init__(self, function, name):
        super().__init__()
        self.function, self.name = function, name

    def forward(self, x: Tensor) -> Tensor:
        return self.function(x)

    def extra_repr(self) -> str:
        return self.name


#: name -> description of the activations :py:func:`make_activation` builds
ACTIVATIONS = {
    "identity": "no activation (linear output)",
    "softplus": "ParametricSoftplus, per-neuron gain, slope and threshold",
    "sigmoid": "ParametricSigmoid, per-neuron gain, slope and threshold",
    "double-exponential": "DoubleExponential, per-neuron gain, slope and threshold",
    "relu": "fixed max(x, 0), no parameters",
    "exp": "fixed exp(x), no parameters",
}

#: deepSTRF's class names of the same activations (and ours), which :py:func:`make_activation` also takes
ACTIVATION_ALIASES = Aliases("strfsolver.nn.activations")
for _foreign, _name in (("ParametricSoftplus", "softplus"), ("ParametricSigmoid", "sigmoid"),
                        ("ParametricDoubleExponential", "double-exponential"), ("DoubleExponential", "double-exponential"),
                        ("Identity", "identity"), ("ReLU", "relu")):
    ACTIVATION_ALIASES.add(_foreign, _name, source="deepSTRF" if _foreign.startswith("Parametric") else "torch")


def make_activation(
    name: Optional[Union[str, nn.Module]], n_neurons: int, non_negative: bool = True, baseline: Optional[bool] = None
) -> nn.Module:
    """Build an activation by name (see :data:`ACTIVATIONS`); ``None`` means identity.

    Args:
        name: A name, ``None`` or an ``nn.Module`` (returned as is).
        n_neurons: Neurons ``N`` for the parametric ones.
        non_negative: For the parametric ones: output >= 0.
        baseline: For the parametric ones: see :py:class:`PerNeuronActivation`.
    """
    if isinstance(name, nn.Module):
        return name
    alias = ACTIVATION_ALIASES.lookup(name) if isinstance(name, str) and name not in ACTIVATIONS else None
    if alias is not None:
        name = alias[1]
    if name is None or name == "identity":
        return nn.Identity()
    if name == "softplus":
        return ParametricSoftplus(n_neurons, non_negative=non_negative, baseline=baseline)
    if name == "sigmoid":
        return ParametricSigmoid(n_neurons, non_negative=non_negative, baseline=baseline)
    if name == "double-exponential":
        return DoubleExponential(n_neurons, non_negative=non_negative, baseline=baseline)
    if name == "relu":
        return _Fixed(torch.relu, "relu")
    if name == "exp":
        return _Fixed(torch.exp, "exp")
    hint = ACTIVATION_ALIASES.hint(name, ACTIVATIONS) if isinstance(name, str) else ""
    raise ValueError(f"Unknown activation {short_repr(name)}.{hint} Options are {sorted(ACTIVATIONS)} or an nn.Module.")
