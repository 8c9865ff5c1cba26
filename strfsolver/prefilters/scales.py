"""Frequency scales and the time constants of auditory adaptation.

Spectrogram bands are usually spaced uniformly on a perceptual or cochlear
scale. The functions here convert between Hertz and those scales, give the
band centre frequencies of an ``F``-band spectrogram, and map a band's centre
frequency to the adaptation time constant that the prefilters start from.

Scales (``x`` is the scale value, ``f`` the frequency in Hz):

- mel (HTK form): ``x = 2595 log10(1 + f / 700)``, inverse
  ``f = 700 (10 ** (x / 2595) - 1)``.
- ERB-rate (Glasberg & Moore 1990): ``x = 21.4 log10(1 + 0.00437 f)``, inverse
  ``f = (10 ** (x / 21.4) - 1) / 0.00437``; the bandwidth of the auditory
  filter at ``f`` is ``ERB(f) = 24.7 (0.00437 f + 1)`` Hz.
- Greenwood (1990) place map: ``f = A (10 ** (a x) - k)`` with ``x`` the
  relative distance from the apex in ``[0, 1]``; inverse
  ``x = log10(f / A + k) / a``. Constants per species in :data:`GREENWOOD`.
- ``"log"`` (octaves) and ``"linear"`` are also accepted by
  :py:func:`center_frequencies`.

Time constants (Willmore et al. 2016, J. Neurosci. 36(2):280-289): midbrain
adaptation to mean level is faster at high frequencies,
``tau(f) = 500 - 105 log10(f)`` ms (about 217 ms at 500 Hz, 48 ms at 20 kHz).
A leaky integrator with time constant ``tau`` sampled every ``dt`` ms decays
by ``a = exp(-dt / tau)`` per bin.
"""

from __future__ import annotations

import math
from typing import Dict, Tuple, Union

import torch
from torch import Tensor
from strfsolver.utils.checks import short_repr

__all__ = [
    "GREENWOOD",
    "SCALES",
    "hz_to_mel",
    "mel_to_hz",
    "hz_to_erb_rate",
    "erb_rate_to_hz",
    "erb_bandwidth",
    "hz_to_greenwood",
    "greenwood_to_hz",
    "center_frequencies",
    "willmore_time_constants",
    "tau_to_decay",
    "decay_to_tau",
]

ArrayLike = Union[Tensor, float, int, list, tuple]

#: Greenwood (1990) constants ``(A, a, k)`` per species: ``f = A (10 ** (a x) - k)``.
GREENWOOD: Dict[str, Tuple[float, float, float]] = {
    "human": (165.4, 2.1, 0.88),
    "cat": (456.0, 2.1, 0.8),
    # CBA/J mouse, the physiological map of Mueller, von Huenerbein, Hoidis & Smolders (2005),
    # Hear. Res. 202:63-73, written with x the relative distance from the apex as above
    "mouse": (9800.0, 0.92, 0.68),
}

#: names accepted by :py:func:`center_frequencies`
SCALES = ("mel", "erb", "greenwood", "log", "linear")


def _tensor(values: ArrayLike, name: str) -> Tensor:
    tensor = torch.as_tensor(values)
    if not torch.is_floating_point(tensor):
        tensor = tensor.to(torch.get_default_dtype())
    return tensor


def _check_positive_hz(freqs: Tensor, name: str = "freqs_hz", allow_zero: bool = True) -> None:
    bad = (freqs < 0) if allow_zero else (freqs <= 0)
    if bool(bad.any()) or bool(torch.isnan(freqs).any()):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound} Hz everywhere, got {short_repr(freqs.tolist())}.")


def hz_to_mel(freqs_hz: ArrayLike) -> Tensor:
    """Frequency in Hz to mel (HTK formula). Accepts numbers, lists or tensors."""
    f = _tensor(freqs_hz, "freqs_hz")
    _check_positive_hz(f)
    return 2595.0 * torch.log10(1.0 + f / 700.0)


def mel_to_hz(mels: ArrayLike) -> Tensor:
    """Inverse of :py:func:`hz_to_mel`."""
    m = _tensor(mels, "mels")
    return 700.0 * (torch.pow(10.0, m / 2595.0) - 1.0)


def hz_to_erb_rate(freqs_hz: ArrayLike) -> Tensor:
    """Frequency in Hz to ERB-rate (number of ERBs below ``f``, Glasberg & Moore 1990)."""
    f = _tensor(freqs_hz, "freqs_hz")
    _check_positive_hz(f)
    return 21.4 * torch.log10(1.0 + 0.00437 * f)


def erb_rate_to_hz(erb_rates: ArrayLike) -> Tensor:
    """Inverse of :py:func:`hz_to_erb_rate`."""
    e = _tensor(erb_rates, "erb_rates")
    return (torch.pow(10.0, e / 21.4) - 1.0) / 0.00437


def erb_bandwidth(freqs_hz: ArrayLike) -> Tensor:
    """Equivalent rectangular bandwidth (Hz) of the auditory filter centred on ``f``."""
    f = _tensor(freqs_hz, "freqs_hz")
    _check_positive_hz(f)
    return 24.7 * (0.00437 * f + 1.0)


