"""Adaptation prefilters: ``"icadaptation"`` (alias ``"willmore"``) and ``"adaptrans"``.

Both compare, in every frequency band, the current spectrogram value with an
exponentially weighted average of its recent past,

    m[t] = (1 - a) * sum_{k >= 1} a^(k - 1) * x[t - k]      a = exp(-dt / tau)

computed exactly by :py:class:`~strfsolver.nn.layers.LearnableExponentialDecay`
(``include_current=False``); the average starts from the first bin
(``m[0] = x[0]``), so a stimulus does not begin with an artificial onset.
The time constant of a band centred on ``f`` Hz starts at
``tau(f) = 500 - 105 log10(f)`` ms (Willmore et al. 2016; see
:py:mod:`strfsolver.prefilters.scales`); band centres come from
``n_freqs``, ``f_min``, ``f_max`` and ``scale``.

- ``"icadaptation"``: fixed midbrain adaptation to mean level (Willmore,
  Schoppe, King, Schnupp & Harper 2016, J. Neurosci. 36(2):280-289):
  ``y[t] = relu(x[t] - m[t])``. Nothing is learned; one output channel
  per input channel.
- ``"adaptrans"``: learnable ON/OFF adaptation (Rançon, Masquelier &
  Cottereau 2024, PLOS Comput. Biol. 20(8):e1012288): per band, an ON and
  an OFF time constant and a shared weight ``w`` in (0, 1):
  ``ON[t] = relu(x[t] - w m_on[t])`` (responds to increments) and
  ``OFF[t] = relu(m_off[t] - w x[t])`` (responds to decrements). Two output
  channels per input channel, ON channels first.

Both take per-band starting values (``tau_init``, and ``w_init`` for
AdapTrans: a number, ``(F,)`` or ``(C, F)``) in place of the Willmore map,
and ``kernel_size``: ``None`` for the infinite exponential average above, or
deepSTRF's truncated ``K``-tap filter (``kernel_size=2``, deepSTRF's default,
compares each bin with the one before it; see
:py:class:`~strfsolver.nn.layers.LearnableExponentialDecay`). AdapTrans's
``separate_w=True`` gives the ON and the OFF pathway a weight each.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from strfsolver.nn.decay import LearnableExponentialDecay
from strfsolver.prefilters._registry import register
from strfsolver.prefilters.base import Prefilter
from strfsolver.prefilters.scales import center_frequencies, willmore_time_constants
from strfsolver.utils.checks import short_repr

__all__ = ["ICAdaptation", "AdapTrans"]


class _BandPrefilter(Prefilter):
    def __init__(self, n_freqs, dt_ms=5.0, n_channels=1, f_min=500.0, f_max=16000.0, scale="log", tau_init=None, kernel_size=None,
                 species="human"):
        super().__init__(n_freqs, dt_ms, n_channels)
        self.f_min, self.f_max, self.scale, self.species = float(f_min), float(f_max), scale, species
        self.tau_init, self.kernel_size = tau_init, kernel_size
        centres = center_frequencies(self.n_freqs, self.f_min, self.f_max, scale, species=species)
        self.register_buffer("center_frequencies", centres.float(), persistent=False)

    def per_band(self, value, name: str, low: float, high: float = math.inf) -> Tensor:
        """``value`` (a number, ``(F,)`` or ``(C, F)``) as a checked ``(C, F)`` tensor inside ``(low, high)``."""
        tensor = torch.as_tensor(value, dtype=torch.get_default_dtype())
        shape = (self.n_channels, self.n_freqs)
        if tensor.ndim > 2 or tensor.shape not in ((), (self.n_freqs,), shape):
            raise ValueError(f"{name} must be a number, ({self.n_freqs},) or {shape} per band, got shape {tuple(tensor.shape)}.")
        if not bool(((tensor > low) & (tensor < high)).all()):
            raise ValueError(f"{name} must lie in ({low}, {high}) in every band, got {short_repr(tensor.tolist())}.")
        return tensor.expand(shape).clone()

    def initial_time_constants(self) -> Tensor:
        """``(C, F)`` starting time constants (ms): ``tau_init``, else Willmore et al. (2016) per band."""
        if self.tau_init is not None:
            return self.per_band(self.tau_init, "tau_init", 0.0)
        return willmore_time_constants(self.center_frequencies).float().expand(self.n_channels, self.n_freqs).clone()


@register("willmore")
@register("icadaptation")
class ICAdaptation(_BandPrefilter):
    """Fixed midbrain adaptation: ``y[t] = relu(x[t] - m[t])`` in every band (Willmore et al. 2016).

    Args:
        n_freqs: Bands ``F``.
        dt_ms: Bin width in ms.
        n_channels: Input channels ``C`` (each filtered independently).
        f_min: Centre frequency of the lowest band (Hz).
        f_max: Centre frequency of the highest band (Hz).
        scale: Spacing of the bands: ``"log"``, ``"mel"``, ``"erb"``, ``"greenwood"`` or ``"linear"``.
        rectify: Apply the half-wave rectification.
        tau_init: Time constants (ms) per band instead of the Willmore map.
        kernel_size: ``None`` (infinite average) or deepSTRF's ``K``-tap filter (``K >= 2``).
        species: Greenwood constants for ``scale="greenwood"`` (``"human"``, ``"cat"``, ``"mouse"``).
    """

    def __init__(self, n_freqs, dt_ms=5.0, n_channels=1, f_min=500.0, f_max=16000.0, scale="log", rectify=True,
                 tau_init=None, kernel_size=None, species="human"):
        super().__init__(n_freqs, dt_ms, n_channels, f_min, f_max, scale, tau_init, kernel_size, species)
        self.rectify = bool(rectify)
        self.average = LearnableExponentialDecay(
            (self.n_channels, self.n_freqs), self.initial_time_constants(), self.dt_ms, learnable=False,
            include_current=False, initial="first", kernel_size=kernel_size,
        )

    @property
    def time_constants(self) -> Tensor:
        """``(C, F)`` time constants in ms."""
        return self.average.tau_ms

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, F, T)`` -> ``(B, C, F, T)``."""
        self._check(x)
        y = x - self.average(x)
        return torch.relu(y) if self.rectify else y


