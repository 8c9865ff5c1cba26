"""Every registered prefilter: options, shape, causality; and the adaptation equations."""

import math

import pytest
import torch

import strfsolver
from strfsolver.prefilters import ICAdaptation, IdentityPrefilter

PREFILTERS = strfsolver.prefilters.get_options()
B, C, F, T = 2, 1, 6, 50


def build(name, **options):
    return strfsolver.prefilters.init(name, n_freqs=F, dt_ms=5.0, **options)


def test_get_options_lists_the_prefilters():
    assert set(PREFILTERS) >= {"identity", "adaptrans", "icadaptation", "willmore"}
    assert isinstance(build("willmore"), ICAdaptation) and isinstance(build("icadaptation"), ICAdaptation)


@pytest.mark.parametrize("name", PREFILTERS)
@pytest.mark.parametrize("n_channels", [1, 2])
def test_output_shape(name, n_channels):
    prefilter = build(name, n_channels=n_channels)
    out = prefilter(torch.rand(B, n_channels, F, T))
    expected_channels = 2 * n_channels if name == "adaptrans" else n_channels
    assert prefilter.out_channels == expected_channels
    assert out.shape == (B, expected_channels, F, T)
    with pytest.raises(ValueError, match=rf"\(B, {n_channels}, 6, T\).*\(2, {n_channels}, 7, 50\)"):
        prefilter(torch.rand(B, n_channels, F + 1, T))


@pytest.mark.parametrize("name", PREFILTERS)
def test_causal(name):
    prefilter = build(name)
    x = torch.rand(B, C, F, T, generator=torch.Generator().manual_seed(0))
    changed = x.clone()
    changed[..., 31:] = torch.rand(B, C, F, T - 31) * 4
    with torch.no_grad():
        before, after = prefilter(x), prefilter(changed)
    assert torch.equal(before[..., :31], after[..., :31])
    assert not torch.equal(before[..., 31:], after[..., 31:])


@pytest.mark.parametrize("name", PREFILTERS)
def test_save_load_state_round_trip(name, tmp_path):
    prefilter = build(name)
    with torch.no_grad():
        for p in prefilter.parameters():
            p.add_(0.1)
    strfsolver.utils.io.save_tensors(tmp_path / "p.safetensors", prefilter.state_dict())
    fresh = build(name)
    fresh.load_state_dict(strfsolver.utils.io.load_tensors(tmp_path / "p.safetensors"))
    x = torch.rand(B, C, F, T)
    assert torch.equal(fresh(x), prefilter(x))


def test_identity_returns_its_input():
    x = torch.rand(B, 2, F, T)
    assert build("identity", n_channels=2)(x) is x
    assert isinstance(build("identity"), IdentityPrefilter)


def past_average(x, tau, dt):
    """m[0] = x[0]; m[t] = a m[t-1] + (1 - a) x[t-1]."""
    a = math.exp(-dt / tau)
    m, out = x[0], []
    for value in x:
        out.append(m)
        m = a * m + (1 - a) * value
    return torch.tensor(out)


def test_icadaptation_equals_the_explicit_recursion():
    prefilter = build("icadaptation", f_min=500.0, f_max=16000.0, scale="log")
    assert not list(prefilter.parameters())  # fixed, nothing learned
    freqs = torch.logspace(math.log10(500), math.log10(16000), F)
    torch.testing.assert_close(prefilter.time_constants[0], 500 - 105 * torch.log10(freqs))
    x = torch.rand(1, 1, F, T, generator=torch.Generator().manual_seed(2), dtype=torch.float32)
    y = prefilter(x)
    for f in range(F):
        m = past_average(x[0, 0, f].tolist(), float(prefilter.time_constants[0, f]), 5.0)
        torch.testing.assert_close(y[0, 0, f], torch.relu(x[0, 0, f] - m.float()), rtol=1e-5, atol=1e-6)


def test_icadaptation_adapts_to_a_constant_level_and_responds_to_onsets():
    prefilter = build("icadaptation")
    level = torch.full((1, 1, F, T), 2.0)
    # no artificial onset at t = 0: the average starts at the first bin
    torch.testing.assert_close(prefilter(level), torch.zeros_like(level), rtol=0, atol=1e-5)
    step = torch.ones(1, 1, F, 200)
    step[..., 100:] = 3.0
    y = prefilter(step)[0, 0]
    assert (y[:, :100].abs() < 1e-5).all()
    torch.testing.assert_close(y[:, 100], torch.full((F,), 2.0))  # the whole increment at the onset
    # then decays with each band's time constant: faster at high frequencies
    tau = prefilter.time_constants[0]
    torch.testing.assert_close(y[:, 101], 2.0 * torch.exp(-5.0 / tau), rtol=1e-5, atol=1e-6)
    assert y[-1, 140] < y[0, 140]


def test_adaptrans_equations_and_learnable_parameters():
    prefilter = build("adaptrans", w_init=0.6)
    torch.testing.assert_close(prefilter.w, torch.full((1, F), 0.6))
    with torch.no_grad():
        prefilter.on_average.log_tau.copy_(torch.log(torch.linspace(20, 200, F))[None])
        prefilter.off_average.log_tau.copy_(torch.log(torch.linspace(300, 30, F))[None])
    x = torch.rand(1, 1, F, T, generator=torch.Generator().manual_seed(3))
    y = prefilter(x)
    tau_on, tau_off = prefilter.time_constants
    for f in range(F):
        xf = x[0, 0, f]
        m_on = past_average(xf.tolist(), float(tau_on[0, f].detach()), 5.0)
        m_off = past_average(xf.tolist(), float(tau_off[0, f].detach()), 5.0)
        torch.testing.assert_close(y[0, 0, f], torch.relu(xf - 0.6 * m_on), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(y[0, 1, f], torch.relu(m_off - 0.6 * xf), rtol=1e-5, atol=1e-6)
    y.sum().backward()
    for name, p in prefilter.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    frozen = build("adaptrans", learnable=False)
    assert not list(frozen.parameters())


def test_adaptrans_on_channel_sees_increments_off_channel_decrements():
    prefilter = build("adaptrans", w_init=0.99)
    step = torch.ones(1, 1, F, 120)
    step[..., 40:80] = 4.0
    y = prefilter(step)[0]
    on, off = y[0], y[1]
    assert on[:, 40].min() > 2.5 and off[:, 40].max() == 0  # onset: ON fires, OFF silent
    assert off[:, 80].min() > 1.0 and on[:, 80].max() == 0  # offset: OFF fires, ON silent
    # high bands adapt faster (shorter tau), so their average is nearer 4 at the offset: larger OFF
    assert (torch.diff(off[:, 80]) > 0).all()


def test_prefilter_argument_errors():
    with pytest.raises(ValueError, match="w_init"):
        build("adaptrans", w_init=1.5)
    with pytest.raises(ValueError, match="scale"):
        build("icadaptation", scale="bark")
    with pytest.raises(ValueError, match="f_min < f_max"):
        build("adaptrans", f_min=8000.0, f_max=500.0)
    with pytest.raises(ValueError, match="dt_ms"):
        strfsolver.prefilters.init("identity", n_freqs=F, dt_ms=0.0)
