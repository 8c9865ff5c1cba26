"""strfsolver.losses: registry, values, NaN masking of values and gradients."""

import math

import pytest
import torch

import strfsolver
from strfsolver import losses
from strfsolver.losses import MSELoss, PoissonLoss
from strfsolver.losses import functional as F

NAN = float("nan")


def make_batch(seed=0, B=3, N=4, R=5, T=12):
    g = torch.Generator().manual_seed(seed)
    rate = 0.5 + torch.rand(B, N, 1, T, generator=g, dtype=torch.float64) * 3
    responses = torch.poisson(rate.expand(B, N, R, T).contiguous(), generator=g)
    responses[0, :, :, 9:] = NAN  # a shorter stimulus
    responses[1, :, 3:] = NAN  # fewer repeats
    responses[2, 1, 0] = NAN  # a missing repeat
    responses[:, 3] = NAN  # a neuron never recorded
    pred = rate + 0.3 * torch.randn(rate.shape, generator=g, dtype=torch.float64)
    return pred.clamp(min=0.05), responses


def psth_and_valid(responses):
    """PSTH and valid positions, computed independently with numpy-style ops."""
    valid = ~torch.isnan(responses)
    count = valid.sum(2)
    psth = torch.where(valid, responses, 0.0).sum(2) / count.clamp(min=1)
    return psth, count > 0


def per_neuron(values, valid):
    """Mean over each neuron's valid (b, t), by explicit loop (reference)."""
    out = []
    for n in range(values.shape[1]):
        chosen = values[:, n][valid[:, n]]
        out.append(chosen.mean().item() if chosen.numel() else NAN)
    return torch.tensor(out, dtype=torch.float64)


def test_registry_names_and_modules():
    assert losses.get_options() == ["mse", "poisson"]
    assert isinstance(losses.init("mse"), MSELoss)
    poisson = losses.init("poisson", log_input=True, reduction="sum")
    assert isinstance(poisson, PoissonLoss) and poisson.log_input and poisson.reduction == "sum"
    assert isinstance(poisson, torch.nn.Module)
    assert strfsolver.losses is losses
    with pytest.raises(ValueError, match="Did you mean 'poisson'"):
        losses.init("poison")


def test_mse_values():
    pred, responses = make_batch()
    psth, valid = psth_and_valid(responses)
    expected = per_neuron((pred[:, :, 0] - psth) ** 2, valid)
    got = F.mse(pred, responses, reduction="none")
    torch.testing.assert_close(got, expected, equal_nan=True)
    assert torch.isnan(got[3])  # never recorded
    assert F.mse(pred, responses).item() == pytest.approx(expected[:3].mean().item())
    assert F.mse(pred, responses, reduction="sum").item() == pytest.approx(expected[:3].sum().item())
    assert MSELoss()(pred, responses).item() == pytest.approx(expected[:3].mean().item())
    # by hand: PSTH [2, 3] against pred [1, 1]: ((1)^2 + (2)^2) / 2
    tiny = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    assert F.mse(torch.ones(1, 1, 1, 2), tiny).item() == pytest.approx(2.5)


def test_poisson_values():
    pred, responses = make_batch(1)
    psth, valid = psth_and_valid(responses)
    rate = pred[:, :, 0]
    expected = per_neuron(rate - psth * torch.log(rate + 1e-8), valid)
    torch.testing.assert_close(F.poisson_nll(pred, responses, reduction="none"), expected, equal_nan=True)
    expected_log = per_neuron(torch.exp(rate) - psth * rate, valid)
    torch.testing.assert_close(
        PoissonLoss(log_input=True, reduction="none")(pred, responses), expected_log, equal_nan=True
    )
    # the two parametrisations agree: rate = exp(log-rate)
    log_rate = torch.log(pred)
    a = F.poisson_nll(log_rate, responses, log_input=True)
    b = F.poisson_nll(pred, responses, log_input=False, eps=0.0)
    assert a.item() == pytest.approx(b.item(), rel=1e-12)
    # by hand: rate 2, counts [1, 3] -> PSTH 2: 2 - 2 log 2
    tiny = torch.tensor([[[[1.0], [3.0]]]])
    assert F.poisson_nll(torch.full((1, 1, 1, 1), 2.0), tiny, eps=0.0).item() == pytest.approx(2 - 2 * math.log(2))