def _greenwood_constants(species: str) -> Tuple[float, float, float]:
    if species not in GREENWOOD:
        raise ValueError(f"Unknown species {short_repr(species)} for the Greenwood map; options are {sorted(GREENWOOD)}.")
    return GREENWOOD[species]


def hz_to_greenwood(freqs_hz: ArrayLike, species: str = "human") -> Tensor:
    """Frequency in Hz to relative cochlear place (0 = apex, 1 = base), Greenwood (1990)."""
    big_a, small_a, k = _greenwood_constants(species)
    f = _tensor(freqs_hz, "freqs_hz")
    _check_positive_hz(f)
    return torch.log10(f / big_a + k) / small_a


def greenwood_to_hz(places: ArrayLike, species: str = "human") -> Tensor:
    """Inverse of :py:func:`hz_to_greenwood`: relative cochlear place to Hz."""
    big_a, small_a, k = _greenwood_constants(species)
    x = _tensor(places, "places")
    return big_a * (torch.pow(10.0, small_a * x) - k)


def center_frequencies(
    n_freqs: int, f_min: float = 500.0, f_max: float = 16000.0, scale: str = "log", species: str = "human"
) -> Tensor:
    """Centre frequencies (Hz) of ``n_freqs`` bands spaced uniformly on ``scale``.

    Args:
        n_freqs: Number of bands (>= 1). One band sits at ``f_min``.
        f_min: Centre of the lowest band, Hz (> 0).
        f_max: Centre of the highest band, Hz (> ``f_min``).
        scale: One of ``"mel"``, ``"erb"``, ``"greenwood"``, ``"log"``
            (uniform in octaves) or ``"linear"``.
        species: Greenwood constants to use with ``scale="greenwood"``.

    Returns:
        ``(n_freqs,)`` float64 tensor, increasing, first ``f_min``, last ``f_max``.
    """
    if isinstance(n_freqs, bool) or not isinstance(n_freqs, int) or n_freqs < 1:
        raise ValueError(f"n_freqs must be an integer >= 1, got {short_repr(n_freqs)}.")
    if not (math.isfinite(f_min) and math.isfinite(f_max) and 0 < f_min < f_max):
        raise ValueError(f"Expected 0 < f_min < f_max (Hz), got f_min={short_repr(f_min)}, f_max={short_repr(f_max)}.")
    ends = torch.tensor([f_min, f_max], dtype=torch.float64)
    if n_freqs == 1:
        return ends[:1].clone()
    if scale == "mel":
        lo, hi = hz_to_mel(ends)
        return mel_to_hz(torch.linspace(lo, hi, n_freqs, dtype=torch.float64))
    if scale == "erb":
        lo, hi = hz_to_erb_rate(ends)
        return erb_rate_to_hz(torch.linspace(lo, hi, n_freqs, dtype=torch.float64))
    if scale == "greenwood":
        lo, hi = hz_to_greenwood(ends, species)
        return greenwood_to_hz(torch.linspace(lo, hi, n_freqs, dtype=torch.float64), species)
    if scale == "log":
        return torch.logspace(math.log10(f_min), math.log10(f_max), n_freqs, dtype=torch.float64)
    if scale == "linear":
        return torch.linspace(f_min, f_max, n_freqs, dtype=torch.float64)
    raise ValueError(f"Unknown frequency scale {short_repr(scale)}; options are {list(SCALES)}.")


def willmore_time_constants(freqs_hz: ArrayLike) -> Tensor:
    """Adaptation time constant (ms) of a midbrain band centred on ``f`` Hz.

    ``tau(f) = 500 - 105 log10(f)`` (Willmore et al. 2016). The formula is
    positive below about 57 kHz; frequencies outside ``(0, 50 kHz]`` are
    rejected rather than clamped.
    """
    f = _tensor(freqs_hz, "freqs_hz")
    _check_positive_hz(f, allow_zero=False)
    if bool((f > 50000.0).any()):
        raise ValueError(
            f"willmore_time_constants is defined for 0 < f <= 50000 Hz, got a maximum of {float(f.max())} Hz."
        )
    return 500.0 - 105.0 * torch.log10(f)


def tau_to_decay(tau_ms: ArrayLike, dt_ms: float) -> Tensor:
    """Per-bin decay ``a = exp(-dt / tau)`` of a leaky integrator with time constant ``tau`` (ms)."""
    tau = _tensor(tau_ms, "tau_ms")
    if bool((tau <= 0).any()) or not dt_ms > 0:
        raise ValueError(f"tau_ms and dt_ms must be > 0, got tau_ms={short_repr(tau.tolist())}, dt_ms={short_repr(dt_ms)}.")
    return torch.exp(-dt_ms / tau)


def decay_to_tau(decay: ArrayLike, dt_ms: float) -> Tensor:
    """Inverse of :py:func:`tau_to_decay`: time constant (ms) of a per-bin decay in ``(0, 1)``."""
    a = _tensor(decay, "decay")
    if bool(((a <= 0) | (a >= 1)).any()) or not dt_ms > 0:
        raise ValueError(f"decay must lie in (0, 1) and dt_ms be > 0, got decay={short_repr(a.tolist())}, dt_ms={short_repr(dt_ms)}.")
    return -dt_ms / torch.log(a)