@register("adaptrans")
class AdapTrans(_BandPrefilter):
    """Learnable ON/OFF adaptation (Rançon et al. 2024): ``(B, C, F, T)`` -> ``(B, 2C, F, T)``.

    Per input channel and band, learnable ``tau_on``, ``tau_off`` (ms) and a
    weight ``w = sigmoid(raw_w)`` in (0, 1):

        ON[t]  = relu(x[t] - w * m_on[t])
        OFF[t] = relu(m_off[t] - w * x[t])

    with ``m`` the past exponential average of the module doc. Output
    channels ``0 .. C-1`` are ON, ``C .. 2C-1`` OFF.

    Args:
        n_freqs: Bands ``F``.
        dt_ms: Bin width in ms.
        n_channels: Input channels ``C``.
        f_min: Centre frequency of the lowest band (Hz).
        f_max: Centre frequency of the highest band (Hz).
        scale: Spacing of the bands (see :py:func:`~strfsolver.prefilters.scales.center_frequencies`).
        w_init: Starting value of ``w`` (in (0, 1)): a number, ``(F,)`` or ``(C, F)``.
        learnable: Learn the time constants and ``w`` (else they stay at their start values).
        rectify: Apply the half-wave rectification.
        tau_init: Time constants (ms) per band instead of the Willmore map
            (ON and OFF start equal; they are separate parameters).
        kernel_size: ``None`` (infinite average) or deepSTRF's ``K``-tap filter (``K >= 2``).
        separate_w: A weight for the ON pathway and another for the OFF one
            (``raw_w_off``) instead of one shared ``w``.
        species: Greenwood constants for ``scale="greenwood"`` (``"human"``, ``"cat"``, ``"mouse"``).
    """

    channels_per_input = 2

    def __init__(self, n_freqs, dt_ms=5.0, n_channels=1, f_min=500.0, f_max=16000.0, scale="log", w_init=0.75,
                 learnable=True, rectify=True, tau_init=None, kernel_size=None, separate_w=False, species="human"):
        super().__init__(n_freqs, dt_ms, n_channels, f_min, f_max, scale, tau_init, kernel_size, species)
        self.rectify, self.separate_w = bool(rectify), bool(separate_w)
        tau = self.initial_time_constants()
        shape = (self.n_channels, self.n_freqs)
        options = dict(learnable=learnable, include_current=False, initial="first", kernel_size=kernel_size)
        self.on_average = LearnableExponentialDecay(shape, tau, self.dt_ms, **options)
        self.off_average = LearnableExponentialDecay(shape, tau, self.dt_ms, **options)
        start = self.per_band(w_init, "w_init", 0.0, 1.0)
        raw_w = torch.log(start / (1.0 - start))
        for name in ("raw_w", "raw_w_off") if self.separate_w else ("raw_w",):
            if learnable:
                setattr(self, name, nn.Parameter(raw_w.clone()))
            else:
                self.register_buffer(name, raw_w.clone())

    @property
    def w(self) -> Tensor:
        """``(C, F)`` weights of the adapted average, in (0, 1) (the ON pathway's with ``separate_w``)."""
        return torch.sigmoid(self.raw_w)

    @property
    def w_off(self) -> Tensor:
        """``(C, F)`` the OFF pathway's weights (:py:attr:`w` unless ``separate_w``)."""
        return torch.sigmoid(self.raw_w_off) if self.separate_w else self.w

    @property
    def time_constants(self):
        """``(tau_on, tau_off)``, each ``(C, F)`` in ms."""
        return self.on_average.tau_ms, self.off_average.tau_ms

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, F, T)`` -> ``(B, 2C, F, T)`` (ON channels, then OFF channels)."""
        self._check(x)
        on = x - self.w[..., None] * self.on_average(x)
        off = self.off_average(x) - self.w_off[..., None] * x
        y = torch.cat([on, off], dim=1)
        return torch.relu(y) if self.rectify else y
