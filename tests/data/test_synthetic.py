import numpy as np
import pytest
import torch

from strfsolver.data import NeuralDataset, SyntheticPopulation, synthetic_population
from strfsolver.data.synthetic import MEAN_RATE_HZ

SMALL = dict(n_neurons=6, n_stims=4, n_repeats=3, n_freqs=12, n_lags=8, n_times=120)


@pytest.fixture(scope="module")
def population():
    return synthetic_population(n_neurons=24, n_stims=12, n_repeats=20, n_times=400, seed=0)


def test_shapes_and_types():
    pop = synthetic_population(**SMALL, dt_ms=2.5, seed=1)
    assert isinstance(pop, SyntheticPopulation) and isinstance(pop.dataset, NeuralDataset)
    data = pop.dataset
    assert (data.n_stims, data.n_neurons, data.n_freqs, data.dt_ms) == (4, 6, 12, 2.5)
    assert data.lengths == [120] * 4 and data.n_repeats == [3] * 4
    assert pop.strfs.shape == (6, 1, 12, 8) and pop.strfs.dtype == torch.float32
    assert pop.bias.shape == (6,)
    assert [r.shape for r in pop.rates] == [(6, 120)] * 4
    assert pop.best_frequencies.shape == pop.latencies_ms.shape == (6,)
    assert pop.freqs_hz.shape == (12,) and pop.freqs_hz[0] == 500 and abs(float(pop.freqs_hz[-1]) - 16000) < 1
    assert pop.nonlinearity_name == "softplus" and pop.nonlinearity is torch.nn.functional.softplus
    assert (pop.n_neurons, pop.n_freqs, pop.n_lags) == (6, 12, 8)
    for response in data.responses:
        assert (response >= 0).all() and torch.equal(response, response.round())  # spike counts


def test_variable_lengths():
    pop = synthetic_population(**{**SMALL, "n_times": (50, 90)}, seed=2)
    assert all(50 <= t <= 90 for t in pop.dataset.lengths)
    assert len(set(pop.dataset.lengths)) > 1
    assert [r.shape[1] for r in pop.rates] == pop.dataset.lengths


def test_deterministic_by_seed_without_global_rng():
    torch.manual_seed(0)
    np.random.seed(0)
    a = synthetic_population(**SMALL, seed=4)
    torch.manual_seed(1)
    np.random.seed(1)
    b = synthetic_population(**SMALL, seed=4)
    c = synthetic_population(**SMALL, seed=5)
    for x, y in zip(a.dataset.stims + a.dataset.responses, b.dataset.stims + b.dataset.responses):
        assert torch.equal(x, y)
    assert torch.equal(a.strfs, b.strfs) and torch.equal(a.bias, b.bias)
    assert not torch.equal(a.dataset.stims[0], c.dataset.stims[0])
    assert not torch.equal(a.strfs, c.strfs)
    # the stimuli do not depend on the population size
    d = synthetic_population(**{**SMALL, "n_neurons": 9}, seed=4)
    assert all(torch.equal(x, y) for x, y in zip(a.dataset.stims, d.dataset.stims))


def test_stimuli_are_spectrogram_like(population):
    stims = torch.stack(population.dataset.stims)  # (S, F, T)
    assert (stims > 0).all() and stims.max() <= 1.5
    assert 0.02 < float(stims.mean()) < 0.6
    # smooth: neighbouring bands and bins differ far less than independent values would
    # (for white noise the mean squared difference is twice the variance)
    variance = float(stims.var())
    assert float(stims.diff(dim=1).pow(2).mean()) < 0.5 * variance
    assert float(stims.diff(dim=2).pow(2).mean()) < 0.2 * variance
    # silences: bins where every band sits near the floor; onsets: sharp rises after them
    loudest = stims.amax(dim=1)  # (S, T)
    silent = loudest < 0.1
    assert 0.05 < float(silent.float().mean()) < 0.8
    onsets = (loudest[:, 3:] - loudest[:, :-3] > 0.15) & silent[:, :-3]  # within 15 ms
    assert (onsets.sum(dim=1) >= 1).all()


