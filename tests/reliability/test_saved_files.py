"""Safetensors files, saved states and checkpoints: every malformed header, edited field, flipped
byte or non-finite weight is refused with a ValueError naming the file (and the field), nothing
on disk changes, no file ever runs code, and files get the umask's mode."""

import json
import os
import pickle
import struct

import pytest
import torch

from reliability_cases import case_ids, loaders, snapshot, solver
from strfsolver.utils import io
from strfsolver.solver import checkpoint


def _parts(path):
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + length]), raw[8 + length :]


def _write_parts(path, header, data):
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


def header_edit(change):
    def edit(path):
        header, data = _parts(path)
        change(header)
        _write_parts(path, header, data)

    return edit


def first_tensor(header):
    return header[sorted(k for k in header if k != "__metadata__")[0]]


def set_entry(key, value):
    return header_edit(lambda h: first_tensor(h).__setitem__(key, value))


def drop_entry(key):
    return header_edit(lambda h: first_tensor(h).pop(key))


def raw(data):
    def edit(path):
        path.write_bytes(data)

    return edit


def flip_data_byte(path):
    header, data = _parts(path)
    data = bytearray(data)
    data[len(data) // 2] ^= 0x01
    _write_parts(path, header, bytes(data))


def truncate(path):
    path.write_bytes(path.read_bytes()[:-7])


def overlap(header):
    names = sorted(k for k in header if k != "__metadata__")
    header[names[1]]["data_offsets"] = list(header[names[0]]["data_offsets"])


@pytest.fixture
def tensors_file(tmp_path):
    path = tmp_path / "weights.safetensors"
    io.save_tensors(path, {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.ones(4, dtype=torch.int64)}, {"note": "x"})
    return path


# (what, edit of a two-tensor file, message)
TENSOR_CASES = [
    ("empty file", raw(b""), r"is not a safetensors file \(only 0 bytes\)"),
    ("four bytes", raw(b"abcd"), r"is not a safetensors file \(only 4 bytes\)"),
    ("header longer than the file", raw(struct.pack("<Q", 10**9) + b"{}"), r"is truncated or not a safetensors file"),
    ("header not JSON", raw(struct.pack("<Q", 4) + b"{{{{"), r"the safetensors header is not (valid JSON|UTF-8)"),
    ("header not UTF-8", raw(struct.pack("<Q", 2) + b"\xff\xfe"), r"the safetensors header is not (valid JSON|UTF-8)"),
    ("header a list", raw(struct.pack("<Q", 2) + b"[]"), r"has a safetensors header of type list; expected a JSON object"),
    ("a pickle renamed", raw(pickle.dumps({"a": 1})), r"truncated or not a safetensors file"),
    ("metadata a list", header_edit(lambda h: h.__setitem__("__metadata__", [1])), r"the safetensors __metadata__ must map strings to strings"),
    ("metadata value a number", header_edit(lambda h: h["__metadata__"].__setitem__("note", 5)), r"__metadata__ must map strings to strings"),
    ("entry a string", header_edit(lambda h: h.__setitem__("a", "tensor")), r"tensor 'a' has a header entry of type str"),
    ("no dtype", drop_entry("dtype"), r"tensor 'a' has no 'dtype' in its header entry"),
    ("no shape", drop_entry("shape"), r"tensor 'a' has no 'shape' in its header entry"),
    ("no data_offsets", drop_entry("data_offsets"), r"tensor 'a' has no 'data_offsets' in its header entry"),
    ("unknown dtype", set_entry("dtype", "F128"), r"tensor 'a' has unsupported dtype 'F128'"),
    ("dtype a number", set_entry("dtype", 32), r"tensor 'a' has unsupported dtype 32"),
    ("shape a string", set_entry("shape", "2x3"), r"tensor 'a' has shape '2x3'; expected a list of non-negative integers"),
    ("negative dimension", set_entry("shape", [-2, -3]), r"tensor 'a' has shape \[-2, -3\]"),
    ("fractional dimension", set_entry("shape", [2.0, 3]), r"tensor 'a' has shape \[2.0, 3\]"),
    ("boolean dimension", set_entry("shape", [True, 6]), r"tensor 'a' has shape \[True, 6\]"),
    ("shape larger than the bytes", set_entry("shape", [4, 3]), r"tensor 'a' has shape \[4, 3\] of F32 \(48 bytes\) but data_offsets \[0, 24\] hold 24 bytes"),
    ("shape smaller than the bytes", set_entry("shape", [1, 3]), r"tensor 'a' has shape \[1, 3\] of F32 \(12 bytes\)"),
    ("negative offsets", set_entry("data_offsets", [-24, 0]), r"tensor 'a' has data_offsets \[-24, 0\]; expected \[start, stop\]"),
    ("three offsets", set_entry("data_offsets", [0, 12, 24]), r"tensor 'a' has data_offsets \[0, 12, 24\]"),
    ("offsets reversed", set_entry("data_offsets", [24, 0]), r"tensor 'a' has data_offsets \[24, 0\] outside the 56 data bytes"),
    ("offsets past the end", set_entry("data_offsets", [40, 64]), r"tensor 'a' has data_offsets \[40, 64\] outside the 56 data bytes"),
    ("offsets as strings", set_entry("data_offsets", ["0", "24"]), r"tensor 'a' has data_offsets \['0', '24'\]"),
    ("overlapping tensors", header_edit(overlap), r"(overlap|data_offsets)"),
    ("one flipped data byte", flip_data_byte, r"the tensor data do not match the SHA-256 checksum"),
    ("truncated data", truncate, r"(outside the \d+ data bytes|checksum)"),
]


@pytest.mark.parametrize("what, edit, message", TENSOR_CASES, ids=case_ids(TENSOR_CASES))
def test_a_malformed_safetensors_file_is_named(tensors_file, what, edit, message):
    edit(tensors_file)
    before = snapshot(tensors_file.parent)
    with pytest.raises(ValueError, match=message) as raised:
        io.load_tensors(tensors_file)
    assert str(tensors_file) in str(raised.value)
    assert snapshot(tensors_file.parent) == before


def test_a_missing_file_or_a_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No safetensors file at .*nothing.safetensors"):
        io.load_tensors(tmp_path / "nothing.safetensors")
    with pytest.raises(FileNotFoundError, match=r"No safetensors file at"):
        io.load_tensors(tmp_path)


def test_the_checksum_is_not_part_of_the_metadata_returned(tensors_file):
    _, metadata = io.load_tensors(tensors_file, with_metadata=True)
    assert metadata == {"note": "x"}


def test_a_file_without_a_checksum_still_loads(tensors_file):
    header, data = _parts(tensors_file)
    del header["__metadata__"][io.CHECKSUM_KEY]
    _write_parts(tensors_file, header, data)
    assert torch.equal(io.load_tensors(tensors_file)["a"], torch.arange(6, dtype=torch.float32).reshape(2, 3))


def test_the_checksum_key_is_reserved(tmp_path):
    with pytest.raises(ValueError, match=r"metadata key 'strfsolver_sha256' is reserved"):
        io.save_tensors(tmp_path / "x.safetensors", {"a": torch.ones(1)}, {io.CHECKSUM_KEY: "0"})
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def fitted_solver():
    fitted = solver()
    fitted.fit(*loaders(), max_epochs=2)
    return fitted


@pytest.fixture
def checkpoint_file(fitted_solver, tmp_path):
    return fitted_solver.save(tmp_path, "checkpoint_last.safetensors")


def state_edit(change):
    """Edit the JSON structure of a saved state (not covered by the data checksum, as a hand edit would)."""

    def edit(path):
        header, data = _parts(path)
        structure = json.loads(header["__metadata__"]["strfsolver_state"])
        change(structure)
        header["__metadata__"]["strfsolver_state"] = json.dumps(structure)
        _write_parts(path, header, data)

    return edit


def put(*keys_and_value):
    *keys, value = keys_and_value

    def change(structure):
        for key in keys[:-1]:
            structure = structure[key]
        structure[keys[-1]] = value

    return change


def remove(key):
    return lambda structure: structure.pop(key)


def nan_weight(path):
    """A NaN in the model's weights, with the data checksum made right again."""
    header, data = _parts(path)
    structure = json.loads(header["__metadata__"]["strfsolver_state"])
    name = structure["model"]["readout.kernel.weight"]["__tensor__"]
    start, _ = header[name]["data_offsets"]
    data = bytearray(data)
    data[start : start + 4] = struct.pack("<f", float("nan"))
    import hashlib

    header["__metadata__"][io.CHECKSUM_KEY] = hashlib.sha256(bytes(data)).hexdigest()
    _write_parts(path, header, bytes(data))


# (what, edit of a solver checkpoint, message)
CHECKPOINT_CASES = [
    ("not a strfsolver state", header_edit(lambda h: h["__metadata__"].pop("strfsolver_state")), r"is a safetensors file but not a strfsolver state"),
    ("state structure not JSON", header_edit(lambda h: h["__metadata__"].__setitem__("strfsolver_state", "{")), r"the state structure in the file's metadata is not valid JSON"),
    ("another format", state_edit(put("format", "strfsolver-estimator")), r"is a strfsolver state file but not a solver checkpoint \(format 'strfsolver-estimator'"),
    ("a newer version", state_edit(put("version", 99)), r"was written by a newer strfsolver \(checkpoint version 99"),
    ("version a string", state_edit(put("version", "1")), r"field 'version' must be an integer, got '1'"),
    ("a missing tensor", state_edit(put("model", "readout.bias", {"__tensor__": "t999"})), r"the state refers to tensor 't999', which the file does not hold"),
    ("an object array", state_edit(put("extra", {"__ndarray__": "t0", "dtype": "object"})), r"an array of the state has dtype 'object'; expected a numeric NumPy dtype"),
    ("a bogus float", state_edit(put("extra", {"__float__": "__import__('os')"})), r"the state's __float__ entry is"),
    ("no model", state_edit(remove("model")), r"the solver state has no 'model' entry"),
    ("no progress", state_edit(remove("progress")), r"the solver state has no 'progress' entry"),
    ("model a list", state_edit(put("model", [])), r"field 'model' must be a mapping of tensor names to tensors, got a list"),
    ("model of numbers", state_edit(put("model", {"readout.bias": 1.0})), r"field 'model' must be a mapping of tensor names to tensors"),
    ("epoch a word", state_edit(put("progress", "epoch", "five")), r"field 'progress.epoch' must be an integer >= 0, got 'five'"),
    ("negative step", state_edit(put("progress", "step", -1)), r"field 'progress.step' must be an integer >= 0, got -1"),
    ("fractional epoch", state_edit(put("progress", "epoch", 1.5)), r"field 'progress.epoch' must be an integer >= 0, got 1.5"),
    ("best_epoch a word", state_edit(put("progress", "best_epoch", "last")), r"field 'progress.best_epoch' must be an integer >= 0 or null"),
    ("best_score a string", state_edit(put("progress", "best_score", "high")), r"field 'progress.best_score' must be a number or null, got 'high'"),
    ("stopped a string", state_edit(put("progress", "stopped", "no")), r"field 'progress.stopped' must be true or false, got 'no'"),
    ("stop_reason a number", state_edit(put("progress", "stop_reason", 3)), r"field 'progress.stop_reason' must be null or a string"),
    ("bad_epochs negative", state_edit(put("progress", "bad_epochs", -4)), r"field 'progress.bad_epochs' must be an integer >= 0, got -4"),
    ("progress a list", state_edit(put("progress", [])), r"field 'progress' must be a mapping, got a list"),
    ("best_model a number", state_edit(put("progress", "best_model", 3)), r"progress: field 'best_model' must be a mapping of tensor names to tensors"),
    ("history a dict", state_edit(put("history", {})), r"field 'history' must be a list of epoch dicts, got a dict"),
    ("history of numbers", state_edit(put("history", [1, 2])), r"field 'history' must be a list of epoch dicts"),
    ("monitor one string", state_edit(put("monitor", "val_cc")), r"field 'monitor' must be \[monitor, mode\], two strings, got 'val_cc'"),
    ("optimizer a string", state_edit(put("optimizer", "adam")), r"field 'optimizer' must be null or an optimizer state_dict"),
    ("schedulers a dict", state_edit(put("schedulers", {})), r"field 'schedulers' must be a list"),
    ("rng a list", state_edit(put("rng", [])), r"field 'rng' must be a mapping"),
    ("a NaN weight", nan_weight, r"model tensor 'readout.kernel.weight' holds 1 non-finite value"),
    ("one flipped data byte", flip_data_byte, r"do not match the SHA-256 checksum"),
]


@pytest.mark.parametrize("what, edit, message", CHECKPOINT_CASES, ids=case_ids(CHECKPOINT_CASES))
def test_a_broken_checkpoint_is_named_and_nothing_is_loaded(fitted_solver, checkpoint_file, what, edit, message):
    edit(checkpoint_file)
    before = snapshot(checkpoint_file.parent)
    target = solver()
    start = {k: v.clone() for k, v in target.model.state_dict().items()}
    with pytest.raises(ValueError, match=message) as raised:
        target.load(checkpoint_file.parent, checkpoint_file.name)
    assert str(checkpoint_file) in str(raised.value)
    assert all(torch.equal(v, start[k]) for k, v in target.model.state_dict().items())
    assert target.log == [] and snapshot(checkpoint_file.parent) == before


def test_resuming_from_a_broken_last_checkpoint_is_refused_not_restarted(fitted_solver, tmp_path):
    path = fitted_solver.save(tmp_path, checkpoint.LAST)
    state_edit(put("progress", "epoch", "five"))(path)
    before = snapshot(tmp_path)
    with pytest.raises(ValueError, match=r"field 'progress.epoch' must be an integer"):
        solver().fit(*loaders(), max_epochs=3, logdir=tmp_path, resume=True)
    assert snapshot(tmp_path) == before


def test_a_state_with_nan_weights_is_never_written(tmp_path):
    diverged = solver()
    with torch.no_grad():
        next(diverged.model.parameters()).fill_(float("nan"))
    with pytest.raises(ValueError, match=r"the solver state to write: model tensor '.*' holds \d+ non-finite value"):
        diverged.save(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_model_folder_with_nan_weights_is_refused(tmp_path):
    import strfsolver

    model = strfsolver.models.init("linear", n_freqs=6, n_lags=4, n_neurons=3)
    model.save_pretrained(tmp_path / "m")
    tensors = io.load_tensors(tmp_path / "m" / "model.safetensors")
    tensors["readout.bias"] = torch.full_like(tensors["readout.bias"], float("inf"))
    io.save_tensors(tmp_path / "m" / "model.safetensors", tensors, {"format": "strfsolver-model"})
    with pytest.raises(ValueError, match=r"model.safetensors: weights tensor 'readout.bias' holds 3 non-finite"):
        strfsolver.models.from_pretrained(tmp_path / "m")


def test_a_state_that_is_not_plain_data_is_refused_at_save(tmp_path):
    with pytest.raises(ValueError, match=r"state.hook: cannot store a function safely"):
        io.save_state(tmp_path / "s.safetensors", {"hook": lambda: 0})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_get_the_mode_of_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        io.atomic_write_text(tmp_path / "a.txt", "x")
        io.save_tensors(tmp_path / "b.safetensors", {"a": torch.ones(1)})
    finally:
        os.umask(previous)
    assert {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()} == {"a.txt": mode, "b.safetensors": mode}


def test_a_checkpoint_loads_in_a_process_that_has_no_pickle(fitted_solver, tmp_path, monkeypatch):
    path = fitted_solver.save(tmp_path)

    def refuse(*args, **kwargs):
        raise AssertionError("pickle was used to load a file")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    state = checkpoint.load_checkpoint(path)
    assert torch.equal(state["model"]["readout.bias"], fitted_solver.model.state_dict()["readout.bias"])
