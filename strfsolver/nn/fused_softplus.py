"""The per-neuron softplus ``gain * softplus(slope * (x - threshold)) / slope`` as one autograd node.

Written with separate operations, autograd keeps four full-size
intermediates of ``x`` for the backward pass (``x - threshold``, the scaled
input, the softplus and its quotient by the slope) and its backward allocates
about as many again: for a population of 400 neurons x 4 stimuli x 2,000 bins
each is 12.8 MB, the largest share of a training step's memory
(``benchmarks/bench_scale.py --done``). :py:class:`FusedSoftplus` saves only
its input and recomputes the rest in its backward pass, working in place
where it can.

Its values and gradients are *bit-identical* to the composed operations:
each step is the same torch operation on the same operands, reordered only
where IEEE arithmetic is exact (``a * b == b * a``, ``a + b == b + a``,
negation). Its backward is not differentiable again; :py:func:`fused_softplus`
therefore uses it only where nothing needs that (see :py:func:`can_fuse`).
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as nnf
from torch import Tensor
from torch.autograd import forward_ad

__all__ = ["FusedSoftplus", "can_fuse", "fused_softplus"]

# nnf.softplus's defaults, which the composed form uses
_BETA, _THRESHOLD = 1.0, 20.0


def _scaled(x: Tensor, threshold: Tensor, slope: Tensor) -> Tensor:
    # slope * (x - threshold), one buffer: the product is commutative, so in place it is the same value
    return (x - threshold).mul_(slope)


def _reduce(values: Tensor, like: Tensor) -> Tensor:
    # what the autograd engine does to a broadcast operand's gradient (at::sum_to)
    return values.sum_to_size(like.shape)


class FusedSoftplus(torch.autograd.Function):
    """``gain * (softplus(slope * (x - threshold)) / slope)`` saving only ``x`` (and the ``(N,)`` parameters).

    ``threshold``, ``slope`` and ``gain`` are broadcast against ``x`` (the
    per-neuron views ``(1, N, 1, ...)``); their gradients come back reduced to
    their shapes, as autograd reduces a broadcast operand's.
    """

    @staticmethod
    def forward(ctx, x: Tensor, threshold: Tensor, slope: Tensor, gain: Tensor) -> Tensor:
        ctx.save_for_backward(x, threshold, slope, gain)
        return _values(x, threshold, slope, gain)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tuple[Optional[Tensor], ...]:
        x, threshold, slope, gain = ctx.saved_tensors
        need_x, need_threshold, need_slope, need_gain = ctx.needs_input_grad
        # the composed graph, node by node from the output back (y = gain * q, q = s / slope,
        # s = softplus(z), z = slope * d, d = x - threshold); at most five full-size tensors live
        z = _scaled(x, threshold, slope)
        q = nnf.softplus(z, _BETA, _THRESHOLD).div_(slope)
        grad_gain = _reduce(grad * q, gain) if need_gain else None
        grad_q = grad * gain
        grad_slope = None
        if need_slope:
            # div's gradient for its divisor: -grad_q * ((s / slope) / slope), with s / slope = q
            q.div_(slope).mul_(grad_q.neg_())
            grad_slope = _reduce(q, slope)
            grad_q.neg_()  # negation is exact: grad_q is back bit for bit
        del q
        grad_s = grad_q.div_(slope)
        # elementwise, so it may write over its incoming gradient: one buffer fewer at the peak
        grad_z = torch.ops.aten.softplus_backward.grad_input(grad_s, z, _BETA, _THRESHOLD, grad_input=grad_s)
        if need_slope:
            # mul's gradient for slope: grad_z * d, added to the divisor's part as the engine adds them
            d = torch.sub(x, threshold, out=z)
            grad_slope = grad_slope + _reduce(d.mul_(grad_z), slope)
        del z
        grad_x = grad_z.mul_(slope)
        grad_threshold = None
        if need_threshold:
            # sub's gradient for threshold is -grad_x; negating in place and back keeps grad_x exact
            grad_threshold = _reduce(grad_x.neg_(), threshold).clone()
            grad_x.neg_()
        return (grad_x if need_x else None), grad_threshold, grad_slope, grad_gain


def _values(x: Tensor, threshold: Tensor, slope: Tensor, gain: Tensor) -> Tensor:
    """The activation's values with one full-size buffer (the softplus written over its input)."""
    z = _scaled(x, threshold, slope)
    torch._C._nn.softplus(z, _BETA, _THRESHOLD, out=z)
    # gain * (s / slope): the quotient first, then the commutative product, as composed
    return z.div_(slope).mul_(gain)


def can_fuse(*tensors: Tensor) -> bool:
    """Whether :py:class:`FusedSoftplus` may stand in for the composed operations on ``tensors``.

    Not under ``torch.func`` transforms (``vmap`` of the per-neuron stack,
    ``grad``, ``jvp``) nor inside a forward-mode AD level: a custom autograd
    node has no batching or forward-mode rule there. Not under autocast, which
    casts each composed operation on its own (``softplus`` runs in float32), and
    not on mixed dtypes, which the in-place steps could not promote as the
    composed ones do.
    """
    dtype = tensors[0].dtype
    if not dtype.is_floating_point or any(t.dtype != dtype for t in tensors) or forward_ad._current_level >= 0:
        return False
    if torch.is_autocast_enabled(tensors[0].device.type):
        return False
    return not any(torch._C._functorch.is_functorch_wrapped_tensor(t) for t in tensors)


def fused_softplus(x: Tensor, threshold: Tensor, slope: Tensor, gain: Tensor) -> Tensor:
    """``gain * softplus(slope * (x - threshold)) / slope`` with the least memory autograd allows.

    Under ``no_grad`` (or with nothing requiring a gradient) it needs no graph
    at all and computes the values in one buffer; otherwise it goes through
    :py:class:`FusedSoftplus`. Callers check :py:func:`can_fuse` first.
    """
    if not (torch.is_grad_enabled() and any(t.requires_grad for t in (x, threshold, slope, gain))):
        return _values(x, threshold, slope, gain)
    return FusedSoftplus.apply(x, threshold, slope, gain)