def test_strfs_are_biologically_shaped(population):
    strfs = population.strfs[:, 0]  # (N, F, L)
    peak = strfs.flatten(1).amax(1)
    trough = strfs.flatten(1).amin(1)
    assert (peak > 0).all()
    assert (trough < -0.1 * peak).all()  # every neuron has an inhibitory part
    # best frequencies spread over the band, latencies vary
    best = strfs.flatten(1).argmax(1) // strfs.shape[-1]
    assert float(best.float().std()) > strfs.shape[1] / 6
    assert int(best.max() - best.min()) >= strfs.shape[1] // 2
    lag_of_peak = strfs.flatten(1).argmax(1) % strfs.shape[-1]
    assert len(set(lag_of_peak.tolist())) >= 3
    assert (lag_of_peak < strfs.shape[-1] // 2).all()  # excitation early, inhibition can come later
    torch.testing.assert_close(best.float(), population.best_frequencies, atol=1.01, rtol=0)


def test_rates_are_realistic_and_match_the_model(population):
    rates = torch.stack(population.rates)  # (S, N, T)
    mean = rates.mean(dim=(0, 2))
    low, high = (hz * population.dt_ms / 1000 for hz in MEAN_RATE_HZ)
    assert (mean > 0.85 * low).all() and (mean < 1.15 * high).all()
    cv = rates.std(dim=(0, 2)) / mean
    assert (cv > 0.2).all()  # the stimulus really drives the neurons
    for stim, rate in zip(population.dataset.stims, population.rates):
        torch.testing.assert_close(population.true_rates(stim), rate)
    batch = torch.stack(population.dataset.stims[:2])
    torch.testing.assert_close(population.predict(batch), rates[:2].unsqueeze(2))


def test_linear_drive_is_the_causal_strf_convolution():
    pop = synthetic_population(**SMALL, seed=3)
    stim = pop.dataset.stims[0][:, :30]
    strf = pop.strfs[:, 0]
    expected = torch.zeros(6, 30)
    for t in range(30):
        for lag in range(min(8, t + 1)):
            expected[:, t] += (strf[:, :, lag] * stim[:, t - lag]).sum(1)
    torch.testing.assert_close(pop.linear_drive(stim), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pop.linear_drive(stim[None])[0], expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=r"stims have shape \(5, 30\); expected \(12, T\)"):
        pop.linear_drive(stim[:5])


def test_truth_cc_norm_is_near_one_with_many_repeats(population):
    cc_norm = population.truth_cc_norm()
    cc = population.truth_cc()
    assert cc_norm.shape == cc.shape == (24,)
    assert float(cc_norm.median()) > 0.9
    assert float(cc_norm.min()) > 0.8
    # the raw correlation is capped by the Poisson noise, the normalized one is not
    assert float(cc.median()) < float(cc_norm.median())
    # works on a split too
    part = population.dataset.split([0.5, 0.5], seed=0)[1]
    assert float(population.truth_cc_norm(part).median()) > 0.85
    with pytest.raises(ValueError, match="dataset has 2 neurons and 32 bands; expected the population's 24"):
        population.truth_cc_norm(part.select_neurons([0, 1]))


def test_noise_scales_trial_to_trial_variability():
    def repeat_fano(noise):
        pop = synthetic_population(n_neurons=8, n_stims=4, n_repeats=30, n_freqs=12, n_lags=6, n_times=200, noise=noise, seed=6)
        totals = torch.stack([r.sum(-1) for r in pop.dataset.responses])  # (S, N, R) counts per trial
        return float((totals.var(-1) / totals.mean(-1)).median())

    pure, noisy = repeat_fano(0.0), repeat_fano(3.0)
    assert 0.6 < pure < 1.5  # Poisson: variance = mean
    assert noisy > 3 * pure


@pytest.mark.parametrize("name", ["softplus", "exp", "relu", "linear", "sigmoid"])
def test_every_nonlinearity(name):
    pop = synthetic_population(**{**SMALL, "n_repeats": 8}, nonlinearity=name, seed=7)
    rates = torch.stack(pop.rates)
    assert (rates >= 0).all() and torch.isfinite(rates).all()
    assert pop.nonlinearity_name == name
    if name == "sigmoid":
        assert float(rates.mean(dim=(0, 2)).max()) <= 0.41
    else:
        mean = rates.mean(dim=(0, 2))
        assert (mean > 0.85 * 0.2).all() and (mean < 1.15 * 1.0).all()
    assert float(pop.truth_cc_norm().median()) > 0.7


def test_callable_nonlinearity_and_errors():
    def squared_relu(x):
        return torch.relu(x) ** 2

    pop = synthetic_population(**SMALL, nonlinearity=squared_relu, seed=8)
    assert pop.nonlinearity is squared_relu and pop.nonlinearity_name == "squared_relu"
    with pytest.raises(ValueError, match="gave negative or non-finite rates for stimulus 0"):
        synthetic_population(**SMALL, nonlinearity=torch.tanh)
    with pytest.raises(ValueError, match="unknown nonlinearity 'cube'"):
        synthetic_population(**SMALL, nonlinearity="cube")
    with pytest.raises(ValueError, match="noise must be a number >= 0"):
        synthetic_population(**SMALL, noise=-1)
    with pytest.raises(ValueError, match="n_neurons must be an integer >= 1"):
        synthetic_population(**{**SMALL, "n_neurons": 0})
    with pytest.raises(ValueError, match=r"n_times = \(9, 5\) has max < min"):
        synthetic_population(**{**SMALL, "n_times": (9, 5)})
    with pytest.raises(ValueError, match="dt_ms must be a number > 0"):
        synthetic_population(**SMALL, dt_ms=0)
