"""A synthetic neural population with a known ground truth.

:py:func:`synthetic_population` draws spectrogram-like stimuli, one
linear-nonlinear-Poisson (LNP) neuron per STRF, and Poisson spike counts for
every repeat. Because the generating STRFs, biases, nonlinearity and rates are
returned with the data, a test can compare a fitted model with the truth and
compute the truth's own ``cc_norm``: the ceiling any model can reach on these
responses. It is the project's embedded default data set.

The generative model, for neuron n, stimulus s of length T and repeat r::

    drive[n, t] = sum_{f, l} strf[n, 0, f, l] * stim[f, t - l]     (zero before t = 0)
    rate[n, t]  = nonlinearity(drive[n, t] + bias[n])              (spikes per bin)
    gain[n, r]  = exp(sigma * (sqrt(1/2) z_shared[r] + sqrt(1/2) z_own[n, r]) - sigma**2 / 2)
    count[n, r, t] ~ Poisson(gain[n, r] * rate[n, t]),  sigma = 0.25 * noise

Every random number comes from NumPy generators spawned from ``seed``; the
global random state is neither read nor changed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import Tensor

from strfsolver.data.collate import neural_collate
from strfsolver.data.dataset import NeuralDataset
from strfsolver.data.synthetic_draws import FREQ_RANGE_HZ, draw_spectrogram, draw_strfs
from strfsolver.utils.checks import as_float32, check_count, check_real, check_tensor_size, short_repr

__all__ = ["SyntheticPopulation", "synthetic_population", "NONLINEARITIES"]

# -- response statistics -------------------------------------------------------------------
#: mean firing rates are drawn log-uniformly in this range (Hz): multi-unit-like activity
MEAN_RATE_HZ = (40.0, 200.0)
#: log-gain standard deviation of the per-repeat gain fluctuation at ``noise=1``
GAIN_SD_PER_NOISE = 0.25
# bounded nonlinearities cannot reach arbitrary means: keep their mean well below the bound
_SIGMOID_MAX_MEAN = 0.4
# bins used to calibrate biases; more adds time, not precision
_CALIBRATION_BINS = 5000


def _identity(x: Tensor) -> Tensor:
    return x


#: name -> nonlinearity applied to ``drive + bias`` (module-level functions, so they pickle)
NONLINEARITIES: Dict[str, Callable[[Tensor], Tensor]] = {
    "softplus": nnf.softplus,
    "exp": torch.exp,
    "relu": torch.relu,
    "linear": _identity,
    "sigmoid": torch.sigmoid,
}


# -- argument checks ----------------------------------------------------------------------------


def _check_times(n_times) -> Tuple[int, int]:
    if isinstance(n_times, (tuple, list)):
        if len(n_times) != 2:
            raise ValueError(f"n_times must be an int or a (min, max) pair, got {short_repr(n_times)}.")
        low = check_count(n_times[0], "n_times[0]", 1)
        high = check_count(n_times[1], "n_times[1]", 1)
        if high < low:
            raise ValueError(f"n_times = {tuple(n_times)} has max < min; expected (min, max) with min <= max.")
        return low, high
    value = check_count(n_times, "n_times", 1)
    return value, value


def _check_nonlinearity(nonlinearity) -> Tuple[Callable[[Tensor], Tensor], str]:
    if isinstance(nonlinearity, str):
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"unknown nonlinearity {short_repr(nonlinearity)}; expected one of {sorted(NONLINEARITIES)} or a callable.")
        return NONLINEARITIES[nonlinearity], nonlinearity
    if callable(nonlinearity):
        return nonlinearity, getattr(nonlinearity, "__name__", type(nonlinearity).__name__)
    raise ValueError(f"nonlinearity must be one of {sorted(NONLINEARITIES)} or a callable, got {short_repr(nonlinearity)}.")


def _causal_drive(strfs: Tensor, stims: Tensor) -> Tensor:
    """``(B, N, T)`` = sum_{c,f,l} strfs[n,c,f,l] * stims[b,c,f,t-l], zero before t = 0."""
    batch, channels, n_freqs, bins = stims.shape
    lags = strfs.shape[-1]
    x = nnf.pad(stims.reshape(batch, channels * n_freqs, bins), (lags - 1, 0))
    # conv1d correlates; flipping the lag axis turns it into the causal convolution
    weight = strfs.reshape(strfs.shape[0], channels * n_freqs, lags).flip(-1)
    return nnf.conv1d(x, weight)


def poisson_responses(rates: List[Tensor], n_repeats: int, noise: float, rng: np.random.Generator) -> List[np.ndarray]:
    """``(N, R, T_i)`` float32 Poisson counts of every stimulus' ``(N, T_i)`` rates, with the
    per-repeat log-normal gain of the module documentation (mean 1; half shared by all neurons
    in a repeat, half private) at log-standard deviation ``0.25 * noise``."""
    sigma = GAIN_SD_PER_NOISE * noise
    responses = []
    for rate in rates:
        shared = rng.standard_normal((1, n_repeats, 1))
        own = rng.standard_normal((rate.shape[0], n_repeats, 1))
        gain_r = np.exp(sigma * math.sqrt(0.5) * (shared + own) - sigma**2 / 2)
        responses.append(rng.poisson(gain_r * rate.double().numpy()[:, None, :]).astype(np.float32))
    return responses


def _calibrate_bias(nonlinearity, drive: Tensor, target: Tensor) -> Tensor:
    """Per-neuron bias b with mean_t nonlinearity(drive + b) = target, by bisection.

    Vectorized over neurons; assumes the nonlinearity is non-decreasing.
    """
    span = drive.abs().amax(1) + 30 * target.clamp(min=1) + 30
    low, high = -span, span.clone()
    for _ in range(40):  # the span shrinks 2**40-fold: well below float32 precision
        middle = (low + high) / 2
        above = nonlinearity(drive + middle[:, None]).mean(1) > target
        high = torch.where(above, middle, high)
        low = torch.where(above, low, middle)
    return (low + high) / 2


@dataclass
class SyntheticPopulation:
    """Data and ground truth of :py:func:`synthetic_population`.

    Attributes:
        dataset: The stimuli and Poisson responses.
        strfs: ``(N, 1, F, L)`` true STRFs (lag 0 = current bin).
        bias: ``(N,)`` biases added to the drive before the nonlinearity.
        rates: One ``(N, T_i)`` tensor of true rates (spikes per bin) per stimulus.
        nonlinearity: The function applied to ``drive + bias``.
        nonlinearity_name: Its name (``"softplus"``, ``"exp"``, ...).
        noise: The ``noise`` argument (trial-to-trial gain variability).
        seed: The seed everything was drawn from.
        best_frequencies: ``(N,)`` best frequency of each STRF, in bands (float).
        latencies_ms: ``(N,)`` latency of each excitatory subfield, in ms.
        freqs_hz: ``(F,)`` centre frequencies of the bands (log-spaced).
    """

    dataset: NeuralDataset
    strfs: Tensor
    bias: Tensor
    rates: List[Tensor]
    nonlinearity: Callable[[Tensor], Tensor]
    nonlinearity_name: str
    noise: float = 1.0
    seed: int = 0
    best_frequencies: Optional[Tensor] = None
    latencies_ms: Optional[Tensor] = None
    freqs_hz: Optional[Tensor] = field(default=None, repr=False)

    @property
    def n_neurons(self) -> int:
        return int(self.strfs.shape[0])

    @property
    def n_freqs(self) -> int:
        return int(self.strfs.shape[2])

    @property
    def n_lags(self) -> int:
        return int(self.strfs.shape[3])

    @property
    def dt_ms(self) -> float:
        return self.dataset.dt_ms

    def _as_batch(self, stims) -> Tuple[Tensor, bool]:
        """``(B, 1, F, T)`` float32 and whether the input was a single stimulus."""
        x = torch.as_tensor(as_float32(stims if isinstance(stims, Tensor) else np.asarray(stims), "stims"))
        single = x.ndim == 2
        if x.ndim == 2:
            x = x[None, None]
        elif x.ndim == 3:
            x = x[:, None]
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] != self.n_freqs:
            raise ValueError(
                f"stims have shape {tuple(torch.as_tensor(stims).shape)}; expected ({self.n_freqs}, T), "
                f"(B, {self.n_freqs}, T) or (B, 1, {self.n_freqs}, T)."
            )
        return x.to(self.strfs.device), single

    def linear_drive(self, stims) -> Tensor:
        """The STRFs' linear drive (no bias).

        Args:
            stims: ``(F, T)``, ``(B, F, T)`` or ``(B, 1, F, T)``.

        Returns:
            ``(N, T)`` for one stimulus, ``(B, N, T)`` for a batch.
        """
        x, single = self._as_batch(stims)
        drive = _causal_drive(self.strfs, x)
        return drive[0] if single else drive

    def true_rates(self, stim) -> Tensor:
        """``nonlinearity(linear_drive + bias)``, in spikes per bin; same shapes as :py:meth:`linear_drive`."""
        drive = self.linear_drive(stim)
        return self.nonlinearity(drive + self.bias[:, None])

    def predict(self, stims) -> Tensor:
        """The true rates shaped like a model's output: ``(B, F, T)`` -> ``(B, N, 1, T)``."""
        x, _ = self._as_batch(stims)
        return self.true_rates(x).unsqueeze(2)

    def _truth_and_responses(self, dataset: Optional[NeuralDataset]) -> Tuple[Tensor, Tensor]:
        dataset = self.dataset if dataset is None else dataset
        if not isinstance(dataset, NeuralDataset):
            raise ValueError(f"dataset must be a NeuralDataset, got {type(dataset).__name__}.")
        if dataset.n_neurons != self.n_neurons or dataset.n_freqs != self.n_freqs or dataset.stim_ndim != 2:
            raise ValueError(
                f"dataset has {dataset.n_neurons} neurons and {dataset.n_freqs} bands; expected the population's "
                f"{self.n_neurons} neurons and {self.n_freqs} bands with (F, T) stimuli."
            )
        batch = neural_collate([dataset[i] for i in range(len(dataset))])
        # padded bins get a prediction too, but their responses are NaN so no metric sees them
        return self.predict(batch["stims"]), batch["responses"]

    def truth_cc_norm(self, dataset: Optional[NeuralDataset] = None, method: str = "schoppe") -> Tensor:
        """``(N,)`` normalized correlation of the true rates with the responses.

        The ceiling a perfect model reaches on these (noisy, finite) responses;
        close to 1 with enough repeats.

        Args:
            dataset: Defaults to :py:attr:`dataset`; any dataset with the same
                neurons and bands (a split, new stimuli...).
            method: ``"schoppe"`` or ``"hsu"``, see :py:func:`strfsolver.metrics.normalized_corrcoef`.
        """
        from strfsolver import metrics

        pred, responses = self._truth_and_responses(dataset)
        return metrics.normalized_corrcoef(pred, responses, method=method, reduction="none")

    def truth_cc(self, dataset: Optional[NeuralDataset] = None) -> Tensor:
        """``(N,)`` raw correlation of the true rates with the PSTHs."""
        from strfsolver import metrics

        pred, responses = self._truth_and_responses(dataset)
        return metrics.corrcoef(pred, responses, reduction="none")


