"""The random draws of the synthetic data: stimuli and ground-truth STRFs.

:py:func:`draw_spectrogram` draws one stimulus of the package's default
family, :py:func:`draw_ripples` one of another (moving ripples, in dB),
:py:func:`draw_strfs` the
receptive fields of a population, each from the NumPy generator it is given;
:py:mod:`strfsolver.data.synthetic` turns them into responses.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["FREQ_RANGE_HZ", "STIMULUS_FAMILIES", "draw_spectrogram", "draw_ripples", "draw_strfs"]

# -- frequency axis and stimulus statistics ---------------------------------------------
#: lowest and highest band centre of the synthetic spectrograms (5 octaves, log-spaced)
FREQ_RANGE_HZ = (500.0, 16000.0)
_OCTAVES = math.log2(FREQ_RANGE_HZ[1] / FREQ_RANGE_HZ[0])
# reference power of the log compression: a component 30 dB below full scale
# maps to log1p(1) / log1p(1e3) ~ 0.1 of the range, full scale maps to 1
_COMPRESSION_REF = 1e-3
# background floor: keeps silent gaps strictly positive, as in a recorded spectrogram
_FLOOR_POWER = 2e-4


# -- stimuli ----------------------------------------------------------------------------------------


def _smooth(values: np.ndarray, sigma: float, axis: int) -> np.ndarray:
    """Gaussian smoothing along ``axis`` with edge values repeated (5 taps)."""
    taps = np.exp(-0.5 * (np.arange(-2, 3) / sigma) ** 2)
    taps /= taps.sum()
    pad = [(0, 0)] * values.ndim
    pad[axis] = (2, 2)
    padded = np.pad(values, pad, mode="edge")
    size = values.shape[axis]
    return sum(w * np.take(padded, np.arange(k, k + size), axis=axis) for k, w in enumerate(taps))


def draw_spectrogram(rng: np.random.Generator, n_freqs: int, n_bins: int, dt_ms: float) -> np.ndarray:
    """One ``(F, T)`` log-compressed spectrogram in about [0.03, 1].

    A sequence of sound events separated by silent gaps (and sometimes
    overlapping): harmonic stacks, pure tones and noise bands, each with a
    sharp onset, a release, an optional percussive decay, and a constant or
    gliding (chirp) frequency. Widths and glides are set in octaves and
    milliseconds, then converted, so the statistics do not depend on F or dt.
    """
    per_octave = max((n_freqs - 1) / _OCTAVES, 1e-3)
    ms = 1.0 / dt_ms  # bins per millisecond
    freq = np.arange(n_freqs, dtype=np.float64)[:, None]
    power = np.zeros((n_freqs, n_bins))
    start = rng.uniform(10, 150) * ms  # every stimulus opens with a silence
    while start < n_bins:
        duration = max(math.exp(rng.uniform(math.log(40), math.log(400))) * ms, 1.0)
        on, off = int(start), min(n_bins, int(math.ceil(start + duration)))
        age = np.arange(on, off) - start + 1.0  # bins since the onset, > 0
        attack = rng.uniform(2, 10) * ms
        release = rng.uniform(5, 30) * ms
        envelope = np.minimum(1.0, age / (attack + 1)) * np.clip((duration + 1 - age) / (release + 1), 0, 1)
        if rng.uniform() < 0.3:  # percussive: decays after the onset
            envelope *= np.exp(-age / (rng.uniform(30, 150) * ms))
        kind = rng.choice(3, p=[0.45, 0.2, 0.35])  # harmonic stack, tone, noise band
        glide = rng.uniform(-3, 3) * per_octave * dt_ms / 1000 if rng.uniform() < 0.4 else 0.0  # octaves/s
        if kind == 0:
            sigma = rng.uniform(0.04, 0.08) * per_octave
            centre = rng.uniform(0, max(n_freqs - 1 - 1.5 * per_octave, 0)) + glide * age
            profile = sum(
                h**-0.7 * np.exp(-0.5 * ((freq - centre - per_octave * math.log2(h)) / sigma) ** 2)
                for h in range(1, 9)
            )
        elif kind == 1:
            sigma = rng.uniform(0.04, 0.08) * per_octave
            centre = rng.uniform(0, n_freqs - 1) + glide * age
            profile = np.exp(-0.5 * ((freq - centre) / sigma) ** 2)
        else:
            sigma = rng.uniform(0.3, 1.0) * per_octave
            centre = rng.uniform(0, n_freqs - 1) + glide * age
            profile = np.exp(-0.5 * ((freq - centre) / sigma) ** 2)
            rate_hz, depth = rng.uniform(2, 16), rng.uniform(0, 0.8)  # amplitude modulation
            envelope = envelope * (1 - depth * 0.5 * (1 - np.cos(2 * math.pi * rate_hz * age * dt_ms / 1000)))
        level = 10 ** (rng.uniform(-25, 0) / 10)
        power[:, on:off] += level * envelope[None, :] * profile
        if rng.uniform() < 0.2:  # the next event starts before this one ends
            start += rng.uniform(0.2, 0.8) * duration
        else:
            start += duration + math.exp(rng.uniform(math.log(15), math.log(300))) * ms
    power += _FLOOR_POWER
    compressed = np.log1p(power / _COMPRESSION_REF) / math.log1p(1 / _COMPRESSION_REF)
    # a filterbank smears energy over neighbouring bands and bins
    return _smooth(_smooth(compressed, 0.7, axis=0), 0.7, axis=1)


def _slow_values(rng: np.random.Generator, n_bins: int, dt_ms: float, low: float, high: float, knot_ms: float) -> np.ndarray:
    """``(T,)`` values in ``[low, high]`` drifting slowly: uniform draws every ``knot_ms``, linearly interpolated."""
    knots = max(2, int(math.ceil(n_bins * dt_ms / knot_ms)) + 1)
    values = rng.uniform(low, high, knots)
    return np.interp(np.arange(n_bins) * dt_ms / knot_ms, np.arange(knots), values)


def draw_ripples(rng: np.random.Generator, n_freqs: int, n_bins: int, dt_ms: float, n_components: int = 6) -> np.ndarray:
    """One ``(F, T)`` dynamic moving-ripple spectrogram, in dB (about 60 +- 30).

    The sum of ``n_components`` ripples ``cos(phi_k(t) + 2 pi Omega_k(t) x_f + theta_k)``
    over the bands' positions ``x_f`` in octaves (5 octaves), each with a
    velocity ``phi_k'(t) / 2 pi`` drifting in [-16, 16] Hz and a density
    ``Omega_k(t)`` drifting in [0, 2] cycles per octave (new values every 250
    ms, interpolated). A family unlike :py:func:`draw_spectrogram`'s sound
    events: dense, never silent, on another scale and in other units.
    """
    octave = np.linspace(0.0, _OCTAVES, n_freqs)[:, None]
    total = np.zeros((n_freqs, n_bins))
    for _ in range(n_components):
        velocity = _slow_values(rng, n_bins, dt_ms, -16.0, 16.0, 250.0)  # Hz
        density = _slow_values(rng, n_bins, dt_ms, 0.0, 2.0, 250.0)  # cycles per octave
        phase = 2 * math.pi * np.cumsum(velocity) * dt_ms / 1000 + rng.uniform(0, 2 * math.pi)
        total += np.cos(phase[None, :] + 2 * math.pi * density[None, :] * octave)
    return 60.0 + 15.0 * total / math.sqrt(n_components / 2)


#: stimulus families of the synthetic generators: name -> ``draw(rng, n_freqs, n_bins, dt_ms) -> (F, T)``
STIMULUS_FAMILIES = {"spectrogram": draw_spectrogram, "ripples": draw_ripples}


# -- receptive fields ---------------------------------------------------------------------------------


def draw_strfs(rng: np.random.Generator, n_neurons: int, n_freqs: int, n_lags: int, dt_ms: float):
    """``(N, F, L)`` STRFs with peak |value| 1, best frequencies and latencies.

    An excitatory Gaussian subfield at the best frequency and latency, plus
    inhibition that mixes two textbook forms with a per-neuron weight: delayed
    inhibition (same band, later and longer) and sideband inhibition (two
    flanking bands, about the same latency).
    """
    per_octave = max((n_freqs - 1) / _OCTAVES, 1e-3)
    f = np.arange(n_freqs, dtype=np.float64)[None, :, None]
    lag = np.arange(n_lags, dtype=np.float64)[None, None, :]

    def column(x):
        return np.asarray(x, dtype=np.float64)[:, None, None]

    # stratified draws spread best frequencies over the inner 80% of the band
    best = (rng.permutation(n_neurons) + rng.uniform(size=n_neurons)) / n_neurons
    best = (0.1 + 0.8 * best) * (n_freqs - 1)
    bandwidth = np.maximum(rng.uniform(0.15, 0.5, n_neurons) * per_octave, 0.5)  # octaves
    latency_ms = rng.uniform(10, 35, n_neurons)
    latency = np.minimum(latency_ms / dt_ms, 0.4 * (n_lags - 1))
    duration = np.maximum(rng.uniform(5, 15, n_neurons) / dt_ms, 0.5)
    mix = rng.uniform(0, 1, n_neurons)  # 1: delayed inhibition only, 0: sideband only
    delayed_gain = rng.uniform(0.4, 0.9, n_neurons) * mix
    delay = rng.uniform(15, 40, n_neurons) / dt_ms
    side_gain = rng.uniform(0.3, 0.7, n_neurons) * (1 - mix)
    side_offset = rng.uniform(1.5, 2.5, n_neurons) * bandwidth
    side_lag = rng.uniform(0, 10, n_neurons) / dt_ms

    def bump(centre, width, along):
        return np.exp(-0.5 * ((along - column(centre)) / column(width)) ** 2)

    excitation = bump(best, bandwidth, f) * bump(latency, duration, lag)
    delayed = bump(best, 1.3 * bandwidth, f) * bump(latency + delay, 2.0 * duration, lag)
    sidebands = (bump(best - side_offset, bandwidth, f) + bump(best + side_offset, bandwidth, f)) * bump(
        latency + side_lag, 1.2 * duration, lag
    )
    strf = excitation - column(delayed_gain) * delayed - column(side_gain) * sidebands
    strf /= np.abs(strf).reshape(n_neurons, -1).max(1)[:, None, None]
    return strf, best, latency * dt_ms
