"""Reading NWB files the tests write: spike times and binned responses."""

import datetime

import numpy as np
import pytest

pynwb = pytest.importorskip("pynwb")

from strfsolver.data import from_nwb  # noqa: E402

RATE = 200.0  # Hz: 5 ms bins


def write_file(path, with_binned=False):
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries

    nwbfile = NWBFile(
        session_description="test", identifier="strfsolver-test",
        session_start_time=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
    )
    rng = np.random.default_rng(0)
    specs = {"song": rng.random((40, 6)), "noise": rng.random((30, 6))}  # (T, F)
    for name, data in specs.items():
        nwbfile.add_stimulus_template(TimeSeries(name=name, data=data, unit="dB", rate=RATE))
    nwbfile.add_trial_column(name="stimulus_name", description="which stimulus")
    presentations = [("song", 1.0), ("noise", 2.0), ("song", 3.0)]
    for name, start in presentations:
        nwbfile.add_trial(start_time=start, stop_time=start + 0.5, stimulus_name=name)
    # unit 0 fires in bin 0 and bin 3 of every song; unit 1 once in bin 39 of song 2 (and once
    # just after the song ends, which must not count); unit 2 fires in bin 5 of the noise
    nwbfile.add_unit(spike_times=[1.0001, 1.016, 3.0002, 3.017])
    nwbfile.add_unit(spike_times=[3.1999, 3.2001])
    nwbfile.add_unit(spike_times=[2.026])
    if with_binned:
        binned = np.zeros((int(4.0 * RATE), 2), dtype=np.float32)
        binned[int(1.0 * RATE) + 7, 1] = 3.0
        nwbfile.add_acquisition(TimeSeries(name="counts", data=binned, unit="spikes", rate=RATE))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    return specs


def test_spike_times_are_binned_per_presentation(tmp_path):
    specs = write_file(tmp_path / "s.nwb")
    data = from_nwb(tmp_path / "s.nwb")
    assert data.dt_ms == pytest.approx(5.0)
    assert [m["name"] for m in data.meta] == ["song", "noise"]
    assert data.n_repeats == [2, 1] and data.lengths == [40, 30]
    np.testing.assert_allclose(data.stims[0].numpy(), specs["song"].T, rtol=1e-6)
    song = data.responses[0].numpy()
    assert song.shape == (3, 2, 40)
    expected = np.zeros((3, 2, 40))
    expected[0, :, 0] = 1
    expected[0, :, 3] = 1
    expected[1, 1, 39] = 1
    np.testing.assert_array_equal(song, expected)
    noise = data.responses[1].numpy()
    assert noise.sum() == 1 and noise[2, 0, 5] == 1
    assert data.meta[0]["start_times"] == [1.0, 3.0]
    assert data.neuron_ids == ["0", "1", "2"]


def test_binned_series_and_unit_selection(tmp_path):
    write_file(tmp_path / "b.nwb", with_binned=True)
    data = from_nwb(tmp_path / "b.nwb", responses="binned", binned_series="counts", stimuli=["song"])
    assert data.n_stims == 1 and data.n_neurons == 2
    assert data.responses[0][1, 0, 7] == 3.0 and data.responses[0].sum() == 3.0
    picked = from_nwb(tmp_path / "b.nwb", units=[2])
    assert picked.n_neurons == 1 and picked.responses[1].sum() == 1


def test_bad_requests_name_the_problem(tmp_path):
    write_file(tmp_path / "s.nwb")
    with pytest.raises(ValueError, match="no column 'stim'.*stimulus_name"):
        from_nwb(tmp_path / "s.nwb", stim_column="stim")
    with pytest.raises(ValueError, match=r"stimuli \['bird'\] are not stimulus TimeSeries"):
        from_nwb(tmp_path / "s.nwb", stimuli=["bird"])
    with pytest.raises(ValueError, match="needs binned_series"):
        from_nwb(tmp_path / "s.nwb", responses="binned")
    with pytest.raises(ValueError, match="no TimeSeries 'x'"):
        from_nwb(tmp_path / "s.nwb", responses="binned", binned_series="x")
