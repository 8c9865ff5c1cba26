import numpy as np
import pytest
import torch

from strfsolver.data import NeuralDataset, SyntheticSessions, synthetic_multisession
from strfsolver.data.synthetic import MEAN_RATE_HZ
from strfsolver.data.synthetic_draws import draw_ripples, draw_spectrogram

SMALL = dict(n_neurons=(5, 7), n_stims=4, n_subunits=4, n_repeats=3, n_freqs=10, n_lags=6, n_times=120)


def test_sessions_shapes_and_truth():
    truth = synthetic_multisession(**SMALL, seed=1)
    assert isinstance(truth, SyntheticSessions) and truth.sessions == ["s0", "s1"]
    assert truth.n_neurons == {"s0": 5, "s1": 7}
    assert truth.subunit_strfs.shape == (4, 1, 10, 6) and (truth.n_subunits, truth.n_freqs, truth.n_lags) == (4, 10, 6)
    for name, count in truth.n_neurons.items():
        data = truth.datasets[name]
        assert isinstance(data, NeuralDataset) and (data.n_stims, data.n_neurons, data.n_freqs) == (4, count, 10)
        assert truth.weights[name].shape == (count, 4)
        # every neuron mixes three distinct subunits, at least one of them exciting it
        assert ((truth.weights[name] != 0).sum(1) == 3).all() and (truth.weights[name].amax(1) > 0).all()
        assert all(m["session"] == name for m in data.meta)
        pred = truth.predict(torch.stack(data.stims), name)
        assert pred.shape == (4, count, 1, 120) and (pred >= 0).all()


def test_each_session_has_its_own_stimuli_and_adding_sessions_keeps_the_others():
    two = synthetic_multisession(**SMALL, seed=2)
    assert not torch.equal(two.datasets["s0"].stims[0], two.datasets["s1"].stims[0])
    three = synthetic_multisession(**{**SMALL, "n_neurons": (5, 7, 3)}, seed=2)
    for name in ("s0", "s1"):
        for a, b in zip(two.datasets[name].stims + two.datasets[name].responses,
                        three.datasets[name].stims + three.datasets[name].responses):
            assert torch.equal(a, b)
    assert torch.equal(two.subunit_strfs, three.subunit_strfs)
    other = synthetic_multisession(**SMALL, seed=3)
    assert not torch.equal(two.subunit_strfs, other.subunit_strfs)


def test_named_sessions_and_counts_per_session():
    truth = synthetic_multisession(**{**SMALL, "n_neurons": {"mouse1": 4, "mouse2": 6}, "n_stims": {"mouse1": 3, "mouse2": 5}}, seed=0)
    assert truth.sessions == ["mouse1", "mouse2"]
    assert [truth.datasets[s].n_stims for s in truth.sessions] == [3, 5]
    with pytest.raises(ValueError, match=r"n_stims names the sessions \['a'\], but n_neurons names \['mouse1', 'mouse2'\]"):
        synthetic_multisession(**{**SMALL, "n_neurons": {"mouse1": 4, "mouse2": 6}, "n_stims": {"a": 3}})
    with pytest.raises(ValueError, match="n_neurons must be a mapping"):
        synthetic_multisession(**{**SMALL, "n_neurons": 5})
    with pytest.raises(ValueError, match="unknown stimulus family 'speech'"):
        synthetic_multisession(**SMALL, stimuli="speech")


def test_rates_and_ceiling():
    truth = synthetic_multisession(n_neurons=(30,), n_stims=6, n_repeats=20, n_times=300, seed=4)
    data = truth.datasets["s0"]
    mean_hz = torch.stack([r.mean(dim=(1, 2)) for r in data.responses]).mean(0) * 1000 / data.dt_ms
    assert MEAN_RATE_HZ[0] * 0.6 < float(mean_hz.median()) < MEAN_RATE_HZ[1] * 1.2
    ceiling = truth.truth_cc_norm("s0")
    assert ceiling.shape == (30,) and float(ceiling.median()) > 0.9
    with pytest.raises(ValueError, match="unknown session 's9'"):
        truth.truth_cc_norm("s9")


def test_the_stimulus_family_is_a_parameter():
    spectrograms = synthetic_multisession(**SMALL, seed=5)
    ripples = synthetic_multisession(**SMALL, stimuli="ripples", seed=5)
    assert ripples.stimuli == "ripples" and spectrograms.stimuli == "spectrogram"
    # another family on another scale: dB ripples around 60, log spectrograms below 1.5
    assert float(torch.stack(spectrograms.datasets["s0"].stims).max()) < 1.5
    assert 40 < float(torch.stack(ripples.datasets["s0"].stims).mean()) < 80
    # the truth is calibrated on its own family: rates stay in range on either
    for truth in (spectrograms, ripples):
        assert float(truth.truth_cc_norm("s1").median()) > 0.5

    def flat(rng, n_freqs, n_bins, dt_ms):
        return np.full((n_freqs, n_bins), 2.0) + rng.uniform(size=(n_freqs, n_bins))

    custom = synthetic_multisession(**SMALL, stimuli=flat, seed=5)
    assert custom.stimuli == "flat" and 2.0 <= float(torch.stack(custom.datasets["s0"].stims).min())
    with pytest.raises(ValueError, match=r"returned shape \(3,\)"):
        synthetic_multisession(**SMALL, stimuli=lambda rng, f, t, dt: np.zeros(3))


def test_ripples_move():
    rng = np.random.default_rng(0)
    ripples = draw_ripples(rng, 16, 400, 5.0)
    assert ripples.shape == (16, 400) and np.isfinite(ripples).all()
    # dense in time (never silent) and changing from bin to bin, unlike a sound event's plateau
    assert ripples.std(axis=0).min() > 1.0
    assert np.abs(np.diff(ripples, axis=1)).mean() > 0.5
    assert draw_spectrogram(np.random.default_rng(0), 16, 400, 5.0).max() < 1.5
