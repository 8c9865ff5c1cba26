"""The fused per-neuron softplus: the same values and gradients, bit for bit, as the composed operations."""

import pytest
import torch
import torch.nn.functional as nnf

from strfsolver.nn.activations import ParametricSoftplus
from strfsolver.nn._fused_softplus import FusedSoftplus

N = 6


def _composed(act, x):
    """The activation written as separate operations, as autograd sees them without the fused node."""
    view = lambda v: act._per_neuron(v, x)  # noqa: E731
    slope = view(act.slope)  # one tensor used twice, as PerNeuronActivation.forward has it
    y = view(act.gain) * (nnf.softplus(slope * (x - view(act.threshold))) / slope)
    baseline = act.baseline_values()
    return y if baseline is None else y + view(baseline)


def _activation(seed, dtype=torch.float32, **options):
    g = torch.Generator().manual_seed(seed)
    act = ParametricSoftplus(N, **options).to(dtype)
    with torch.no_grad():
        for p in act.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 1.5)
    return act, g


def _values_and_grads(act, x, upstream, forward):
    x = x.clone().requires_grad_(True)
    act.zero_grad()
    y = forward(act, x)
    (y * upstream).sum().backward()
    return [y.detach(), x.grad] + [p.grad.clone() for p in act.parameters()]


def _inputs(shape, g, dtype):
    x = (torch.randn(shape, generator=g, dtype=torch.float64) * 12).to(dtype)
    flat = x.view(-1)
    flat[::7] = 0.0  # exact zeros
    flat[1::11] = 35.0  # past softplus's linear threshold (slope * x > 20)
    flat[2::13] = -40.0  # deep in the flat part
    upstream = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
    upstream.view(-1)[::5] = 0.0  # masked bins: the loss sends no gradient there
    return x, upstream


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(4, N, 1, 300), (1, N, 1, 1), (3, N), (2, N, 5, 7)])
@pytest.mark.parametrize("options", [{}, {"non_negative": False}, {"baseline": True}])
def test_fused_equals_composed_bit_for_bit(dtype, shape, options):
    act, g = _activation(0, dtype, **options)
    x, upstream = _inputs(shape, g, dtype)
    composed = _values_and_grads(act, x, upstream, _composed)
    fused = _values_and_grads(act, x, upstream, lambda a, t: a(t))
    for want, got in zip(composed, fused):
        assert torch.equal(want, got)


def test_the_model_goes_through_the_fused_node_and_keeps_only_its_input():
    act, g = _activation(1)
    x = torch.randn(2, N, 1, 50, generator=g, requires_grad=True)
    y = act(x)
    assert type(y.grad_fn).__name__ == "FusedSoftplusBackward"
    # nothing of x's size is kept but x itself (the composed form keeps four such tensors)
    saved = [t for t in y.grad_fn.saved_tensors if t.numel() == x.numel()]
    assert len(saved) == 1 and saved[0].data_ptr() == x.data_ptr()


def test_nan_input_gives_nan_where_the_composed_form_does():
    act, g = _activation(2)
    x, upstream = _inputs((3, N, 1, 40), g, torch.float32)
    x[0, 1, 0, 3] = float("nan")
    composed = _values_and_grads(act, x, upstream, _composed)
    fused = _values_and_grads(act, x, upstream, lambda a, t: a(t))
    for want, got in zip(composed, fused):
        torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True)


def test_no_grad_values_equal_and_input_untouched():
    act, g = _activation(3)
    x, _ = _inputs((2, N, 1, 30), g, torch.float32)
    before = x.clone()
    with torch.no_grad():
        got = act(x)
    assert torch.equal(got, _composed(act, x).detach())
    assert torch.equal(x, before)


