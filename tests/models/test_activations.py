"""Per-neuron parametric activations."""

import pytest
import torch
import torch.nn.functional as nnf

from strfsolver.nn.activations import (
    ACTIVATIONS,
    DoubleExponential,
    ParametricSigmoid,
    ParametricSoftplus,
    make_activation,
)

N = 4


def test_softplus_starts_as_softplus_and_follows_its_formula():
    act = ParametricSoftplus(N)
    x = torch.linspace(-5, 5, 2 * N * 7).view(2, N, 1, 7)
    torch.testing.assert_close(act(x), nnf.softplus(x))
    with torch.no_grad():
        act.raw_gain.copy_(torch.log(torch.expm1(torch.tensor([1.0, 2.0, 3.0, 4.0]))))
        act.raw_slope.copy_(torch.log(torch.expm1(torch.tensor([0.5, 1.0, 2.0, 4.0]))))
        act.threshold.copy_(torch.tensor([-1.0, 0.0, 1.0, 2.0]))
    gain, slope, thr = act.gain.view(1, N, 1, 1), act.slope.view(1, N, 1, 1), act.threshold.view(1, N, 1, 1)
    torch.testing.assert_close(act(x), gain * nnf.softplus(slope * (x - thr)) / slope)


@pytest.mark.parametrize("cls", [ParametricSoftplus, ParametricSigmoid, DoubleExponential])
def test_non_negative_by_default_and_signed_on_request(cls):
    x = torch.linspace(-50, 50, 3 * N * 11).view(3, N, 1, 11)
    act = cls(N)
    assert act.baseline is None and (act(x) >= 0).all()
    signed = cls(N, non_negative=False)
    with torch.no_grad():
        signed.baseline.fill_(-2.0)
    assert (signed(x) < 0).any()
    assert torch.isfinite(act(x)).all()


@pytest.mark.parametrize("cls", [ParametricSoftplus, ParametricSigmoid, DoubleExponential])
def test_parameters_are_per_neuron(cls):
    act = cls(N, non_negative=False)
    x = torch.randn(2, N, 1, 9)
    out = act(x)
    for n in range(N):
        grads = torch.autograd.grad(out[:, n].sum(), list(act.parameters()), retain_graph=True)
        for grad in grads:
            assert grad.shape == (N,)
            mask = torch.ones(N, dtype=torch.bool)
            mask[n] = False
            assert torch.count_nonzero(grad[mask]) == 0 and grad[n] != 0


def test_sigmoid_and_double_exponential_formulas():
    x = torch.linspace(-3, 3, N * 5).view(1, N, 1, 5)
    torch.testing.assert_close(ParametricSigmoid(N)(x), torch.sigmoid(x))
    torch.testing.assert_close(DoubleExponential(N)(x), torch.exp(-torch.exp(-x)))
    # the double exponential saturates at the gain and vanishes for large negative inputs
    de = DoubleExponential(N)
    assert torch.allclose(de(torch.full((1, N, 1, 1), 30.0)), torch.ones(1, N, 1, 1))
    assert (de(torch.full((1, N, 1, 1), -30.0)) == 0).all()


def test_make_activation_by_name():
    assert set(ACTIVATIONS) == {"identity", "softplus", "sigmoid", "double-exponential", "relu", "exp"}
    x = torch.randn(2, N, 1, 3)
    assert torch.equal(make_activation(None, N)(x), x)
    assert torch.equal(make_activation("relu", N)(x), torch.relu(x))
    assert isinstance(make_activation("double-exponential", N), DoubleExponential)
    with pytest.raises(ValueError, match="softplus"):
        make_activation("softmax", N)
    with pytest.raises(ValueError, match=r"\(B, 4, \.\.\.\)"):
        ParametricSoftplus(N)(torch.randn(2, 3, 1, 5))
