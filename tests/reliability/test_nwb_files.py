"""NWB files: bad selections and corrupt or foreign files are refused with a ValueError naming the
file (or the argument) and what is there; the file is left as it was."""

import datetime

import numpy as np
import pytest

from reliability_cases import case_ids, snapshot

pytest.importorskip("pynwb")

from strfsolver.data import from_nwb  # noqa: E402

RATE = 200.0


def write_file(path, timestamps_stimulus=False, stimulus_1d=False):
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries

    nwbfile = NWBFile(
        session_description="reliability", identifier="strfsolver-reliability",
        session_start_time=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
    )
    rng = np.random.default_rng(0)
    nwbfile.add_stimulus_template(TimeSeries(name="song", data=rng.random((40, 6)), unit="dB", rate=RATE))
    if timestamps_stimulus:
        nwbfile.add_stimulus_template(TimeSeries(name="noise", data=rng.random((30, 6)), unit="dB", timestamps=np.arange(30) / RATE))
    elif stimulus_1d:
        nwbfile.add_stimulus_template(TimeSeries(name="noise", data=rng.random(30), unit="dB", rate=RATE))
    else:
        nwbfile.add_stimulus_template(TimeSeries(name="noise", data=rng.random((30, 6)), unit="dB", rate=RATE))
    nwbfile.add_stimulus_template(TimeSeries(name="fast", data=rng.random((30, 6)), unit="dB", rate=2 * RATE))
    nwbfile.add_trial_column(name="stimulus_name", description="which stimulus")
    for name, start in [("song", 1.0), ("noise", 2.0), ("song", 3.0)]:
        nwbfile.add_trial(start_time=start, stop_time=start + 0.5, stimulus_name=name)
    nwbfile.add_unit(spike_times=[1.0001, 3.0002])
    nwbfile.add_unit(spike_times=[2.026])
    nwbfile.add_acquisition(TimeSeries(name="counts_slow", data=np.zeros((800, 2), dtype=np.float32), unit="spikes", rate=RATE / 2))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)


@pytest.fixture(scope="module")
def nwb_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("nwb") / "session.nwb"
    write_file(path)
    return path


# (what, keyword arguments of from_nwb, message; the file is named unless the argument is)
CASES = [
    ("a unit beyond the table", dict(units=[7]), r"units=\[7\] asks for row 7 but the units table of .*session.nwb has 2 rows \(0 to 1\)"),
    ("no unit", dict(units=[]), r"units=\[\] selects no unit"),
    ("a negative unit", dict(units=[-1]), r"units must be non-negative row indices of the units table, got -1"),
    ("a fractional unit", dict(units=[0.5]), r"units must be non-negative row indices of the units table, got 0.5"),
    ("units a string", dict(units="0"), r"units must be a list of row indices of the units table or None, got '0'"),
    ("units of bools", dict(units=[True]), r"units must be non-negative row indices of the units table, got True"),
    ("no stimulus", dict(stimuli=[]), r"stimuli=\[\] selects no stimulus"),
    ("stimuli a string", dict(stimuli="song"), r"stimuli must be a list of stimulus names or None, got 'song'"),
    ("stimuli of numbers", dict(stimuli=[3]), r"stimuli must be names \(strings\), got 3"),
    ("a stimulus twice", dict(stimuli=["song", "song"]), r"stimuli names a stimulus twice: \['song', 'song'\]"),
    ("an unknown stimulus", dict(stimuli=["bird"]), r"stimuli \['bird'\] are not stimulus TimeSeries of .*session.nwb"),
    ("a stimulus never presented", dict(stimuli=["fast"]), r"session.nwb: stimulus 'fast' is never presented in the 'trials' table"),
    ("stimuli at two rates", dict(stimuli=["song", "fast"]), r"session.nwb: stimuli are sampled at different rates"),
    ("an unknown column", dict(stim_column="stim"), r"the 'trials' table of .*session.nwb has no column 'stim'"),
    ("an empty column name", dict(stim_column=""), r"stim_column must be a non-empty string, got ''"),
    ("an unknown intervals table", dict(intervals="epochs"), r"session.nwb has no intervals table 'epochs'"),
    ("intervals a number", dict(intervals=3), r"intervals must be a non-empty string, got 3"),
    ("unknown responses kind", dict(responses="counts"), r"responses must be 'spikes' or 'binned', got 'counts'"),
    ("binned without a series", dict(responses="binned"), r"responses='binned' needs binned_series"),
    ("an unknown binned series", dict(responses="binned", binned_series="rates"), r"session.nwb has no TimeSeries 'rates' in acquisition or processing"),
    ("a binned series at another rate", dict(responses="binned", binned_series="counts_slow", stimuli=["song"]), r"binned series 'counts_slow' is sampled at 100.0 Hz but the stimuli at 200.0 Hz"),
]
ARGUMENT_ONLY = {"no unit", "a negative unit", "a fractional unit", "units a string", "units of bools", "no stimulus", "stimuli a string",
                 "stimuli of numbers", "a stimulus twice", "an empty column name", "intervals a number", "unknown responses kind", "binned without a series"}


@pytest.mark.parametrize("what, kwargs, message", CASES, ids=case_ids(CASES))
def test_a_bad_selection_is_named(nwb_file, what, kwargs, message):
    before = snapshot(nwb_file.parent)
    with pytest.raises(ValueError, match=message) as raised:
        from_nwb(nwb_file, **kwargs)
    if what not in ARGUMENT_ONLY:
        assert str(nwb_file) in str(raised.value)
    assert snapshot(nwb_file.parent) == before


def _corrupt(path):
    write_file(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 4096] = b"\x00" * 4096
    path.write_bytes(bytes(data[: len(data) // 2]))


def _npz_renamed(path):
    with open(path, "wb") as handle:
        np.savez(handle, a=np.ones(2))


# (what, how the file is made, message)
FILE_CASES = [
    ("garbage bytes", lambda p: p.write_bytes(b"not hdf5 at all" * 10), r"is not a readable NWB file"),
    ("an empty file", lambda p: p.write_bytes(b""), r"is not a readable NWB file"),
    ("a truncated file", _corrupt, r"is not a readable NWB file"),
    ("an npz renamed", lambda p: _npz_renamed(p), r"is not a readable NWB file"),
    ("a stimulus with timestamps", lambda p: write_file(p, timestamps_stimulus=True), r"stimulus TimeSeries 'noise' of .* has timestamps but no sampling rate"),
    ("a 1-D stimulus", lambda p: write_file(p, stimulus_1d=True), r"stimulus TimeSeries 'noise' of .* has data of shape \(30,\); expected a spectrogram \(T, F\)"),
]


@pytest.mark.parametrize("what, make, message", FILE_CASES, ids=case_ids(FILE_CASES))
def test_a_corrupt_or_odd_file_is_named(tmp_path, what, make, message):
    path = tmp_path / "broken.nwb"
    make(path)
    before = snapshot(tmp_path)
    with pytest.raises(ValueError, match=message) as raised:
        from_nwb(path)
    assert str(path) in str(raised.value)
    assert snapshot(tmp_path) == before


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No NWB file at .*absent.nwb"):
        from_nwb(tmp_path / "absent.nwb")
