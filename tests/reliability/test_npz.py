"""``.npz`` data files: every key that breaks the schema is refused naming the file and the key,
no stimulus is dropped silently, nothing needs pickle, and the file is left as it was."""

import io as _io

import numpy as np
import pytest

from reliability_cases import case_ids, population, snapshot
from strfsolver.data import load_npz, save_npz


def _arrays(path):
    with np.load(path, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def rewrite(change):
    def edit(path):
        arrays = _arrays(path)
        change(arrays)
        buffer = _io.BytesIO()
        np.savez(buffer, **arrays)
        path.write_bytes(buffer.getvalue())

    return edit


def put(key, value):
    return rewrite(lambda a: a.__setitem__(key, np.asarray(value)))


def drop(key):
    return rewrite(lambda a: a.pop(key))


def raw(data):
    return lambda path: path.write_bytes(data)


def as_npy(path):
    buffer = _io.BytesIO()
    np.save(buffer, np.ones((3, 3)))
    path.write_bytes(buffer.getvalue())


def with_object_stim(path):
    arrays = _arrays(path)
    arrays["stim_0"] = np.array([{"a": 1}], dtype=object)
    buffer = _io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(buffer.getvalue())


def rectangular(stims_shape, responses_shape):
    def edit(path):
        buffer = _io.BytesIO()
        np.savez(buffer, dt_ms=np.asarray(5.0), stims=np.ones(stims_shape), responses=np.ones(responses_shape))
        path.write_bytes(buffer.getvalue())

    return edit


def nan_stimulus(arrays):
    arrays["stim_2"] = arrays["stim_2"].copy()
    arrays["stim_2"][0, 0] = np.nan


# (what, edit of a valid 6-stimulus file, error, message naming the key)
CASES = [
    ("n_stims a string", put("n_stims", "6"), ValueError, r"key 'n_stims' must be a positive integer \(the number of stimuli\), got '6'"),
    ("n_stims fractional", put("n_stims", 5.5), ValueError, r"key 'n_stims' must be a positive integer .*got 5.5"),
    ("n_stims zero", put("n_stims", 0), ValueError, r"key 'n_stims' must be a positive integer .*got 0"),
    ("n_stims negative", put("n_stims", -2), ValueError, r"key 'n_stims' must be a positive integer .*got -2"),
    ("n_stims an array", put("n_stims", [6]), ValueError, r"key 'n_stims' must be a positive integer .*got \[6\]"),
    ("n_stims a bool", put("n_stims", True), ValueError, r"key 'n_stims' must be a positive integer"),
    ("n_stims too large", put("n_stims", 8), ValueError, r"declares n_stims=8 but lacks \['stim_6', 'response_6', 'stim_7', 'response_7'\]"),
    ("stimulus beyond n_stims", put("n_stims", 5), ValueError, r"declares n_stims=5 but also holds \['stim_5', 'response_5'\]; fix n_stims so that no stimulus is dropped"),
    ("response missing", drop("response_3"), ValueError, r"declares n_stims=6 but lacks \['response_3'\]"),
    ("other format", put("format", "hdf5"), ValueError, r"key 'format' is 'hdf5'; expected 'strfsolver-npz'"),
    ("format a number", put("format", 1), ValueError, r"key 'format' is 1; expected 'strfsolver-npz'"),
    ("newer version", put("version", 2), ValueError, r"key 'version' is 2; this strfsolver reads versions 1 to 1"),
    ("version zero", put("version", 0), ValueError, r"key 'version' is 0"),
    ("version a string", put("version", "1"), ValueError, r"key 'version' must be an integer schema version, got '1'"),
    ("no dt_ms", drop("dt_ms"), ValueError, r"has no 'dt_ms' entry; found keys"),
    ("dt_ms a string", put("dt_ms", "5 ms"), ValueError, r"key 'dt_ms' must be a number \(the bin width in milliseconds\), got '5 ms'"),
    ("dt_ms an array", put("dt_ms", [5.0, 5.0]), ValueError, r"key 'dt_ms' must be a number .*got \[5.0, 5.0\]"),
    ("dt_ms zero", put("dt_ms", 0.0), ValueError, r"dt_ms must be a positive"),
    ("stim_names too few", put("stim_names", ["a"]), ValueError, r"key 'stim_names' has 1 entries for 6 stimuli"),
    ("stim_names 2-D", put("stim_names", [["a"] * 6]), ValueError, r"key 'stim_names' must be a 1-D array of strings, got shape \(1, 6\)"),
    ("neuron_ids too few", put("neuron_ids", ["a"]), ValueError, r"neuron_ids has 1 entries but the responses have 3 neurons"),
    ("neuron_ids floats", put("neuron_ids", [0.5, 1.5, 2.5]), ValueError, r"key 'neuron_ids' must be a 1-D array of strings"),
    ("response of another length", put("response_1", np.ones((3, 3, 7))), ValueError, r"responses for stimulus 1 have shape \(3, 3, 7\) but the stimulus has 40 bins"),
    ("stimulus with NaN", rewrite(nan_stimulus), ValueError, r"stimulus 2 \(shape \(6, 40\)\) has 1 non-finite values"),
    ("all responses NaN", rewrite(lambda a: [a.__setitem__(f"response_{i}", np.full_like(a[f"response_{i}"], np.nan)) for i in range(6)]), ValueError, r"responses are NaN everywhere"),
    ("neither layout", rewrite(lambda a: [a.pop(k) for k in list(a) if k not in ("dt_ms",)]), ValueError, r"has neither 'n_stims' with 'stim_i'/'response_i' entries nor 'stims'/'responses' arrays"),
    ("rectangular of the wrong ndim", rectangular((2, 6), (2, 3, 1, 6)), ValueError, r"rectangular layout expects stims \(S, F, T\) and responses \(S, N, R, T\); got \(2, 6\)"),
    ("rectangular of other counts", rectangular((2, 6, 10), (3, 3, 1, 10)), ValueError, r"stims hold 2 stimuli but responses hold 3"),
    ("an object array", with_object_stim, ValueError, r"key 'stim_0' holds objects that need pickle to load; strfsolver refuses them"),
    ("a .npy renamed", as_npy, ValueError, r"is a single .npy array of shape \(3, 3\), not an .npz archive"),
    ("not a zip", raw(b"PK\x03\x04 garbage that is no archive"), ValueError, r"is not a readable .npz file"),
    ("text", raw(b"stim_0,response_0\n1,2\n"), ValueError, r"(is not a readable .npz file|holds objects that need pickle)"),
    ("empty", raw(b""), ValueError, r"is not a readable .npz file"),
]


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "data.npz"
    save_npz(path, population().dataset)
    return path


@pytest.mark.parametrize("what, edit, error, message", CASES, ids=case_ids(CASES))
def test_a_file_off_the_schema_is_named_and_left_as_it_was(data_file, what, edit, error, message):
    edit(data_file)
    before = snapshot(data_file.parent)
    with pytest.raises(error, match=message) as raised:
        load_npz(data_file)
    assert str(data_file) in str(raised.value)
    assert snapshot(data_file.parent) == before


def test_a_missing_file_and_a_folder_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No data file at .*absent.npz"):
        load_npz(tmp_path / "absent.npz")
    (tmp_path / "folder.npz").mkdir()
    with pytest.raises(ValueError, match=r"folder.npz is a folder, not an .npz data file"):
        load_npz(tmp_path / "folder.npz")


def test_the_file_as_written_loads_whole(data_file):
    original = population().dataset
    loaded = load_npz(data_file)
    assert loaded.n_stims == original.n_stims == 6
    assert all(np.array_equal(a.numpy(), b.numpy(), equal_nan=True) for a, b in zip(loaded.responses, original.responses))


def test_save_npz_refuses_what_is_not_a_dataset(tmp_path):
    with pytest.raises(ValueError, match=r"save_npz expects a NeuralDataset, got dict"):
        save_npz(tmp_path / "x.npz", {"stims": []})
    with pytest.raises(ValueError, match=r"stim_names has 2 entries but the dataset has 6 stimuli"):
        save_npz(tmp_path / "x.npz", population().dataset, stim_names=["a", "b"])
    assert list(tmp_path.iterdir()) == []
