"""Cause H of issue 19: sizes read from arguments or files are checked before anything of their
size is allocated or iterated, with a ValueError naming the size and its value."""

import time

import numpy as np
import pytest
import torch

import strfsolver
from strfsolver.data import load_npz, synthetic_population
from strfsolver.ridge.statistics import RidgeStatistics


@pytest.mark.parametrize("name", strfsolver.models.get_options())
@pytest.mark.parametrize("size, value", [("n_lags", 10**9), ("n_neurons", 10**9), ("n_freqs", 10**12)])
def test_a_model_with_an_absurd_size_fails_fast_naming_it(name, size, value):
    sizes = dict(n_freqs=16, n_lags=10, n_neurons=4)
    sizes[size] = value
    start = time.perf_counter()
    with pytest.raises(ValueError, match=rf"the STRF weights \(n_neurons, n_channels, n_freqs, n_lags\) would hold .* elements \(.*{size}={value}.*\); at most 2.15e\+09"):
        strfsolver.models.init(name, **sizes)
    assert time.perf_counter() - start < 1.0


def test_a_model_at_a_sane_size_is_built():
    model = strfsolver.models.init("linear", n_freqs=16, n_lags=10, n_neurons=4)
    assert model.n_lags == 10 and model.n_neurons == 4


def test_an_npz_declaring_more_stimuli_than_it_holds_is_refused_at_once(tmp_path):
    path = tmp_path / "lies.npz"
    np.savez(path, dt_ms=5.0, n_stims=np.int64(10**15), stim_0=np.ones((3, 8)), response_0=np.ones((1, 1, 8)))
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"lies.npz declares n_stims=1000000000000000 but lacks \['stim_1', 'response_1', 'stim_2', 'response_2'\] \(it holds 1 stim_i entries\)"):
        load_npz(path)
    assert time.perf_counter() - start < 1.0


def test_a_ridge_gram_too_large_is_refused_before_it_is_allocated():
    stats = RidgeStatistics(n_lags=5000)
    with pytest.raises(ValueError, match=r"the ridge Gram matrix of D = 64 features \(channels x bands\) x n_lags=5000 coefficients would hold 1.02e\+11 elements"):
        stats.add(torch.zeros(64, 20), torch.zeros(2, 20))
    assert stats.n_stimuli == 0


@pytest.mark.parametrize("size", ["n_neurons", "n_repeats", "n_stims"])
def test_a_synthetic_population_with_an_absurd_size_fails_fast(size):
    start = time.perf_counter()
    with pytest.raises(ValueError, match=rf"{size}=1000000000"):
        synthetic_population(**{size: 10**9})
    assert time.perf_counter() - start < 1.0
