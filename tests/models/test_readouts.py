"""Readouts: shapes, and no parameter shared between neurons where promised."""

import pytest
import torch

from strfsolver.models import LinearReadout, STRFReadout

B, F, T, N, L = 2, 8, 40, 3, 5


def readout_parameters(model):
    readout = model.readout
    return [(name, p) for name, p in readout.named_parameters()]


def assert_no_shared_parameters(model, stims, params):
    """d out[:, n] / d p[m] == 0 exactly for m != n, and != 0 for m == n, for every parameter."""
    assert params, "nothing to check"
    for name, p in params:
        assert p.shape[0] == model.n_neurons, f"{name} has shape {tuple(p.shape)}: not one slice per neuron"
    out = model(stims)
    for n in range(model.n_neurons):
        grads = torch.autograd.grad(out[:, n].sum(), [p for _, p in params], retain_graph=True, allow_unused=True)
        for (name, p), grad in zip(params, grads):
            assert grad is not None, f"{name} does not reach neuron {n}"
            others = torch.cat([grad[:n].flatten(), grad[n + 1 :].flatten()])
            assert torch.count_nonzero(others) == 0, f"neuron {n}'s output depends on other neurons' {name}"
            assert grad[n].abs().sum() > 0, f"neuron {n}'s output does not depend on its own {name}"


@pytest.mark.parametrize(
    "name, options",
    [
        ("linear", {}),
        ("linear", {"kernel": "separable", "rank": 2}),
        ("linear", {"kernel": "gaussian", "n_gaussians": 2}),
        ("linear", {"normalization": "weight"}),
        ("ln", {}),
        ("ln", {"activation": "double-exponential", "non_negative": False}),
        ("ln", {"activation": "sigmoid", "prefiltering": "adaptrans"}),
        ("nrf", {}),
    ],
)
def test_readout_parameters_belong_to_one_neuron(name, options, build, stims):
    model = build(name, **options)
    assert_no_shared_parameters(model, stims, readout_parameters(model))


def test_linear_and_ln_models_share_nothing_at_all(build, stims):
    for name in ("linear", "ln"):
        model = build(name)
        assert_no_shared_parameters(model, stims, list(model.named_parameters()))


def test_strf_readout_shapes_and_weight_normalisation():
    readout = STRFReadout(F, L, N, n_channels=2, normalization="weight", activation="softplus")
    x = torch.rand(B, 2, F, T)
    assert readout(x).shape == (B, N, 1, T)
    kernel = readout.strf()
    assert kernel.shape == (N, 2, F, L)
    torch.testing.assert_close(kernel.flatten(1).norm(dim=1), readout.norm.detach())
    with torch.no_grad():
        readout.norm.mul_(torch.tensor([1.0, 2.0, 3.0]))
    torch.testing.assert_close(readout.strf().flatten(1).norm(dim=1), readout.norm.detach())
    assert (readout(x) >= 0).all()
    with pytest.raises(ValueError, match="normalization"):
        STRFReadout(F, L, N, normalization="batch")
    with pytest.raises(ValueError, match=r"\(B, 2, 8, T\).*\(2, 1, 8, 40\)"):
        readout(torch.rand(B, 1, F, T))


def test_linear_readout_projects_each_time_bin():
    torch.manual_seed(0)
    readout = LinearReadout(2 * F, N)
    x = torch.rand(B, 2, F, T)
    out = readout(x)
    assert out.shape == (B, N, 1, T)
    w, b = readout.projection.weight, readout.projection.bias
    t = 17
    expected = x[:, :, :, t].reshape(B, -1) @ w.T + b
    torch.testing.assert_close(out[:, :, 0, t], expected)
    hidden = LinearReadout(2 * F, N, hidden=5, activation="softplus")
    assert hidden(x).shape == (B, N, 1, T) and (hidden(x) >= 0).all()
    with pytest.raises(ValueError, match="C \\* F = 16"):
        readout(torch.rand(B, 1, F, T))
