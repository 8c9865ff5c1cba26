"""Layers: STRF convolution convention, kernels, normalisation, decay, locally connected, attention helpers."""

import math

import pytest
import torch

from strfsolver.nn.layers import (
    CausalLayerNorm,
    CausalSTRFConv,
    LearnableExponentialDecay,
    LocallyConnected1d,
    ParametricSTRF,
    SeparableSTRF,
    SinusoidalPositionalEncoding,
    causal_strf_conv,
    causal_window_mask,
    make_strf_kernel,
)


def loop_drive(strf, stims, bias):
    """drive[b,n,t] = bias[n] + sum_{c,f,l} strf[n,c,f,l] stims[b,c,f,t-l], zero before t = 0."""
    n_out, n_channels, n_freqs, n_lags = strf.shape
    batch, _, _, n_times = stims.shape
    drive = torch.zeros(batch, n_out, 1, n_times, dtype=torch.float64)
    for b in range(batch):
        for n in range(n_out):
            for t in range(n_times):
                total = float(bias[n])
                for lag in range(n_lags):
                    if t - lag >= 0:
                        total += float((strf[n, :, :, lag] * stims[b, :, :, t - lag]).sum())
                drive[b, n, 0, t] = total
    return drive


def test_causal_strf_conv_matches_the_explicit_loop():
    g = torch.Generator().manual_seed(0)
    strf = torch.randn(3, 2, 5, 4, generator=g, dtype=torch.float64)
    stims = torch.randn(2, 2, 5, 12, generator=g, dtype=torch.float64)
    bias = torch.randn(3, generator=g, dtype=torch.float64)
    torch.testing.assert_close(causal_strf_conv(stims, strf, bias), loop_drive(strf, stims, bias))


def test_lag_zero_is_the_current_bin():
    strf = torch.zeros(2, 1, 4, 6)
    strf[0, 0, 1, 0] = 1.0  # current bin, band 1
    strf[1, 0, 3, 5] = 2.0  # five bins back, band 3
    stims = torch.zeros(1, 1, 4, 20)
    stims[0, 0, 1, 7] = 1.0
    stims[0, 0, 3, 7] = 1.0
    out = causal_strf_conv(stims, strf)[0, :, 0]
    assert out[0].nonzero().flatten().tolist() == [7]
    assert out[1].nonzero().flatten().tolist() == [12] and out[1, 12] == 2.0


def test_causal_strf_conv_errors_name_shapes():
    with pytest.raises(ValueError, match=r"\(B, 2, 5, T\).*\(1, 1, 5, 9\)"):
        causal_strf_conv(torch.zeros(1, 1, 5, 9), torch.zeros(3, 2, 5, 4))
    with pytest.raises(ValueError, match="kernel"):
        make_strf_kernel("dense", 3, 1, 5, 4)


def test_separable_kernel_has_the_requested_rank():
    torch.manual_seed(0)
    for rank in (1, 2):
        kernel = SeparableSTRF(4, 1, 8, 6, rank=rank)()
        assert kernel.shape == (4, 1, 8, 6)
        ranks = torch.linalg.matrix_rank(kernel[:, 0].detach(), rtol=1e-4)
        assert ranks.tolist() == [rank] * 4
    conv = CausalSTRFConv(8, 6, 4, kernel="separable", rank=2)
    assert conv(torch.rand(2, 1, 8, 30)).shape == (2, 4, 1, 30)


def test_parametric_strf_gaussians_have_unit_mass_and_stay_on_the_grid():
    torch.manual_seed(0)
    layer = ParametricSTRF(5, 2, 32, 8, n_gaussians=3)
    with torch.no_grad():
        layer.amplitude.fill_(1.0)
    kernel = layer()
    assert kernel.shape == (5, 2, 32, 8)
    torch.testing.assert_close(kernel.sum(dim=(-2, -1)), torch.full((5, 2), 3.0))
    centers = layer.centers
    assert (centers[..., 0] > -0.5).all() and (centers[..., 0] < 31.5).all()
    assert (centers[..., 1] > -0.5).all() and (centers[..., 1] < 7.5).all()


CORNERS = [(0.0, 0.0), (0.0, 7.0), (31.0, 0.0), (31.0, 7.0)]


def test_parametric_strf_can_be_placed_at_every_corner_of_an_asymmetric_grid():
    layer = ParametricSTRF(4, 1, 32, 8, min_width=0.3)
    with torch.no_grad():
        layer.amplitude.fill_(1.0)
        layer.raw_width.fill_(-5.0)  # narrow: the peak is the centre's bin
    layer.set_centers(torch.tensor(CORNERS).view(4, 1, 1, 2))
    torch.testing.assert_close(layer.centers.view(4, 2), torch.tensor(CORNERS))
    kernel = layer()[:, 0]
    for n, (f, lag) in enumerate(CORNERS):
        peak = divmod(int(kernel[n].argmax()), 8)
        assert peak == (int(f), int(lag))
    with pytest.raises(ValueError, match="inside the grid"):
        layer.set_centers(torch.tensor([32.0, 0.0]))


