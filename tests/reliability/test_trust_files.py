"""Issue 19, causes C, G, I, J, K, N, O: files written whole and tied together, fold names that
cannot collide, bounded messages, deep JSON, one device check, bounded seeds, one config schema.

Each test asserts what the user sees (the value or the message) and, where the outcome is a
refusal, that nothing on disk changed."""

import json
import os
import shutil
import time

import numpy as np
import pytest

from reliability_cases import snapshot
from strfsolver.estimator import STRFEstimator
from strfsolver.utils import folders, io

F, T, N = 5, 30, 2


def _x(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.random((T, F)).astype(np.float32) for _ in range(n)]


def _y(n=4, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.random((T, N)).astype(np.float32) for _ in range(n)]


def _estimator(**params):
    return STRFEstimator(**{"model": "linear", "solver": "population", "n_lags": 3, "max_epochs": 2, "random_state": 0, **params})


@pytest.fixture(scope="module")
def two_fits():
    return _estimator().fit(_x(), _y()), _estimator(random_state=1, lr=0.05).fit(_x(seed=2), _y(seed=3))


# ------------------------------------------------------------------ C: estimator folders
def test_a_save_failing_between_the_model_and_estimator_json_keeps_the_old_folder(two_fits, tmp_path, monkeypatch):
    first, second = two_fits
    folder = first.save(tmp_path / "saved")
    before = snapshot(tmp_path)
    real = io.atomic_write_json

    def full_disk(path, obj, **kwargs):
        if os.path.basename(path) == "estimator.json":
            raise OSError(28, "No space left on device (simulated)")
        return real(path, obj, **kwargs)

    monkeypatch.setattr(io, "atomic_write_json", full_disk)
    import strfsolver.estimator.files as files

    monkeypatch.setattr(files, "atomic_write_json", full_disk)
    with pytest.raises(OSError, match="No space left"):
        second.save(folder)
    monkeypatch.undo()
    assert snapshot(tmp_path) == before  # no temporary left, the old folder byte-identical
    loaded = STRFEstimator.load(folder)
    np.testing.assert_array_equal(loaded.predict(_x(1))[0], first.predict(_x(1))[0])


def test_a_save_replaces_an_existing_estimator_folder_whole(two_fits, tmp_path):
    first, second = two_fits
    folder = first.save(tmp_path / "saved")
    second.save(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved"]
    np.testing.assert_array_equal(STRFEstimator.load(folder).predict(_x(1))[0], second.predict(_x(1))[0])


def test_a_crash_between_the_renames_leaves_the_old_folder_which_the_next_load_restores(two_fits, tmp_path):
    first, _ = two_fits
    folder = first.save(tmp_path / "saved")
    expected = snapshot(folder)
    # what a process killed between "rename the old aside" and "rename the new in" leaves
    dead = 2**22 + 12345  # beyond pid_max on most systems: no such process
    os.rename(folder, tmp_path / f".saved.{dead}-0123456789ab.old")
    (tmp_path / f".saved.{dead}-ba9876543210.tmp").mkdir()
    loaded = STRFEstimator.load(folder)
    assert snapshot(folder) == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved"]
    np.testing.assert_array_equal(loaded.predict(_x(1))[0], first.predict(_x(1))[0])


def test_a_leftover_temporary_is_removed_by_the_next_save(two_fits, tmp_path):
    first, _ = two_fits
    dead = 2**22 + 12345
    (tmp_path / f".saved.{dead}-0123456789ab.tmp" / "model").mkdir(parents=True)
    first.save(tmp_path / "saved")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved"]


def test_weights_of_another_fit_are_refused_naming_both_files(two_fits, tmp_path):
    first, second = two_fits
    a, b = first.save(tmp_path / "a"), second.save(tmp_path / "b")
    shutil.rmtree(a / "model")
    shutil.copytree(b / "model", a / "model")
    before = snapshot(tmp_path)
    with pytest.raises(ValueError) as raised:
        STRFEstimator.load(a)
    message = str(raised.value)
    assert str(a / "model" / "model.safetensors") in message and str(a / "estimator.json") in message
    assert "not the one saved with" in message
    assert snapshot(tmp_path) == before


def test_a_folder_holding_other_files_is_refused_and_kept(two_fits, tmp_path):
    first, _ = two_fits
    (tmp_path / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    with pytest.raises(ValueError, match=r"holds 'notes.txt', which is not part of an estimator folder"):
        first.save(tmp_path)
    assert snapshot(tmp_path) == before
