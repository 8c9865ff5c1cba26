"""Cause D of issue 19: from_nwb honours when something was recorded (trial stop times, units'
obs_intervals), refuses presentations without times and sampling rates that are not rates."""

import datetime

import numpy as np
import pytest

pytest.importorskip("pynwb")

from strfsolver.data import from_nwb  # noqa: E402

RATE = 200.0  # 5 ms bins; "song" has 40 bins (0.2 s)


def write_file(path, trials, *, units=(), obs=None, rate=RATE, binned=None):
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries

    nwbfile = NWBFile(
        session_description="intervals", identifier="strfsolver-intervals",
        session_start_time=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
    )
    nwbfile.add_stimulus_template(TimeSeries(name="song", data=np.ones((40, 3)), unit="dB", rate=rate))
    nwbfile.add_trial_column(name="stimulus_name", description="which stimulus")
    for start, stop in trials:
        nwbfile.add_trial(start_time=start, stop_time=stop, stimulus_name="song")
    for k, spikes in enumerate(units):
        extra = {} if obs is None else {"obs_intervals": obs[k]}
        nwbfile.add_unit(spike_times=spikes, **extra)
    if binned is not None:
        nwbfile.add_acquisition(TimeSeries(name="counts", data=binned, unit="spikes", rate=rate))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    return path


def test_bins_after_the_stop_time_are_not_recorded_nor_the_next_trials_spikes(tmp_path):
    # trial 0 lasts 0.1 s (20 of the song's 40 bins), trial 1 starts right after it
    path = write_file(tmp_path / "a.nwb", [(1.0, 1.1), (1.1, 1.3)], units=[[1.0001, 1.1201]])
    song = from_nwb(path).responses[0].numpy()  # (N=1, R=2, T=40)
    first, second = song[0, 0], song[0, 1]
    np.testing.assert_array_equal(first[:20], np.r_[1.0, np.zeros(19)])
    assert np.isnan(first[20:]).all()  # was: zeros and, in bin 24, trial 1's spike
    np.testing.assert_array_equal(second, np.r_[np.zeros(4), 1.0, np.zeros(35)])


def test_bins_outside_a_units_obs_intervals_are_not_recorded_for_that_unit(tmp_path):
    obs = [[[0.0, 10.0]], [[0.0, 1.05], [1.2, 5.0]]]
    path = write_file(tmp_path / "b.nwb", [(1.0, 1.2), (1.1, 1.3)], units=[[1.0001], [1.0001, 1.2501]], obs=obs)
    song = from_nwb(path).responses[0].numpy()
    assert not np.isnan(song[0]).any()  # unit 0 observed throughout
    np.testing.assert_array_equal(song[1, 0, :10], np.r_[1.0, np.zeros(9)])
    assert np.isnan(song[1, 0, 10:]).all()  # unit 1 not observed from 1.05 s to 1.2 s
    assert np.isnan(song[1, 1, :20]).all()
    np.testing.assert_array_equal(song[1, 1, 20:], np.r_[np.zeros(10), 1.0, np.zeros(9)])


def test_binned_responses_after_the_stop_time_are_not_recorded(tmp_path):
    binned = np.ones((400, 2), dtype=np.float32)
    path = write_file(tmp_path / "c.nwb", [(1.0, 1.1)], binned=binned)
    song = from_nwb(path, responses="binned", binned_series="counts").responses[0].numpy()
    assert (song[:, 0, :20] == 1).all() and np.isnan(song[:, 0, 20:]).all()


@pytest.mark.parametrize("start, stop", [(np.nan, 1.2), (1.0, np.nan), (1.0, 0.5)])
def test_a_presentation_without_valid_times_is_refused_and_named(tmp_path, start, stop):
    path = write_file(tmp_path / "d.nwb", [(2.0, 2.2), (start, stop)], units=[[1.0001]])
    with pytest.raises(ValueError, match=r"presentation 1 \(id 1\) of the 'trials' table of .*d.nwb has start_time=.* and stop_time=.*expected finite times with stop_time > start_time"):
        from_nwb(path)


@pytest.mark.filterwarnings("ignore:Timeseries has a rate of 0.0 Hz")  # pynwb warns, writes it
@pytest.mark.parametrize("rate", [0.0, np.nan, np.inf])
def test_a_rate_that_is_not_a_rate_is_refused_and_named(tmp_path, rate):
    path = write_file(tmp_path / "e.nwb", [(1.0, 1.2)], units=[[1.0001]], rate=rate)
    with pytest.raises(ValueError, match=rf"stimulus TimeSeries 'song' of .*e.nwb has rate={rate}; expected a positive, finite sampling rate in Hz"):
        from_nwb(path)


def test_invalid_obs_intervals_are_refused_and_named(tmp_path):
    path = write_file(tmp_path / "f.nwb", [(1.0, 1.2)], units=[[1.0001]], obs=[[[np.nan, 3.0]]])
    with pytest.raises(ValueError, match=r"unit 0 \(row 0\) of .*f.nwb has obs_intervals \[nan, 3.0\]; expected finite"):
        from_nwb(path)
