"""One logdir, one running fit: a second fit (another process, or this one) is refused naming the
holder, touches none of the holder's files, and the lock dies with its process."""

import json
import os
import threading

import pytest

from reliability_cases import loaders, snapshot, solver
from strfsolver.solver import LogdirInUseError, checkpoint
from strfsolver.solver.logdir import LOCK_FILE, claim_logdir, lock_holder
from worker_process import Worker


@pytest.fixture(scope="module")
def held(tmp_path_factory):
    """A logdir held by a fit in another process, which waits after its first checkpoint."""
    logdir = tmp_path_factory.mktemp("held")
    worker = Worker("hold", logdir, 6)
    pid = int(worker.wait_for("locked").split()[1])
    yield logdir, pid, worker
    worker.kill()


@pytest.mark.parametrize("resume", [False, True], ids=["fresh", "resume"])
def test_a_second_fit_on_a_held_logdir_is_refused_naming_the_holder(held, resume):
    logdir, pid, _ = held
    before = snapshot(logdir)
    second = solver()
    with pytest.raises(LogdirInUseError, match=rf"logdir '.*' is in use by process {pid} on ") as raised:
        second.fit(*loaders(), max_epochs=2, logdir=logdir, resume=resume)
    assert raised.value.holder["pid"] == pid
    assert second.log == [] and snapshot(logdir) == before


def test_a_second_process_is_refused_too(held):
    logdir, pid, _ = held
    line = Worker("fit", logdir, 2).finish()
    assert line.startswith("refused ") and f"process {pid}" in line


def test_the_holder_is_readable_while_it_runs(held):
    logdir, pid, _ = held
    holder = lock_holder(logdir)
    assert holder["pid"] == pid and holder["host"] and holder["started"]


def test_a_fit_in_the_same_process_is_refused_while_the_logdir_is_claimed(tmp_path):
    with claim_logdir(tmp_path):
        with pytest.raises(LogdirInUseError, match=rf"in use by process {os.getpid()}"):
            solver().fit(*loaders(), max_epochs=1, logdir=tmp_path)
    assert len(solver().fit(*loaders(), max_epochs=1, logdir=tmp_path).log) == 1


def test_two_threads_on_one_logdir_one_fits_and_one_is_refused(tmp_path):
    outcomes = []
    started = threading.Barrier(2)

    def fit():
        fitting = solver()
        started.wait(timeout=30)
        try:
            fitting.fit(*loaders(), max_epochs=3, logdir=tmp_path, save_hook=lambda epoch, s: started_hold.wait(timeout=30))
            outcomes.append("fitted")
        except LogdirInUseError:
            outcomes.append("refused")
            started_hold.set()

    started_hold = threading.Event()
    threads = [threading.Thread(target=fit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["fitted", "refused"]
    assert checkpoint.load_checkpoint(tmp_path / checkpoint.LAST)["progress"]["epoch"] == 3


def test_the_lock_is_released_when_a_fit_fails(tmp_path):
    with pytest.raises(KeyError):
        solver(monitor="val_r2").fit(*loaders(), max_epochs=1, logdir=tmp_path)
    assert not (tmp_path / LOCK_FILE).exists()
    assert len(solver().fit(*loaders(), max_epochs=1, logdir=tmp_path).log) == 1


def test_the_error_survives_pickling_with_its_holder(tmp_path):
    import pickle

    error = LogdirInUseError(tmp_path, {"pid": 7, "host": "h", "started": "now", "command": "c"})
    copy = pickle.loads(pickle.dumps(error))
    assert copy.holder["pid"] == 7 and str(copy) == str(error)


def test_a_killed_holder_leaves_a_lock_the_next_fit_takes_over(held):
    # last in the file: it ends the holder the tests above shared
    logdir, pid, worker = held
    worker.kill()
    # the dead process' record stays behind; the kernel dropped its flock
    assert json.loads((logdir / LOCK_FILE).read_text())["pid"] == pid
    log = solver().fit(*loaders(), max_epochs=2, logdir=logdir, resume=True).log
    assert len(log) == 2 and not (logdir / LOCK_FILE).exists()
