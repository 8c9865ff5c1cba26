"""Several recording sessions whose neurons share rectified subunits: :py:func:`synthetic_multisession`.

The ground truth a shared core is meant to find. ``K`` subunits, each a
causal STRF followed by a rectifier, are common to every session; each
neuron of each session mixes a few of them and passes the mix through its
own softplus. Every session hears its own stimuli and records its own
neurons, so no session alone shows the subunits as clearly as all of them
together. For subunit k, neuron n of session s and a stimulus::

    z[k, t]    = (sum_{f, l} strf[k, 0, f, l] * stim[f, t - l]) / scale[k]   (unit variance on reference stimuli)
    h[k, t]    = relu(z[k, t] - threshold[k])
    rate[n, t] = softplus(gain[n] * sum_k weight[n, k] * h[k, t] + bias[n])   (spikes per bin)

and Poisson counts with the per-repeat gain of
:py:mod:`strfsolver.data.synthetic` (``noise``). The subunits' scales and
the neurons' gains and biases are calibrated on reference stimuli of the
same family, drawn apart from every session's, so a session's truth does
not depend on which other sessions are drawn. Every random number comes
from NumPy generators spawned from ``seed``; session ``i`` draws from the
``i``-th child stream, so adding sessions leaves the earlier ones as they were.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import Tensor

from strfsolver.data.collate import neural_collate
from strfsolver.data.dataset import NeuralDataset
from strfsolver.data.sessions import check_session_name
from strfsolver.data.synthetic import MEAN_RATE_HZ, _calibrate_bias, _causal_drive, _check_times, poisson_responses
from strfsolver.data.synthetic_draws import STIMULUS_FAMILIES, draw_strfs
from strfsolver.utils.checks import as_float32, check_count, check_real, check_tensor_size, short_repr

__all__ = ["SyntheticSessions", "synthetic_multisession"]

#: reference stimuli the subunit scales, gains and biases are calibrated on
_REFERENCE_STIMULI = 8
#: subunits each neuron mixes (at most ``n_subunits``)
_SUBUNITS_PER_NEURON = 3
#: chance that a mixed subunit inhibits the neuron (a negative weight)
_INHIBITORY_FRACTION = 0.25

Draw = Callable[[np.random.Generator, int, int, float], np.ndarray]


def _session_sizes(value, name: str, sessions: Sequence[str] = ()) -> Dict[str, int]:
    """``{session: count}`` from a mapping, a sequence (sessions ``s0``, ``s1``, ...) or one count for every session."""
    if isinstance(value, Mapping):
        if not value:
            raise ValueError(f"{name} must name at least one session, got an empty mapping.")
        for key in value:
            check_session_name(key, name)
        sizes = {key: check_count(count, f"{name}[{key!r}]", 1) for key, count in value.items()}
    elif isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"{name} must hold at least one session's count, got an empty sequence.")
        sizes = {f"s{i}": check_count(count, f"{name}[{i}]", 1) for i, count in enumerate(value)}
    elif sessions:
        count = check_count(value, name, 1)
        return {session: count for session in sessions}
    else:
        raise ValueError(f"{name} must be a mapping {{session: count}} or a sequence of counts, got {short_repr(value)}.")
    if sessions and list(sizes) != list(sessions):
        raise ValueError(f"{name} names the sessions {list(sizes)}, but n_neurons names {list(sessions)}; give the same sessions in the same order.")
    return sizes


def _check_family(stimuli) -> Tuple[Draw, str]:
    if isinstance(stimuli, str):
        if stimuli not in STIMULUS_FAMILIES:
            raise ValueError(f"unknown stimulus family {short_repr(stimuli)}; expected one of {sorted(STIMULUS_FAMILIES)} "
                             "or a callable draw(rng, n_freqs, n_bins, dt_ms) -> (F, T) array.")
        return STIMULUS_FAMILIES[stimuli], stimuli
    if callable(stimuli):
        return stimuli, getattr(stimuli, "__name__", type(stimuli).__name__)
    raise ValueError(f"stimuli must be one of {sorted(STIMULUS_FAMILIES)} or a callable, got {short_repr(stimuli)}.")


def _draw_stimuli(draw: Draw, rng_seq: np.random.SeedSequence, count: int, n_freqs: int, low: int, high: int, dt_ms: float) -> List[Tensor]:
    stims = []
    for index, rng in enumerate(map(np.random.default_rng, rng_seq.spawn(count))):
        bins = int(rng.integers(low, high + 1))
        stim = np.asarray(draw(rng, n_freqs, bins, dt_ms))
        if stim.shape != (n_freqs, bins):
            raise ValueError(f"the stimulus family returned shape {stim.shape} for stimulus {index}; expected (n_freqs, n_bins) = ({n_freqs}, {bins}).")
        stims.append(torch.from_numpy(np.ascontiguousarray(as_float32(stim, f"stimulus {index} of the family"))).float())
    return stims


@dataclass
class SyntheticSessions:
    """Data and ground truth of :py:func:`synthetic_multisession`.

    Attributes:
        datasets: ``{session: NeuralDataset}``, each with its own stimuli and neurons.
        subunit_strfs: ``(K, 1, F, L)`` STRFs of the shared subunits (peak |value| 1).
        subunit_scale: ``(K,)`` standard deviation of each subunit's drive on the reference stimuli.
        subunit_threshold: ``(K,)`` threshold of each subunit's rectifier, in units of that scale.
        weights: ``{session: (N_s, K)}`` how each neuron mixes the subunits (zero for those it ignores).
        gain: ``{session: (N_s,)}`` gain of each neuron's mix.
        bias: ``{session: (N_s,)}`` offset before each neuron's softplus.
        stimuli: The stimulus family's name.
        noise: The ``noise`` argument.
        seed: The seed everything was drawn from.
    """

    datasets: Dict[str, NeuralDataset]
    subunit_strfs: Tensor
    subunit_scale: Tensor
    subunit_threshold: Tensor
    weights: Dict[str, Tensor]
    gain: Dict[str, Tensor]
    bias: Dict[str, Tensor]
    stimuli: str
    noise: float = 1.0
    seed: int = 0

    @property
    def sessions(self) -> List[str]:
        """The session names, in order."""
        return list(self.datasets)

    @property
    def n_neurons(self) -> Dict[str, int]:
        """``{session: N_s}``: what a model of these sessions takes as ``n_neurons``."""
        return {name: int(weights.shape[0]) for name, weights in self.weights.items()}

    @property
    def n_subunits(self) -> int:
        return int(self.subunit_strfs.shape[0])

    @property
    def n_freqs(self) -> int:
        return int(self.subunit_strfs.shape[2])

    @property
    def n_lags(self) -> int:
        return int(self.subunit_strfs.shape[3])

    @property
    def dt_ms(self) -> float:
        return next(iter(self.datasets.values())).dt_ms

    def _check_session(self, session: str) -> str:
        if session not in self.weights:
            raise ValueError(f"unknown session {short_repr(session)}; the sessions are {self.sessions}.")
        return session

    def subunits(self, stims) -> Tensor:
        """``(B, K, T)`` rectified subunit outputs of ``(B, F, T)`` (or ``(B, 1, F, T)``) stimuli."""
        x = torch.as_tensor(as_float32(stims if isinstance(stims, Tensor) else np.asarray(stims), "stims"))
        if x.ndim == 3:
            x = x[:, None]
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] != self.n_freqs:
            raise ValueError(f"stims have shape {tuple(x.shape)}; expected (B, {self.n_freqs}, T) or (B, 1, {self.n_freqs}, T).")
        drive = _causal_drive(self.subunit_strfs, x) / self.subunit_scale[None, :, None]
        return torch.relu(drive - self.subunit_threshold[None, :, None])

    def predict(self, stims, session: str) -> Tensor:
        """The true rates of ``session``'s neurons, shaped like a model's output: ``(B, N_s, 1, T)``."""
        session = self._check_session(session)
        mix = torch.einsum("nk,bkt->bnt", self.weights[session], self.subunits(stims))
        return nnf.softplus(self.gain[session][:, None] * mix + self.bias[session][:, None]).unsqueeze(2)

    def truth_cc_norm(self, session: str, dataset: NeuralDataset = None) -> Tensor:
        """``(N_s,)`` normalized correlation of ``session``'s true rates with the responses of
        ``dataset`` (default: the session's own): the ceiling a perfect model reaches on them."""
        from strfsolver import metrics

        dataset = self.datasets[self._check_session(session)] if dataset is None else dataset
        batch = neural_collate([dataset[i] for i in range(len(dataset))])
        return metrics.normalized_corrcoef(self.predict(batch["stims"], session), batch["responses"], reduction="none")


def synthetic_multisession(
    n_neurons: Union[Sequence[int], Mapping[str, int]] = (20, 35),
    n_stims: Union[int, Sequence[int], Mapping[str, int]] = 12,
    n_subunits: int = 6,
    n_repeats: int = 8,
    n_freqs: int = 16,
    n_lags: int = 12,
    n_times: Union[int, Tuple[int, int]] = 300,
    dt_ms: float = 5.0,
    stimuli: Union[str, Draw] = "spectrogram",
    noise: float = 1.0,
    seed: int = 0,
) -> SyntheticSessions:
    """Draw sessions of neurons that mix shared rectified subunits, each session with its own stimuli.

    Each neuron mixes ``min(3, n_subunits)`` subunits picked at random, with
    weights in [0.3, 1] (a quarter of them negative: inhibition); its gain
    sets a softplus contrast like :py:func:`~strfsolver.data.synthetic_population`'s
    and its bias a mean rate drawn log-uniformly in 40-200 Hz. A per-session
    linear-nonlinear model cannot express a mix of rectified subunits; a
    model with a shared core of rectified STRF units (``"nrf"`` with
    ``hidden_activation="relu"``) can, and learns the core from every session.

    Args:
        n_neurons: Neurons per session: a mapping ``{session: N_s}`` or a
            sequence of counts (sessions ``"s0"``, ``"s1"``, ...).
        n_stims: Stimuli per session: one count for all, or per session (a
            sequence, or a mapping with the same sessions).
        n_subunits: K, the shared subunits.
        n_repeats: Repeats of every stimulus.
        n_freqs: Frequency bands.
        n_lags: Lags of the subunit STRFs.
        n_times: Bins per stimulus, or ``(min, max)`` for lengths drawn uniformly.
        dt_ms: Bin width in milliseconds.
        stimuli: The stimulus family: ``"spectrogram"`` (the default, the
            sound events of :py:func:`~strfsolver.data.synthetic_draws.draw_spectrogram`),
            ``"ripples"`` (dynamic moving ripples in dB,
            :py:func:`~strfsolver.data.synthetic_draws.draw_ripples`) or a callable
            ``draw(rng, n_freqs, n_bins, dt_ms) -> (F, T)`` array.
        noise: Trial-to-trial gain variability beyond Poisson (>= 0).
        seed: Everything is a function of this seed (and the sizes).

    Returns:
        A :py:class:`SyntheticSessions`.

    Raises:
        ValueError: for a bad size, session name, family, ``dt_ms``, ``noise`` or seed.
    """
    neurons = _session_sizes(n_neurons, "n_neurons")
    stim_counts = _session_sizes(n_stims, "n_stims", list(neurons))
    n_subunits = check_count(n_subunits, "n_subunits", 1)
    n_repeats = check_count(n_repeats, "n_repeats", 1)
    n_freqs = check_count(n_freqs, "n_freqs", 1)
    n_lags = check_count(n_lags, "n_lags", 1)
    low, high = _check_times(n_times)
    dt_ms = check_real(dt_ms, "dt_ms", 0.0, low_open=True)
    noise = check_real(noise, "noise", 0.0)
    seed = check_count(seed, "seed", 0)
    draw, family = _check_family(stimuli)
    check_tensor_size(dict(n_subunits=n_subunits, n_freqs=n_freqs, n_lags=n_lags), "the subunit STRFs")
    for name, count in neurons.items():
        check_tensor_size(dict(n_neurons=count, n_repeats=n_repeats, n_times=high), f"the responses of session {name!r} to one stimulus")
        check_tensor_size(dict(n_stims=stim_counts[name], n_freqs=n_freqs, n_times=high), f"the stimuli of session {name!r}")

    truth_seq, reference_seq, sessions_seq = np.random.SeedSequence(seed).spawn(3)
    truth_rng = np.random.default_rng(truth_seq)
    shapes, _, _ = draw_strfs(truth_rng, n_subunits, n_freqs, n_lags, dt_ms)
    strfs = torch.from_numpy(shapes).float()[:, None]  # (K, 1, F, L)
    threshold = torch.from_numpy(truth_rng.uniform(0.0, 1.0, n_subunits)).float()
    reference = torch.cat([_causal_drive(strfs, s[None, None])[0] for s in
                           _draw_stimuli(draw, reference_seq, _REFERENCE_STIMULI, n_freqs, high, high, dt_ms)], dim=1)
    scale = reference.std(1).clamp(min=1e-12)
    truth = SyntheticSessions(datasets={}, subunit_strfs=strfs, subunit_scale=scale, subunit_threshold=threshold,
                              weights={}, gain={}, bias={}, stimuli=family, noise=noise, seed=seed)
    reference_subunits = torch.relu(reference / scale[:, None] - threshold[:, None])  # (K, T)
    picked = min(_SUBUNITS_PER_NEURON, n_subunits)
    for (name, count), session_seq in zip(neurons.items(), sessions_seq.spawn(len(neurons))):
        stim_seq, neuron_seq, noise_seq = session_seq.spawn(3)
        rng = np.random.default_rng(neuron_seq)
        chosen = np.argsort(rng.uniform(size=(count, n_subunits)), axis=1)[:, :picked]  # distinct subunits per neuron
        signs = np.where(rng.uniform(size=(count, picked)) < _INHIBITORY_FRACTION, -1.0, 1.0)
        signs[np.arange(count), rng.integers(picked, size=count)] = 1.0  # every neuron is driven by at least one subunit
        weights = np.zeros((count, n_subunits))
        np.put_along_axis(weights, chosen, signs * rng.uniform(0.3, 1.0, (count, picked)), axis=1)
        weights = torch.from_numpy(weights).float()
        target = torch.from_numpy(np.exp(rng.uniform(*np.log(MEAN_RATE_HZ), count)) * dt_ms / 1000).float()
        contrast = torch.from_numpy(rng.uniform(0.7, 1.3, count)).float()
        mix = weights @ reference_subunits  # (N, T)
        gain = contrast * target.clamp(min=1.0) / mix.std(1).clamp(min=1e-12)
        truth.weights[name], truth.gain[name] = weights, gain
        truth.bias[name] = _calibrate_bias(nnf.softplus, gain[:, None] * mix, target)
        stims = _draw_stimuli(draw, stim_seq, stim_counts[name], n_freqs, low, high, dt_ms)
        rates = [truth.predict(s[None], name)[0, :, 0] for s in stims]
        responses = poisson_responses(rates, n_repeats, noise, np.random.default_rng(noise_seq))
        meta = [{"index": i, "source": "synthetic-multisession", "session": name, "seed": seed} for i in range(len(stims))]
        truth.datasets[name] = NeuralDataset(stims, responses, dt_ms, meta=meta)
    return truth
