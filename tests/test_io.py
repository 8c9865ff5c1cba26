"""Safe, atomic files: safetensors compatibility, nested states, no half-written files."""

import json
import os

import numpy as np
import pytest
import torch

from strfsolver.utils import io
from strfsolver.utils.seeding import get_rng_state, set_random_seed, set_rng_state


def test_tensors_round_trip_all_dtypes(tmp_path):
    tensors = {
        "f32": torch.randn(3, 4),
        "f64": torch.randn(2, dtype=torch.float64),
        "bf16": torch.randn(5).to(torch.bfloat16),
        "i64": torch.arange(6).reshape(2, 3),
        "u8": torch.tensor([0, 255], dtype=torch.uint8),
        "mask": torch.tensor([[True, False], [False, True]]),
        "empty": torch.zeros(0, 3),
        "scalar": torch.tensor(2.5),
    }
    io.save_tensors(tmp_path / "t.safetensors", tensors, metadata={"who": "test"})
    back, meta = io.load_tensors(tmp_path / "t.safetensors", with_metadata=True)
    assert meta == {"who": "test"}
    assert set(back) == set(tensors)
    for key, value in tensors.items():
        assert back[key].dtype == value.dtype and back[key].shape == value.shape
        assert torch.equal(back[key], value), key


def test_files_interoperate_with_safetensors_package(tmp_path):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    ours = {"w": torch.randn(4, 3), "b": torch.arange(3, dtype=torch.int32)}
    io.save_tensors(tmp_path / "ours.safetensors", ours)
    theirs = safetensors_torch.load_file(str(tmp_path / "ours.safetensors"))
    assert all(torch.equal(theirs[k], ours[k]) for k in ours)
    safetensors_torch.save_file(ours, str(tmp_path / "theirs.safetensors"), metadata={"a": "b"})
    back, meta = io.load_tensors(tmp_path / "theirs.safetensors", with_metadata=True)
    assert meta == {"a": "b"}
    assert all(torch.equal(back[k], ours[k]) for k in ours)


def test_nested_state_round_trip(tmp_path):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    state = {
        "optimizer": optimizer.state_dict(),
        "epoch": 7,
        "best": float("-inf"),
        "nan": float("nan"),
        "history": [{"epoch": 1, "loss": 0.5}],
        "pair": (1, "a"),
        "array": np.arange(4, dtype=np.uint32),
        "none": None,
    }
    io.save_state(tmp_path / "s.safetensors", state)
    back = io.load_state(tmp_path / "s.safetensors")
    assert back["epoch"] == 7 and back["best"] == float("-inf") and np.isnan(back["nan"])
    assert back["history"] == [{"epoch": 1, "loss": 0.5}]
    assert back["pair"] == (1, "a") and back["none"] is None
    assert back["array"].dtype == np.uint32 and back["array"].tolist() == [0, 1, 2, 3]
    fresh = torch.optim.AdamW(model.parameters(), lr=0.5)
    fresh.load_state_dict(back["optimizer"])
    assert fresh.param_groups[0]["lr"] == 0.01
    for key in (0, 1):
        assert torch.equal(fresh.state[fresh.param_groups[0]["params"][key]]["exp_avg"],
                           optimizer.state[optimizer.param_groups[0]["params"][key]]["exp_avg"])


def test_unstorable_objects_are_refused_with_location(tmp_path):
    with pytest.raises(ValueError, match=r"state\.config\.fn: cannot store a function"):
        io.save_state(tmp_path / "s.safetensors", {"config": {"fn": lambda x: x}})
    assert not (tmp_path / "s.safetensors").exists()


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "state.safetensors"
    io.save_tensors(target, {"a": torch.ones(2)})

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        io.save_tensors(target, {"a": torch.zeros(2)})
    monkeypatch.undo()
    assert torch.equal(io.load_tensors(target)["a"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["state.safetensors"]


def test_corrupt_and_missing_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No safetensors file"):
        io.load_tensors(tmp_path / "missing.safetensors")
    (tmp_path / "short").write_bytes(b"abc")
    with pytest.raises(ValueError, match="not a safetensors file"):
        io.load_tensors(tmp_path / "short")
    io.save_tensors(tmp_path / "plain.safetensors", {"a": torch.ones(1)})
    with pytest.raises(ValueError, match="not a strfsolver state"):
        io.load_state(tmp_path / "plain.safetensors")


def test_atomic_json(tmp_path):
    io.atomic_write_json(tmp_path / "a" / "b.json", {"x": [1, 2]})
    assert json.loads((tmp_path / "a" / "b.json").read_text()) == {"x": [1, 2]}


def test_rng_state_round_trip_through_file(tmp_path):
    set_random_seed(3)
    io.save_state(tmp_path / "rng.safetensors", get_rng_state())
    expected = (np.random.rand(), torch.rand(2), __import__("random").random())
    set_random_seed(99)
    set_rng_state(io.load_state(tmp_path / "rng.safetensors"))
    got = (np.random.rand(), torch.rand(2), __import__("random").random())
    assert expected[0] == got[0] and torch.equal(expected[1], got[1]) and expected[2] == got[2]


def test_set_random_seed_is_reproducible_and_validates():
    set_random_seed(5)
    a = torch.randn(3)
    set_random_seed(5)
    assert torch.equal(a, torch.randn(3))
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*63 - 1\]"):
            set_random_seed(bad)