def test_parametric_strf_centres_can_be_optimised_to_every_corner():
    """Start every Gaussian mid-grid; gradient descent pulls each to the corner of its target."""
    torch.manual_seed(0)
    truth = ParametricSTRF(4, 1, 32, 8)
    truth.set_centers(torch.tensor(CORNERS).view(4, 1, 1, 2))
    layer = ParametricSTRF(4, 1, 32, 8)
    layer.set_centers(torch.tensor([15.5, 3.5]))
    with torch.no_grad():
        truth.amplitude.fill_(1.0)
        layer.amplitude.fill_(1.0)
    target = truth().detach()
    optimizer = torch.optim.Adam([layer.raw_center], lr=0.2)
    for _ in range(150):
        optimizer.zero_grad()
        loss = ((layer() - target) ** 2).sum()
        loss.backward()
        optimizer.step()
    reached = layer.centers.detach().view(4, 2)
    assert (reached - torch.tensor(CORNERS)).abs().max() < 0.25, reached


def test_causal_layer_norm_normalises_each_time_bin_alone():
    torch.manual_seed(0)
    norm = CausalLayerNorm(2, 5)
    x = torch.randn(3, 2, 5, 11) * 4 + 1
    y = norm(x)
    torch.testing.assert_close(y.mean(dim=(1, 2)), torch.zeros(3, 11), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(dim=(1, 2), unbiased=False), torch.ones(3, 11), atol=1e-3, rtol=0)
    x2 = x.clone()
    x2[..., 6:] += 10 * torch.randn(3, 2, 5, 5)
    assert torch.equal(norm(x2)[..., :6], y[..., :6])


def recursion(x, tau, dt, include_current, initial):
    a = math.exp(-dt / tau)
    m = x[0] if initial == "first" else 0.0
    out = []
    for t in range(len(x)):
        if include_current:
            m = a * m + (1 - a) * x[t]
            out.append(m)
        else:
            out.append(m)
            m = a * m + (1 - a) * x[t]
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("include_current", [True, False])
@pytest.mark.parametrize("initial", ["zero", "first"])
def test_exponential_decay_equals_the_recursion(include_current, initial):
    torch.set_default_dtype(torch.float64)
    try:
        taus = torch.tensor([[10.0, 40.0, 300.0]])
        layer = LearnableExponentialDecay((1, 3), taus, dt_ms=5.0, include_current=include_current, initial=initial, block=16)
        x = torch.rand(2, 1, 3, 70, generator=torch.Generator().manual_seed(0), dtype=torch.float64)  # 70: not a block multiple
        y = layer(x)
        for b in range(2):
            for f in range(3):
                expected = recursion(x[b, 0, f].tolist(), float(taus[0, f]), 5.0, include_current, initial)
                torch.testing.assert_close(y[b, 0, f], expected)
    finally:
        torch.set_default_dtype(torch.float32)


def test_exponential_decay_learns_its_time_constant_and_is_exactly_causal():
    layer = LearnableExponentialDecay((4,), 50.0, dt_ms=5.0)
    x = torch.rand(2, 4, 200)
    y = layer(x)
    y.sum().backward()
    assert layer.log_tau.grad is not None and layer.log_tau.grad.abs().sum() > 0
    x2 = x.clone()
    x2[..., 130:] = 5.0
    assert torch.equal(layer(x2)[..., :130].detach(), y[..., :130].detach())
    fixed = LearnableExponentialDecay((4,), 50.0, learnable=False)
    assert not list(fixed.parameters()) and torch.allclose(fixed.tau_ms, torch.full((4,), 50.0))
    with pytest.raises(ValueError, match="tau_ms"):
        LearnableExponentialDecay((4,), -1.0)
    with pytest.raises(ValueError, match=r"\(\.\.\., 4, T\)"):
        layer(torch.rand(3))


def test_locally_connected_uses_one_filter_per_position():
    torch.manual_seed(0)
    layer = LocallyConnected1d(2, 3, in_length=7, kernel_size=3, stride=2, padding=1)
    x = torch.randn(4, 2, 7)
    out = layer(x)
    assert out.shape == (4, 3, layer.out_length) and layer.out_length == 4
    padded = torch.nn.functional.pad(x, (1, 1))
    for p in range(layer.out_length):
        patch = padded[:, :, 2 * p : 2 * p + 3].reshape(4, -1)
        torch.testing.assert_close(out[:, :, p], patch @ layer.weight[p].T + layer.bias[:, p])
    with pytest.raises(ValueError, match=r"\(B, 2, 7\)"):
        layer(torch.randn(4, 2, 8))


def test_sinusoidal_positional_encoding_values():
    pe = SinusoidalPositionalEncoding(6)
    table = pe.encoding(5)
    t, i = 3, 1
    assert math.isclose(float(table[t, 2 * i]), math.sin(t / 10000 ** (2 * i / 6)), rel_tol=1e-6)
    assert math.isclose(float(table[t, 2 * i + 1]), math.cos(t / 10000 ** (2 * i / 6)), rel_tol=1e-6)
    x = torch.zeros(2, 5, 6)
    torch.testing.assert_close(pe(x), table.expand(2, 5, 6))
    assert SinusoidalPositionalEncoding(5).encoding(4).shape == (4, 5)


def test_causal_window_mask():
    mask = causal_window_mask(5)
    assert mask.dtype == torch.bool
    assert torch.equal(~mask, torch.tril(torch.ones(5, 5, dtype=torch.bool)))
    windowed = causal_window_mask(5, window=2)
    allowed = [(i, j) for i in range(5) for j in range(5) if not windowed[i, j]]
    assert allowed == [(0, 0), (1, 0), (1, 1), (2, 1), (2, 2), (3, 2), (3, 3), (4, 3), (4, 4)]
    with pytest.raises(ValueError, match="window"):
        causal_window_mask(5, window=0)