def test_backward_twice_with_retain_graph_gives_the_same_gradients():
    act, g = _activation(4)
    x, upstream = _inputs((2, N, 1, 30), g, torch.float32)
    x.requires_grad_(True)
    y = act(x)
    first = torch.autograd.grad(y, [x] + list(act.parameters()), upstream, retain_graph=True)
    second = torch.autograd.grad(y, [x] + list(act.parameters()), upstream)
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_double_backward_matches_the_composed_form():
    act, g = _activation(5, torch.float64)
    x, upstream = _inputs((2, N, 1, 20), g, torch.float64)
    results = []
    for forward in (_composed, lambda a, t: a(t)):
        xx = x.clone().requires_grad_(True)
        (gx,) = torch.autograd.grad((forward(act, xx) * upstream).sum(), xx, create_graph=True)
        results.append(torch.autograd.grad(gx.square().sum(), [xx] + list(act.parameters())))
    for want, got in zip(*results):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_gradcheck():
    act, g = _activation(6, torch.float64)
    x = torch.randn(2, N, 1, 5, generator=g, dtype=torch.float64, requires_grad=True)
    view = lambda v: v.view(1, N, 1, 1)  # noqa: E731
    params = [view(t.detach().clone().requires_grad_(True)) for t in (act.threshold, act.slope, act.gain)]
    assert torch.autograd.gradcheck(FusedSoftplus.apply, (x, *params))


def test_vmap_and_autocast_use_the_composed_form():
    act, g = _activation(7)
    x = torch.randn(3, 2, N, 1, 10, generator=g)
    got = torch.func.vmap(act)(x)  # a custom node has no batching rule: the composed form runs
    torch.testing.assert_close(got, _composed(act, x.flatten(0, 1)).view_as(got).detach(), rtol=0, atol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = act(x[0].requires_grad_(True))
    assert type(y.grad_fn).__name__ != "FusedSoftplusBackward"


@pytest.mark.cuda
@pytest.mark.parametrize("options", [{}, {"baseline": True}])
def test_fused_equals_composed_on_cuda(options):
    # the same kernels on the same operands: equal on a GPU too (values to the bit, gradients to rounding,
    # since CUDA's reductions of a broadcast operand's gradient may order their sums differently)
    act, g = _activation(0, torch.float32, **options)
    act = act.cuda()
    x, upstream = _inputs((4, N, 1, 300), g, torch.float32)
    x, upstream = x.cuda(), upstream.cuda()
    composed = _values_and_grads(act, x, upstream, _composed)
    fused = _values_and_grads(act, x, upstream, lambda a, t: a(t))
    assert torch.equal(composed[0], fused[0]) and torch.equal(composed[1], fused[1])
    for want, got in zip(composed[2:], fused[2:]):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("transposed", ["x", "upstream", "both"])
def test_fused_equals_composed_on_transposed_layouts(transposed):
    # a LinearReadout's output is a transposed view; the composed backward follows the gradient's layout
    act, g = _activation(3)
    x = torch.randn(8, 300, N, generator=g)
    upstream = torch.randn(8, 300, N, generator=g)
    x = x.transpose(1, 2) if transposed in ("x", "both") else x.transpose(1, 2).contiguous()
    upstream = upstream.transpose(1, 2) if transposed in ("upstream", "both") else upstream.transpose(1, 2).contiguous()
    composed = _values_and_grads(act, x, upstream, _composed)
    fused = _values_and_grads(act, x, upstream, lambda a, t: a(t))
    for want, got in zip(composed, fused):
        assert torch.equal(want, got)


def test_a_subclass_with_its_own_shape_is_not_fused():
    class Sharp(ParametricSoftplus):
        def _shape(self, z, slope):
            return nnf.softplus(z, beta=2.0) / slope

    act = Sharp(N)
    x = torch.randn(2, N, 1, 50, generator=torch.Generator().manual_seed(1), requires_grad=True)
    view = lambda v: act._per_neuron(v, x)  # noqa: E731
    slope = view(act.slope)
    expected = view(act.gain) * act._shape(slope * (x - view(act.threshold)), slope)
    assert torch.equal(act(x), expected)