@pytest.mark.parametrize(
    "loss",
    [MSELoss(), PoissonLoss(), PoissonLoss(log_input=True), MSELoss(reduction="sum")],
    ids=["mse", "poisson", "poisson-log", "mse-sum"],
)
def test_gradients_are_finite_and_zero_at_missing_positions(loss):
    pred, responses = make_batch(2)
    _, valid = psth_and_valid(responses)
    pred = pred.clone()
    # garbage where nothing was recorded: huge (exp overflows) or NaN
    pred[:, :, 0][~valid] = 1e4
    pred[0, 0, 0, 11] = NAN
    pred.requires_grad_(True)
    value = loss(pred, responses)
    assert torch.isfinite(value)
    value.backward()
    grad = pred.grad[:, :, 0]
    assert torch.isfinite(grad).all()
    assert (grad[~valid] == 0).all()
    assert (grad[valid] != 0).all()


def test_gradient_vanishes_at_the_constant_rate_mle():
    # for a constant rate per neuron, both losses are minimal at the mean PSTH
    pred, responses = make_batch(3)
    psth, valid = psth_and_valid(responses)
    mean = per_neuron(psth, valid)[:3].view(1, 3, 1, 1)
    for loss in (MSELoss(reduction="sum"), PoissonLoss(reduction="sum", eps=0.0)):
        level = mean.clone().requires_grad_(True)
        loss(level.expand(3, 3, 1, 12), responses[:, :3]).backward()
        assert level.grad.abs().max() < 1e-10
        shifted = (mean + 0.1).requires_grad_(True)
        loss(shifted.expand(3, 3, 1, 12), responses[:, :3]).backward()
        assert (shifted.grad > 0).all()


def test_mask_removes_positions():
    pred, responses = make_batch(4)
    mask = torch.ones(pred.shape, dtype=torch.bool)
    mask[:, :, :, :6] = False
    cut = responses.clone()
    cut[:, :, :, :6] = NAN
    for fn in (F.mse, F.poisson_nll):
        assert fn(pred, responses, mask=mask).item() == pytest.approx(fn(pred, cut).item())
        assert fn(pred, responses, mask=mask).item() != pytest.approx(fn(pred, responses).item())


def test_bad_input_raises():
    pred, responses = make_batch(5)
    with pytest.raises(ValueError, match=r"pred must have shape \(B, N, 1, T\) = \(3, 4, 1, 12\).*\(3, 4, 1, 11\)"):
        F.mse(pred[..., :11], responses)
    with pytest.raises(ValueError, match=r"reduction must be one of 'none', 'mean', 'sum'; got 'avg'"):
        MSELoss(reduction="avg")
    with pytest.raises(ValueError, match=r"reduction must be one of"):
        F.poisson_nll(pred, responses, reduction="avg")
    negative = pred.clone()
    negative[1, 2, 0, 4] = -0.5
    with pytest.raises(ValueError, match=r"non-negative rates.*-0.5.*log_input=True"):
        F.poisson_nll(negative, responses)
    # a negative value where nothing was recorded is padding: no error
    padded = pred.clone()
    padded[0, 0, 0, 10] = -3.0
    assert torch.isfinite(F.poisson_nll(padded, responses))
    with pytest.raises(ValueError, match=r"non-negative responses"):
        F.poisson_nll(pred, responses - 10)
    with pytest.raises(ValueError, match=r"eps must be a non-negative"):
        PoissonLoss(eps=-1.0)


