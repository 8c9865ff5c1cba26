"""The per-neuron softplus ``gain * softplus(slope * (x - threshold)) / slope`` as one autograd node.

Written with separate operations, autograd keeps four full-size
intermediates of ``x`` for the backward pass (``x - threshold``, the scaled
input, the softplus and its quotient by the slope) and its backward allocates
about as many again: for a population of 400 neurons x 4 stimuli x 2,000 bins
each is 12.8 MB, the largest share of a training step's memory
(``benchmarks/bench_scale.py --done``). :py:class:`FusedSoftplus` saves only
its input and recomputes the rest in its backward pass, working in place
where it can.

It saves ``x`` itself, so modifying ``x`` in place after the forward pass
makes the backward pass raise (the composed form kept copies). Its values
and first-order gradients are *bit-identical* to the composed operations
(second order, through the composed fallback, within a few ulps):
each step is the same torch operation on the same operands, reordered only
where IEEE arithmetic is exact (``a * b == b * a``, ``a + b == b + a``,
negation). A backward pass that must itself be differentiable (``create_graph=True``)
goes through the composed form instead; :py:func:`fused_softplus` uses the
node only under plain reverse-mode autograd
(:py:func:`strfsolver.utils._autograd.plain_autograd`).
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as nnf
from torch import Tensor

# nnf.softplus's defaults, which the composed form uses
_BETA, _THRESHOLD = 1.0, 20.0


def _scaled(x: Tensor, threshold: Tensor, slope: Tensor) -> Tensor:
    # slope * (x - threshold), one buffer: the product is commutative, so in place it is the same value
    return (x - threshold).mul_(slope)


def _reduce(values: Tensor, like: Tensor) -> Tensor:
    # what the autograd engine does to a broadcast operand's gradient (at::sum_to); a copy when
    # nothing is reduced, since the backward pass goes on writing into its buffers
    reduced = values.sum_to_size(like.shape)
    return reduced.clone() if reduced.data_ptr() == values.data_ptr() else reduced


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
        if torch.is_grad_enabled():
            # create_graph=True: the in-place steps below cannot be differentiated again; the composed form can
            return _composed_grads(ctx.needs_input_grad, grad, x, threshold, slope, gain)
        if not (x.is_contiguous() and grad.is_contiguous()):
            # the composed backward follows the incoming gradient's layout, these buffers x's: with the two
            # laid out differently the slope's reduction would add in another order
            return _composed_grads(ctx.needs_input_grad, grad, x, threshold, slope, gain, create_graph=False)
        need_x, need_threshold, need_slope, need_gain = ctx.needs_input_grad
        # the composed graph, node by node from the output back (y = gain * q, q = s / slope,
        # s = softplus(z), z = slope * d, d = x - threshold), in two buffers besides x and grad:
        # z is recomputed rather than kept beside q (a sub and a mul, against a full-size buffer)
        q = _scaled(x, threshold, slope)
        torch._C._nn.softplus(q, _BETA, _THRESHOLD, out=q)
        q.div_(slope)
        work = torch.mul(grad, q)
        grad_gain = _reduce(work, gain) if need_gain else None
        grad_q = torch.mul(grad, gain, out=work)
        grad_slope = None
        if need_slope:
            # div's gradient for its divisor: -grad_q * ((s / slope) / slope), with s / slope = q
            q.div_(slope).mul_(grad_q.neg_())
            grad_slope = _reduce(q, slope)
            grad_q.neg_()  # negation is exact: grad_q is back bit for bit
        z = torch.sub(x, threshold, out=q).mul_(slope)
        grad_s = grad_q.div_(slope)
        # elementwise, so it may write over its incoming gradient
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
            grad_threshold = _reduce(grad_x.neg_(), threshold)
            grad_x.neg_()
        return (grad_x if need_x else None), grad_threshold, grad_slope, grad_gain


def _composed_grads(needs, grad: Tensor, *inputs: Tensor, create_graph: bool = True) -> Tuple[Optional[Tensor], ...]:
    """The gradients through the composed operations: differentiable ones (``create_graph``), or a
    first-order backward's, from detached copies of the inputs (the engine runs backward without grad)."""
    if create_graph:
        return _differentiate(needs, grad, inputs, create_graph=True)
    with torch.enable_grad():
        leaves = [t.detach().requires_grad_(bool(need)) for t, need in zip(inputs, needs)]
        return _differentiate(needs, grad, leaves, create_graph=False)


def _differentiate(needs, grad: Tensor, inputs, create_graph: bool) -> Tuple[Optional[Tensor], ...]:
    x, threshold, slope, gain = inputs
    y = gain * (nnf.softplus(slope * (x - threshold), _BETA, _THRESHOLD) / slope)
    wanted = [t for t, need in zip(inputs, needs) if need]
    grads = iter(torch.autograd.grad(y, wanted, grad, create_graph=create_graph))
    return tuple(next(grads) if need else None for need in needs)


def _values(x: Tensor, threshold: Tensor, slope: Tensor, gain: Tensor) -> Tensor:
    """The activation's values with one full-size buffer (the softplus written over its input)."""
    z = _scaled(x, threshold, slope)
    torch._C._nn.softplus(z, _BETA, _THRESHOLD, out=z)
    # gain * (s / slope): the quotient first, then the commutative product, as composed
    return z.div_(slope).mul_(gain)


def fused_softplus(x: Tensor, threshold: Tensor, slope: Tensor, gain: Tensor) -> Tensor:
    """``gain * softplus(slope * (x - threshold)) / slope`` with the least memory autograd allows.

    Under ``no_grad`` (or with nothing requiring a gradient) it needs no graph
    at all and computes the values in one buffer; otherwise it goes through
    :py:class:`FusedSoftplus`. Callers check
    :py:func:`~strfsolver.utils._autograd.plain_autograd` first.
    """
    if not (torch.is_grad_enabled() and any(t.requires_grad for t in (x, threshold, slope, gain))):
        return _values(x, threshold, slope, gain)
    return FusedSoftplus.apply(x, threshold, slope, gain)
