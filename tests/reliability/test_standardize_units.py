"""Cause B of issue 19: the standardizer depends on the stimuli's shape, never on their unit."""

import pytest
import torch

import strfsolver
from strfsolver.data import NeuralDataset, make_loader, synthetic_population
from strfsolver.nn.standardize import MIN_RELATIVE_SCALE, StimulusStandardizer, stimulus_statistics


def _standardized(stims, train=None):
    mean, scale = stimulus_statistics(stims if train is None else train)
    return [(torch.as_tensor(s).double() - mean[0, :, None]) / scale[0, :, None] for s in stims]


@pytest.fixture(scope="module")
def bands():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(6, 800, generator=g, dtype=torch.float64) * 4 + 2
    x[1] = 0.0  # an all-zero band
    x[2] = 7.25  # an all-equal band
    x[3] = 5.0 + 1e-6 * x[3]  # a band whose sd is 1e-6 of the others'
    return [x[:, :500], x[:, 500:]]


@pytest.mark.parametrize("factor", [1e-12, 1e-9, 1e9, 1e12])
def test_a_global_rescaling_gives_the_same_standardized_stimuli(bands, factor):
    plain = _standardized(bands)
    scaled = _standardized([s * factor for s in bands])
    for a, b in zip(plain, scaled):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    # the usual bands come out with unit variance at every scale (W/m^2 data are standardized too)
    together = torch.cat(scaled, dim=1)
    torch.testing.assert_close(together[[0, 4, 5]].std(1), torch.ones(3, dtype=torch.float64))


def test_constant_bands_map_to_zero_and_a_quiet_band_gets_a_bounded_gain(bands):
    mean, scale = stimulus_statistics(bands)
    assert bool((scale > 0).all()) and bool(torch.isfinite(scale).all())
    out = torch.cat(_standardized(bands), dim=1)
    assert torch.equal(out[1], torch.zeros_like(out[1])) and torch.equal(out[2], torch.zeros_like(out[2]))
    typical = scale[0, [0, 4, 5]].median()
    # gain of the quiet band relative to a typical band: at most 1 / MIN_RELATIVE_SCALE (not 1e6)
    assert float(typical / scale[0, 3]) <= 1 / MIN_RELATIVE_SCALE * (1 + 1e-9)
    assert float(out[3].abs().max()) < 0.01
    # the same band varying at the others' level on new stimuli stays within 1/MIN_RELATIVE_SCALE of them
    fresh = bands[0].clone()
    fresh[3] = bands[0][0]
    new = (fresh - mean[0, :, None]) / scale[0, :, None]
    assert float(new[3].std()) <= 1.01 / MIN_RELATIVE_SCALE * float(new[0].std())


def test_all_constant_or_all_zero_stimuli_give_finite_positive_scales():
    for value in (0.0, 3e-9, 4e9):
        mean, scale = stimulus_statistics([torch.full((3, 20), value)])
        assert bool((scale > 0).all()) and bool(torch.isfinite(scale).all())
        layer = StimulusStandardizer(1, 3)
        layer.mean.copy_(mean.float())
        layer.scale.copy_(scale.float())
        assert torch.equal(layer(torch.full((1, 1, 3, 20), value)), torch.zeros(1, 1, 3, 20))


def test_a_small_signal_on_a_large_offset_is_not_constant():
    g = torch.Generator().manual_seed(0)
    x = 1e6 + 1e-3 * torch.randn(4, 600, generator=g, dtype=torch.float64)  # sd / mean = 1e-9 in every band
    mean, scale = stimulus_statistics([x])
    torch.testing.assert_close(scale[0], x.std(1))


@pytest.fixture(scope="module")
def small_population():
    pop = synthetic_population(n_neurons=4, n_stims=4, n_repeats=5, n_freqs=8, n_lags=6, n_times=300, seed=5)
    return pop.dataset.subset([0, 1]), pop.dataset.subset([2]), pop.dataset.subset([3])


def _fit_predict(data, factor):
    train, valid, test = (NeuralDataset([s * factor for s in d.stims], d.responses, d.dt_ms) for d in data)
    torch.manual_seed(0)
    model = strfsolver.models.init("linear", n_freqs=8, n_lags=6, n_neurons=4)
    solver = strfsolver.solver.init("population", model=model, max_epochs=3, progress=False)
    solver.fit(make_loader(train), make_loader(valid))
    with torch.no_grad():
        return solver.transform(test.stims[0][None])


def test_a_fit_in_small_or_large_physical_units_predicts_the_same(small_population):
    plain = _fit_predict(small_population, 1.0)
    for factor in (1e-9, 1e9):
        torch.testing.assert_close(_fit_predict(small_population, factor), plain, rtol=1e-3, atol=1e-4)