# ---------------------------------------------------------------------------
# mse's squared residuals as one autograd node: the composed form's values and gradients, bit for bit
# ---------------------------------------------------------------------------
def _composed_mse(pred, responses, mask=None, reduction="mean"):
    """mse written as separate operations (the form the fused node stands in for)."""
    p, target, valid = F._target_and_valid(pred, responses, mask, fill=False)
    residual = torch.where(valid, p - target, 0.0)
    return F._reduce(F._per_neuron_mean((residual * residual).sum((0, 2)), valid), reduction)


def _mse_values_and_grads(fn, pred, responses, mask, reduction, target_grad):
    pred = pred.clone().requires_grad_(True)
    responses = responses.clone().requires_grad_(target_grad)
    value = fn(pred, responses, mask, reduction)
    weights = torch.arange(1.0, value.numel() + 1, dtype=value.dtype).reshape(value.shape)
    (torch.nan_to_num(value) * weights).sum().backward()
    return value.detach(), pred.grad, responses.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("target_grad", [False, True])
def test_mse_equals_its_composed_form_bit_for_bit(dtype, reduction, masked, target_grad):
    pred, responses = (t.to(dtype) for t in make_batch(seed=3))
    pred[0, 0, 0, 10:] = NAN  # garbage at padded bins (responses are NaN there)
    mask = torch.rand(pred.shape[0], pred.shape[1], pred.shape[3], generator=torch.Generator().manual_seed(1)) < 0.7 if masked else None
    want = _mse_values_and_grads(_composed_mse, pred, responses, mask, reduction, target_grad)
    got = _mse_values_and_grads(F.mse, pred, responses, mask, reduction, target_grad)
    for a, b in zip(want, got):
        torch.testing.assert_close(b, a, rtol=0, atol=0, equal_nan=True)
    assert got[1].isfinite().all()  # NaN targets and padded garbage reach no gradient


def test_mse_without_gradients_equals_its_composed_form():
    pred, responses = (t.float() for t in make_batch(seed=4))
    with torch.no_grad():
        assert torch.equal(F.mse(pred, responses, reduction="none").nan_to_num(-1.0), _composed_mse(pred, responses, reduction="none").nan_to_num(-1.0))


def test_mse_backward_twice_and_double_backward():
    pred, responses = make_batch(seed=5)
    pred.requires_grad_(True)
    loss = F.mse(pred, responses)
    first = torch.autograd.grad(loss, pred, retain_graph=True)[0]
    assert torch.equal(first, torch.autograd.grad(loss, pred)[0])  # the saved residual is left intact
    results = []
    for fn in (_composed_mse, F.mse):
        p = pred.detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(fn(p, responses), p, create_graph=True)
        results.append(torch.autograd.grad((g * g.detach()).sum() + g.square().sum(), p)[0])
    torch.testing.assert_close(results[1], results[0], rtol=0, atol=0)
    assert results[0].abs().sum() > 0  # a second derivative that exists (2 / count where valid)


def test_mse_takes_a_numpy_prediction():
    pred, responses = make_batch(seed=6)
    assert F.mse(pred.numpy(), responses).item() == F.mse(pred, responses).item()


def test_mse_of_a_transposed_prediction_equals_the_composed_form():
    # a LinearReadout's (B, N, 1, T) output is a transposed view: its loss must add in the composed order
    from strfsolver.losses.functional import mse

    g = torch.Generator().manual_seed(0)
    base = torch.randn(3, 200, 7, generator=g, requires_grad=True)
    responses = torch.randn(3, 7, 1, 200, generator=g)
    responses[0, 2, 0, 10:40] = float("nan")
    pred = base.transpose(1, 2).unsqueeze(2)  # not contiguous
    value = mse(pred, responses, reduction="none")
    target, valid = responses[:, :, 0], ~responses[:, :, 0].isnan()
    residual = torch.where(valid, pred[:, :, 0] - target, 0.0)
    expected = (residual * residual).sum((0, 2)) / valid.sum((0, 2))
    assert torch.equal(value, expected)
    (grad,) = torch.autograd.grad(value.sum(), base)
    (want,) = torch.autograd.grad(expected.sum(), base)
    assert torch.equal(grad, want)