def synthetic_population(
    n_neurons: int = 32,
    n_stims: int = 20,
    n_repeats: int = 10,
    n_freqs: int = 32,
    n_lags: int = 20,
    n_times: Union[int, Tuple[int, int]] = 500,
    dt_ms: float = 5.0,
    nonlinearity: Union[str, Callable[[Tensor], Tensor]] = "softplus",
    noise: float = 1.0,
    seed: int = 0,
) -> SyntheticPopulation:
    """Draw a population of LNP neurons, their stimuli and their spike counts.

    **Stimuli** are log-compressed spectrograms in about [0.03, 1]: sequences
    of harmonic stacks, tones and noise bands with sharp onsets, gliding or
    steady frequencies, amplitude modulation and silent gaps, smooth in time
    and frequency. The F bands are log-spaced over 500 Hz to 16 kHz.

    **STRFs** have an excitatory subfield at a best frequency spread over the
    band (latency 10-35 ms, bandwidth 0.15-0.5 octave) and inhibition mixing
    delayed (same band, 15-40 ms later) and sideband (flanking bands) forms.

    **Rates** are ``nonlinearity(drive + bias)``. Each neuron's mean rate is
    drawn log-uniformly in 40-200 Hz (0.2-1 spikes per 5 ms bin; at most 0.4
    spikes per bin for ``"sigmoid"``) and its STRF gain sets how strongly the
    rate follows the stimulus; the bias is calibrated on the drawn stimuli to
    hit the mean. ``"linear"`` is the identity, with gains kept small enough
    that every rate stays positive on the drawn stimuli. A callable must map
    any real drive to non-negative rates; it is calibrated like ``"softplus"``.

    **Responses** are Poisson counts with a per-repeat multiplicative gain:
    ``noise=0`` is pure Poisson; ``noise`` > 0 adds log-normal gain
    fluctuations of log-standard deviation ``0.25 * noise``, half shared by
    all neurons in a repeat and half private. The gain has mean 1, so the true
    rate stays the expected response and the truth's ``cc_norm`` stays near 1.

    Args:
        n_neurons: N, the number of neurons.
        n_stims: The number of stimuli.
        n_repeats: R, repeats of every stimulus.
        n_freqs: F, frequency bands.
        n_lags: L, lags of the STRFs (lag 0 = current bin).
        n_times: Bins per stimulus, or ``(min, max)`` for lengths drawn uniformly.
        dt_ms: Bin width in milliseconds.
        nonlinearity: ``"softplus"``, ``"exp"``, ``"relu"``, ``"linear"``,
            ``"sigmoid"`` or a callable on tensors.
        noise: Trial-to-trial variability beyond Poisson (>= 0).
        seed: Everything is a function of this seed (and the sizes).

    Returns:
        A :py:class:`SyntheticPopulation`.

    Raises:
        ValueError: For a bad size, ``dt_ms``, ``noise``, seed or nonlinearity,
            or a callable nonlinearity that yields negative or non-finite rates.
    """
    n_neurons = check_count(n_neurons, "n_neurons", 1)
    n_stims = check_count(n_stims, "n_stims", 1)
    n_repeats = check_count(n_repeats, "n_repeats", 1)
    n_freqs = check_count(n_freqs, "n_freqs", 1)
    n_lags = check_count(n_lags, "n_lags", 1)
    low, high = _check_times(n_times)
    dt_ms = check_real(dt_ms, "dt_ms", 0.0, low_open=True)
    noise = check_real(noise, "noise", 0.0)
    seed = check_count(seed, "seed", 0)
    function, name = _check_nonlinearity(nonlinearity)
    # sizes bounded before anything is drawn (n_neurons=10**9 fails at once, not in an allocation)
    check_tensor_size(dict(n_neurons=n_neurons, n_freqs=n_freqs, n_lags=n_lags), "the synthetic STRFs")
    check_tensor_size(dict(n_neurons=n_neurons, n_repeats=n_repeats, n_times=high), "the responses to one stimulus")
    check_tensor_size(dict(n_stims=n_stims, n_freqs=n_freqs, n_times=high), "the stimuli")

    # separate streams: the stimuli do not change with the number of neurons,
    # and the first k stimuli do not change with n_stims
    stim_seq, strf_seq, rate_seq, noise_seq = np.random.SeedSequence(seed).spawn(4)
    stims = []
    for stim_rng in map(np.random.default_rng, stim_seq.spawn(n_stims)):
        bins = int(stim_rng.integers(low, high + 1))
        stims.append(draw_spectrogram(stim_rng, n_freqs, bins, dt_ms))

    shapes, best, latency_ms = draw_strfs(np.random.default_rng(strf_seq), n_neurons, n_freqs, n_lags, dt_ms)
    strfs = torch.from_numpy(shapes).float()[:, None]  # (N, 1, F, L)
    stim_tensors = [torch.from_numpy(s).float() for s in stims]
    if low == high:
        raw = _causal_drive(strfs, torch.stack(stim_tensors)[:, None]).permute(1, 0, 2).reshape(n_neurons, -1)
    else:
        raw = torch.cat([_causal_drive(strfs, s[None, None])[0] for s in stim_tensors], dim=1)

    rate_rng = np.random.default_rng(rate_seq)
    mean_rate = np.exp(rate_rng.uniform(*np.log(MEAN_RATE_HZ), n_neurons)) * dt_ms / 1000  # spikes per bin
    if name == "sigmoid" and function is NONLINEARITIES["sigmoid"]:
        mean_rate = np.minimum(mean_rate, _SIGMOID_MAX_MEAN)
    target = torch.from_numpy(mean_rate).float()
    contrast = torch.from_numpy(rate_rng.uniform(0.7, 1.3, n_neurons)).float()
    raw_mean, raw_std = raw.mean(1), raw.std(1).clamp(min=1e-12)
    # a drive that does not vary (all stimuli silent, e.g. one-bin stimuli) has no
    # contrast to scale: such neurons get a zero gain and fire at their mean rate
    varies = raw_std > 1e-5 * raw.abs().amax(1).clamp(min=1e-12)
    if function is NONLINEARITIES["linear"]:
        # largest gain with the wanted contrast that keeps min rate >= 5% of the mean
        room = (raw_mean - raw.amin(1)).clamp(min=1e-12)
        gain = torch.minimum(0.6 * contrast * target / raw_std, 0.95 * target / room)
        gain = torch.where(varies, gain, 0.0)
        bias = target - gain * raw_mean
    else:
        if function is NONLINEARITIES["exp"]:
            drive_std = 0.7 * contrast  # log-rate units: rates vary by about a factor of 2
        elif function is NONLINEARITIES["sigmoid"]:
            drive_std = 1.5 * contrast  # logit units
        elif function is NONLINEARITIES["relu"]:
            drive_std = contrast * target  # relu is scale-free: contrast is the rate's CV
        else:
            # softplus behaves like exp below ~1 spike per bin and like relu above
            drive_std = contrast * target.clamp(min=1.0)
        gain = torch.where(varies, drive_std / raw_std, 0.0)
        sample = raw[:, :: max(1, raw.shape[1] // _CALIBRATION_BINS)]
        bias = _calibrate_bias(function, gain[:, None] * sample, target)

    population = SyntheticPopulation(
        dataset=None,  # filled below, once the responses exist
        strfs=(strfs * gain[:, None, None, None]).float(),
        bias=bias.float(),
        rates=[],
        nonlinearity=function,
        nonlinearity_name=name,
        noise=noise,
        seed=seed,
        best_frequencies=torch.from_numpy(best).float(),
        latencies_ms=torch.from_numpy(latency_ms).float(),
        freqs_hz=torch.from_numpy(np.geomspace(*FREQ_RANGE_HZ, n_freqs)).float(),
    )
    stims32 = stim_tensors
    if low == high:
        rates = list(population.true_rates(torch.stack(stims32)).unbind(0))
    else:
        rates = [population.true_rates(s) for s in stims32]
    for i, rate in enumerate(rates):
        if not bool(torch.isfinite(rate).all()) or bool((rate < 0).any()):
            raise ValueError(
                f"nonlinearity {short_repr(name)} gave negative or non-finite rates for stimulus {i} "
                f"(min {float(rate.min()):g}); Poisson counts need rates >= 0."
            )

    responses = poisson_responses(rates, n_repeats, noise, np.random.default_rng(noise_seq))
    population.dataset = NeuralDataset(
        stims32, responses, dt_ms, meta=[{"index": i, "source": "synthetic", "seed": seed} for i in range(n_stims)]
    )
    population.rates = rates
    return population
