"""Faults: a fit killed by SIGKILL (between epochs, in the middle of a checkpoint write, at a random
moment) leaves loadable checkpoints and resumes bit for bit; a write that fails midway leaves the
old file byte-identical and no temporary file. Killed fits run in subprocesses, every wait bounded."""

import errno
import os
import random
import time

import pytest
import torch

from reliability_cases import loaders, snapshot, solver
from strfsolver.utils import io
from strfsolver.solver import checkpoint
from fault_worker import run
from worker_process import Worker

EPOCHS = 6


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The digest of the final parameters of a fit that nobody interrupts."""
    return run("fit", tmp_path_factory.mktemp("uninterrupted"), EPOCHS)


def _loadable(logdir):
    for name in (checkpoint.LAST, checkpoint.BEST):
        state = checkpoint.load_checkpoint(logdir / name)
        assert all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())
    return checkpoint.load_checkpoint(logdir / checkpoint.LAST)["progress"]["epoch"]


def test_a_fit_killed_between_epochs_resumes_bit_exactly(tmp_path, uninterrupted):
    worker = Worker("fit", tmp_path, EPOCHS)
    worker.wait_for("saved 1")
    worker.kill()
    assert worker.killed
    assert _loadable(tmp_path) >= 2
    assert run("resume", tmp_path, EPOCHS) == uninterrupted


def test_a_fit_killed_during_a_checkpoint_write_keeps_the_old_file_and_resumes_bit_exactly(tmp_path, uninterrupted):
    worker = Worker("stall-write", tmp_path, EPOCHS)
    worker.wait_for("renaming")
    before = (tmp_path / checkpoint.LAST).read_bytes()
    worker.kill()
    assert worker.killed
    assert (tmp_path / checkpoint.LAST).read_bytes() == before
    stale = io.stale_temporaries(tmp_path)
    assert [p.name.startswith(".checkpoint_last.safetensors.") for p in stale] == [True]
    _loadable(tmp_path)
    assert run("resume", tmp_path, EPOCHS) == uninterrupted
    assert io.stale_temporaries(tmp_path) == []


#: long enough that the random moment below always falls inside the fit, however fast the machine
LONG_EPOCHS = 40


@pytest.fixture(scope="module")
def uninterrupted_long(tmp_path_factory):
    return run("fit", tmp_path_factory.mktemp("uninterrupted_long"), LONG_EPOCHS)


def test_a_fit_killed_at_a_random_moment_resumes_bit_exactly(tmp_path, uninterrupted_long):
    worker = Worker("fit", tmp_path, LONG_EPOCHS)
    worker.wait_for("saved 0")
    # somewhere inside the next epochs, or inside a write: the seed makes the moment reproducible
    time.sleep(random.Random(13).uniform(0.0, 0.3))
    worker.kill()
    assert worker.killed
    _loadable(tmp_path)
    assert run("resume", tmp_path, LONG_EPOCHS) == uninterrupted_long


def _fail_at(monkeypatch, name):
    real = getattr(os, name)

    def failing(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device (simulated)")

    monkeypatch.setattr(os, name, failing)
    return real


class HalfWritten:
    """A file handle whose write stores half of the bytes, then finds the disk full."""

    def __init__(self, handle):
        self.handle = handle

    def write(self, data):
        self.handle.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device (simulated)")

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()


def _fail_in_write(monkeypatch):
    real = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda *args, **kwargs: HalfWritten(real(*args, **kwargs)))


@pytest.mark.parametrize("where", ["fsync", "replace", "write"])
def test_a_write_failing_midway_leaves_the_old_checkpoint_byte_identical(tmp_path, monkeypatch, where):
    fitted = solver()
    fitted.fit(*loaders(), max_epochs=1)
    path = fitted.save(tmp_path)
    before = snapshot(tmp_path)
    fitted.fit(*loaders(), max_epochs=2)
    if where == "write":
        _fail_in_write(monkeypatch)
    else:
        _fail_at(monkeypatch, where)
    with pytest.raises(OSError, match="No space left on device"):
        fitted.save(tmp_path)
    monkeypatch.undo()
    assert snapshot(tmp_path) == before
    assert checkpoint.load_checkpoint(path)["progress"]["epoch"] == 1


def test_a_fit_whose_checkpoint_write_fails_releases_its_logdir(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error (simulated)")))
    with pytest.raises(OSError, match="I/O error"):
        solver().fit(*loaders(), max_epochs=2, logdir=tmp_path)
    monkeypatch.undo()
    assert io.stale_temporaries(tmp_path) == []
    assert len(solver().fit(*loaders(), max_epochs=1, logdir=tmp_path).log) == 1


def test_stale_temporaries_are_removed_when_the_next_fit_starts(tmp_path):
    for name in (".checkpoint_last.safetensors.0123456789ab.tmp", ".checkpoint_best.safetensors.ba9876543210.tmp"):
        (tmp_path / name).write_bytes(b"half a checkpoint")
    (tmp_path / "notes.tmp").write_text("mine")
    solver().fit(*loaders(), max_epochs=1, logdir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [checkpoint.BEST, checkpoint.LAST, "notes.tmp"]


def test_a_logdir_that_is_a_file_is_refused_before_training(tmp_path):
    target = tmp_path / "run"
    target.write_text("keep")
    fitting = solver()
    with pytest.raises(ValueError, match=r"logdir '.*run' is a file, not a folder"):
        fitting.fit(*loaders(), max_epochs=1, logdir=target)
    assert fitting.log == [] and target.read_text() == "keep"


def test_a_logdir_that_cannot_be_written_is_refused_before_training():
    # /sys refuses new files even to root, which chmod cannot arrange
    fitting = solver()
    with pytest.raises(ValueError, match=r"logdir '/sys' is not writable by this process"):
        fitting.fit(*loaders(), max_epochs=1, logdir="/sys")
    assert fitting.log == []


def test_a_logdir_that_cannot_be_created_is_refused_before_training():
    fitting = solver()
    with pytest.raises(ValueError, match=r"logdir '/proc/strfsolver-run' cannot be created"):
        fitting.fit(*loaders(), max_epochs=1, logdir="/proc/strfsolver-run")
    assert fitting.log == []


def test_resume_with_a_missing_logdir_says_it_starts_afresh(tmp_path):
    with pytest.warns(UserWarning, match=r"fit\(resume=True\): logdir '.*mistyped' does not exist, so there is nothing to resume"):
        solver().fit(*loaders(), max_epochs=1, logdir=tmp_path / "mistyped", resume=True)


def test_resume_with_an_empty_logdir_says_it_starts_afresh(tmp_path):
    with pytest.warns(UserWarning, match=r"has no checkpoint_last.safetensors, so there is nothing to resume"):
        solver().fit(*loaders(), max_epochs=1, logdir=tmp_path, resume=True)


@pytest.mark.parametrize("option, old, new, kept", [
    ("lr", 1e-2, 5e-2, "the checkpoint's value goes on"),
    ("patience", 5, 9, "the new value is used"),
    ("grad_clip", None, 1.0, "the new value is used"),
])
def test_resume_with_a_changed_option_warns_naming_it(tmp_path, option, old, new, kept):
    solver(**{option: old}).fit(*loaders(), max_epochs=2, logdir=tmp_path)
    with pytest.warns(UserWarning, match=rf"options that differ from the run that wrote it: {option}: {old!r} in the checkpoint, {new!r} now \({kept}\)"):
        solver(**{option: new}).fit(*loaders(), max_epochs=3, logdir=tmp_path, resume=True)


def test_resume_with_the_same_options_and_more_epochs_does_not_warn(tmp_path, recwarn):
    solver().fit(*loaders(), max_epochs=2, logdir=tmp_path)
    solver().fit(*loaders(), max_epochs=3, logdir=tmp_path, resume=True)
    said = [str(w.message) for w in recwarn]
    assert not [m for m in said if "differ from the run that wrote it" in m or "nothing to resume" in m], said
