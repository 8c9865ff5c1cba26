"""Cause L of issue 19: finite data beyond float32's range is named as such (never "non-finite"),
and scores are computed in float64 whatever the data's dtype."""

import datetime

import numpy as np
import pytest
import torch

from strfsolver.data import NeuralDataset, load_npz
from strfsolver.metrics import MetricAccumulator, available_metrics
from strfsolver.utils.checks import as_float32

BEYOND = r"finite but beyond float32's range \(max 3.4e\+38\); rescale it"


def test_a_stimulus_beyond_float32_is_named_with_its_position():
    stim = np.ones((4, 10))
    stim[2, 7] = 1e39
    with pytest.raises(ValueError, match=rf"^stimulus 0 holds 1e\+39 at index \(2, 7\): {BEYOND}"):
        NeuralDataset([stim], [np.ones((1, 1, 10))], 5.0)


def test_responses_beyond_float32_are_named_with_their_position_from_a_tensor_too():
    responses = torch.ones(2, 1, 10, dtype=torch.float64)
    responses[1, 0, 3] = -2e40
    with pytest.raises(ValueError, match=rf"responses for stimulus 0 holds -2e\+40 at index \(1, 0, 3\): {BEYOND}"):
        NeuralDataset([np.ones((4, 10))], [responses], 5.0)


def test_infinite_data_is_still_reported_as_non_finite():
    stim = np.ones((4, 10))
    stim[0, 0] = np.inf
    with pytest.raises(ValueError, match=r"stimulus 0 \(shape \(4, 10\)\) has 1 non-finite values"):
        NeuralDataset([stim], [np.ones((1, 1, 10))], 5.0)
    assert np.isinf(as_float32(np.array([np.inf, -np.inf]), "x")).all()  # only finite values are refused


def test_an_npz_with_values_beyond_float32_names_the_file_and_stimulus(tmp_path):
    path = tmp_path / "big.npz"
    stim = np.ones((3, 8))
    stim[1, 5] = 5e38
    np.savez(path, dt_ms=5.0, n_stims=1, stim_0=stim, response_0=np.ones((1, 1, 8)))
    with pytest.raises(ValueError, match=rf"big.npz: stimulus 0 holds 5e\+38 at index \(1, 5\): {BEYOND}"):
        load_npz(path)


def test_an_nwb_spectrogram_beyond_float32_names_the_series(tmp_path):
    pynwb = pytest.importorskip("pynwb")
    nwbfile = pynwb.NWBFile(
        session_description="range", identifier="strfsolver-range",
        session_start_time=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
    )
    data = np.ones((40, 3))
    data[4, 1] = 1e39
    nwbfile.add_stimulus_template(pynwb.TimeSeries(name="song", data=data, unit="W/m^2", rate=200.0))
    nwbfile.add_trial_column(name="stimulus_name", description="which stimulus")
    nwbfile.add_trial(start_time=1.0, stop_time=1.2, stimulus_name="song")
    nwbfile.add_unit(spike_times=[1.0001])
    with pynwb.NWBHDF5IO(str(tmp_path / "r.nwb"), "w") as io:
        io.write(nwbfile)
    from strfsolver.data import from_nwb

    with pytest.raises(ValueError, match=rf"stimulus TimeSeries 'song' of .*r.nwb \(T, F\) holds 1e\+39 at index \(4, 1\): {BEYOND}"):
        from_nwb(tmp_path / "r.nwb")


@pytest.fixture(scope="module")
def offset_data():
    g = torch.Generator().manual_seed(0)
    B, N, R, T = 4, 6, 5, 2000
    signal = torch.randn(B, N, 1, T, generator=g, dtype=torch.float64)
    responses = (1e4 + signal + 0.5 * torch.randn(B, N, R, T, generator=g, dtype=torch.float64)).float()
    pred = (1e4 + 0.8 * signal + 0.3 * torch.randn(B, N, 1, T, generator=g, dtype=torch.float64)).float()
    return pred, responses


@pytest.mark.parametrize("path", ["update", "summarize"])
def test_scores_of_float32_data_with_a_large_offset_match_float64(offset_data, path):
    pred, responses = offset_data
    names = tuple(available_metrics())
    fast, reference = MetricAccumulator(names), MetricAccumulator(names)
    for b in range(pred.shape[0]):
        p, r = pred[b : b + 1], responses[b : b + 1]
        fast.update(p, r if path == "update" else fast.summarize(r))
        reference.update(p.double(), r.double())
    got, expected = fast.compute(), reference.compute()
    for name in names:
        assert got[name].dtype == torch.float64
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-6, msg=name)
