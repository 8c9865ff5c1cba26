"""Frequency scales and adaptation time constants."""

import math

import pytest
import torch

from strfsolver.prefilters import scales


@pytest.mark.parametrize(
    "forward, inverse",
    [
        (scales.hz_to_mel, scales.mel_to_hz),
        (scales.hz_to_erb_rate, scales.erb_rate_to_hz),
        (scales.hz_to_greenwood, scales.greenwood_to_hz),
    ],
)
def test_inverses(forward, inverse):
    freqs = torch.tensor([50.0, 440.0, 1000.0, 8000.0, 19000.0], dtype=torch.float64)
    torch.testing.assert_close(inverse(forward(freqs)), freqs)


def test_known_values():
    assert math.isclose(float(scales.hz_to_mel(1000.0)), 1000.0, rel_tol=1e-3)  # the mel's anchor
    assert math.isclose(float(scales.hz_to_mel(700.0)), 2595 * math.log10(2), rel_tol=1e-6)
    assert math.isclose(float(scales.hz_to_erb_rate(1000.0)), 21.4 * math.log10(5.37), rel_tol=1e-6)
    assert math.isclose(float(scales.erb_bandwidth(1000.0)), 132.639, rel_tol=1e-5)
    # human Greenwood map: apex ~20 Hz, base ~20.7 kHz
    assert math.isclose(float(scales.greenwood_to_hz(0.0)), 165.4 * 0.12, rel_tol=1e-6)
    assert math.isclose(float(scales.greenwood_to_hz(1.0)), 165.4 * (10 ** 2.1 - 0.88), rel_tol=1e-6)
    assert float(scales.greenwood_to_hz(1.0, species="cat")) > float(scales.greenwood_to_hz(1.0))
    with pytest.raises(ValueError, match="species"):
        scales.greenwood_to_hz(0.5, species="bat")
    with pytest.raises(ValueError, match=">= 0 Hz"):
        scales.hz_to_mel(-3.0)


@pytest.mark.parametrize("scale, to_scale", [
    ("mel", scales.hz_to_mel),
    ("erb", scales.hz_to_erb_rate),
    ("greenwood", scales.hz_to_greenwood),
    ("log", lambda f: torch.log2(f)),
    ("linear", lambda f: f),
])
def test_center_frequencies_are_uniform_on_their_scale(scale, to_scale):
    freqs = scales.center_frequencies(9, 300.0, 12000.0, scale)
    assert freqs.shape == (9,)
    torch.testing.assert_close(freqs[[0, -1]], torch.tensor([300.0, 12000.0], dtype=torch.float64))
    steps = torch.diff(to_scale(freqs))
    torch.testing.assert_close(steps, steps[:1].expand(8))
    assert (steps > 0).all()


def test_center_frequency_errors():
    with pytest.raises(ValueError, match="scale"):
        scales.center_frequencies(4, 100.0, 1000.0, "bark")
    with pytest.raises(ValueError, match="f_min"):
        scales.center_frequencies(4, 0.0, 1000.0)
    with pytest.raises(ValueError, match="n_freqs"):
        scales.center_frequencies(0)
    assert scales.center_frequencies(1, 200.0, 400.0).tolist() == [200.0]


def test_time_constants_and_decays():
    tau = scales.willmore_time_constants(torch.tensor([500.0, 1000.0, 20000.0]))
    torch.testing.assert_close(tau, torch.tensor([500 - 105 * math.log10(500), 185.0, 500 - 105 * math.log10(20000)]))
    assert (torch.diff(tau) < 0).all()  # faster adaptation at high frequencies
    a = scales.tau_to_decay(tau, dt_ms=5.0)
    torch.testing.assert_close(a, torch.exp(-5.0 / tau))
    torch.testing.assert_close(scales.decay_to_tau(a, dt_ms=5.0), tau)
    with pytest.raises(ValueError, match="50000"):
        scales.willmore_time_constants(60000.0)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        scales.decay_to_tau(1.0, 5.0)
