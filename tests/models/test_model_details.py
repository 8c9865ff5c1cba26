"""Model details deepSTRF users rely on: readout batch norm, non-negative baselines, leaky hidden layer,
K-tap adaptation with per-band starts and separate ON/OFF weights, the mouse Greenwood map."""

import math

import pytest
import torch

import strfsolver
from strfsolver.models import LinearReadout, STRFReadout
from strfsolver.nn.activations import ParametricSoftplus
from strfsolver.nn.layers import LearnableExponentialDecay
from strfsolver.prefilters.scales import greenwood_to_hz, hz_to_greenwood


def test_readout_batch_norm_normalises_each_neuron_alone():
    torch.manual_seed(0)
    readout = STRFReadout(n_freqs=4, n_lags=3, n_neurons=3, batch_norm=True, init_std=1.0).train()
    features = torch.randn(5, 1, 4, 40)
    out = readout(features)
    # in training mode every neuron's drive has mean 0 and (biased) variance 1 over batch and bins
    torch.testing.assert_close(out.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.var(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-3, rtol=0)
    # scaling one neuron's kernel leaves the normalised output of every neuron as it was
    with torch.no_grad():
        readout.kernel.weight[1] *= 10.0
    torch.testing.assert_close(readout(features), out, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="batch_norm"):
        STRFReadout(4, 3, 3, batch_norm="yes")


def test_non_negative_activation_with_a_learned_baseline_stays_non_negative():
    act = ParametricSoftplus(4, non_negative=True, baseline=True, baseline_init=0.5)
    x = torch.linspace(-50, 5, 40).expand(2, 4, 40)
    y = act(x)
    assert bool((y >= 0).all())
    # far below threshold the output is the baseline itself
    torch.testing.assert_close(y[..., 0], torch.full((2, 4), 0.5), atol=1e-6, rtol=0)
    with torch.no_grad():
        act.raw_baseline.fill_(-30.0)  # however low the parameter goes, the baseline stays >= 0
    assert bool((act(x) >= 0).all())
    assert ParametricSoftplus(4).baseline_values() is None
    signed = ParametricSoftplus(4, non_negative=False)
    assert signed.baseline is not None and signed.raw_baseline is None
    with pytest.raises(ValueError, match="baseline_init must be > 0"):
        ParametricSoftplus(4, baseline=True, baseline_init=0.0)


def test_leaky_hidden_layer_uses_its_slope():
    readout = LinearReadout(n_features=3, n_neurons=2, hidden=4, hidden_activation="leaky-relu", negative_slope=0.2)
    layer = readout.hidden[1]
    assert isinstance(layer, torch.nn.LeakyReLU) and layer.negative_slope == 0.2
    assert layer(torch.tensor([-1.0, 2.0])).tolist() == pytest.approx([-0.2, 2.0])
    with pytest.raises(ValueError, match="negative_slope"):
        LinearReadout(3, 2, hidden=4, hidden_activation="leaky-relu", negative_slope=1.5)


def test_k_tap_average_is_the_normalised_exponential_of_the_recent_past():
    x = torch.arange(1.0, 9.0).reshape(1, 1, 8)
    two = LearnableExponentialDecay((1,), 20.0, 5.0, include_current=False, initial="first", kernel_size=2)(x)
    assert two.flatten().tolist() == [1.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]  # the previous bin
    a = math.exp(-5.0 / 20.0)
    three = LearnableExponentialDecay((1,), 20.0, 5.0, include_current=False, initial="first", kernel_size=3)(x).detach().flatten()
    expected = (x[0, 0, 4] * 1 + x[0, 0, 3] * a) / (1 + a)  # bin 5 averages bins 4 and 3
    assert float(three[5]) == pytest.approx(float(expected))
    # a long kernel is the infinite average up to a vanishing tail
    inf = LearnableExponentialDecay((1,), 5.0, 5.0, include_current=False, initial="first")(x)
    long = LearnableExponentialDecay((1,), 5.0, 5.0, include_current=False, initial="first", kernel_size=60)(x)
    torch.testing.assert_close(long, inf, atol=1e-5, rtol=0)


def test_adaptation_per_band_starts_separate_weights_and_kernel_size():
    tau = torch.tensor([20.0, 40.0, 80.0])
    ic = strfsolver.prefilters.init("icadaptation", n_freqs=3, tau_init=tau, kernel_size=2)
    torch.testing.assert_close(ic.time_constants[0], tau)
    x = torch.rand(2, 1, 3, 12)
    # a 2-tap filter: each bin minus the one before, rectified
    expected = torch.relu(x - torch.cat([x[..., :1], x[..., :-1]], dim=-1))
    torch.testing.assert_close(ic(x), expected)
    adapt = strfsolver.prefilters.init("adaptrans", n_freqs=3, w_init=torch.tensor([0.2, 0.5, 0.8]), separate_w=True, kernel_size=2)
    torch.testing.assert_close(adapt.w[0], torch.tensor([0.2, 0.5, 0.8]))
    with torch.no_grad():
        adapt.raw_w_off.fill_(0.0)  # OFF weight 0.5 everywhere, ON weights untouched
    out = adapt(x)
    previous = torch.cat([x[..., :1], x[..., :-1]], dim=-1)
    torch.testing.assert_close(out[:, :1], torch.relu(x - adapt.w[None, ..., None] * previous))
    torch.testing.assert_close(out[:, 1:], torch.relu(previous - 0.5 * x))
    with pytest.raises(ValueError, match="w_init must lie in"):
        strfsolver.prefilters.init("adaptrans", n_freqs=3, w_init=torch.tensor([0.2, 1.5, 0.8]))
    with pytest.raises(ValueError, match="tau_init must be"):
        strfsolver.prefilters.init("icadaptation", n_freqs=3, tau_init=torch.ones(4))


def test_mouse_greenwood_map():
    # Mueller et al. (2005): the CBA/J mouse apex near 2.9 kHz, the base near 79 kHz
    ends = greenwood_to_hz(torch.tensor([0.0, 1.0], dtype=torch.float64), species="mouse")
    assert ends.tolist() == pytest.approx([9800 * (1 - 0.68), 9800 * (10**0.92 - 0.68)])
    freqs = torch.tensor([4000.0, 16000.0, 64000.0], dtype=torch.float64)
    torch.testing.assert_close(greenwood_to_hz(hz_to_greenwood(freqs, "mouse"), "mouse"), freqs)
    centres = strfsolver.prefilters.init("icadaptation", n_freqs=5, f_min=4000.0, f_max=40000.0, scale="greenwood", species="mouse").center_frequencies
    places = hz_to_greenwood(centres.double(), "mouse")
    torch.testing.assert_close(places.diff(), places.diff()[:1].expand(4), atol=1e-5, rtol=0)  # evenly spaced on the cochlea
