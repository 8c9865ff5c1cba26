"""One ``logdir``, one running fit: the lock, and the checks made before a fit writes anything.

:py:meth:`~strfsolver.solver.Solver.fit` with a ``logdir`` holds
:py:func:`claim_logdir` for its whole run. Claiming a folder:

1. refuses a path that is a file, or a folder this process cannot write,
   with a ``ValueError`` naming it, before the first epoch rather than after;
2. says (a warning) when ``resume=True`` finds nothing to resume, so a
   mistyped path is not silently a fresh start;
3. takes the lock file :py:data:`LOCK_FILE`: an exclusive ``flock`` held
   while the fit runs, with the holder (process id, host, start time,
   command) written inside. A second fit on the same folder, in another
   process or in this one, gets :py:class:`LogdirInUseError` naming the
   holder. The file is removed when the fit ends; the operating system drops
   the lock when its process dies, even by SIGKILL, so a crashed fit never
   blocks the next one;
4. removes the temporary files a killed write left behind
   (:py:func:`strfsolver.utils.io.stale_temporaries`), which only the lock holder
   may do safely.

The lock needs POSIX ``fcntl.flock`` (Linux, macOS) on a local file system;
elsewhere steps 1, 2 and 4 still run and the lock is skipped with a warning.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import sys
import warnings
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Union

from strfsolver.utils.checks import short_repr
from strfsolver.utils import io
from strfsolver.utils.io import read_json

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

__all__ = ["LOCK_FILE", "LogdirInUseError", "claim_logdir", "lock_holder"]

#: the lock file inside a ``logdir``
LOCK_FILE = ".strfsolver.lock"


class LogdirInUseError(RuntimeError):
    """Another running fit holds the ``logdir``'s lock.

    Attributes:
        logdir: The folder.
        holder: What the holder wrote in the lock file (``pid``, ``host``,
            ``started``, ``command``), or ``{}`` if it could not be read.
    """

    def __init__(self, logdir: Path, holder: Dict[str, Any]):
        self.logdir, self.holder = Path(logdir), dict(holder)
        who = (
            f"process {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')} ({holder.get('command')})"
            if holder
            else "another process"
        )
        super().__init__(
            f"logdir {short_repr(str(logdir))} is in use by {who}: two fits writing to one logdir would overwrite each "
            "other's checkpoints. Wait for it to finish or use another logdir."
        )

    def __reduce__(self):
        return (type(self), (self.logdir, self.holder))


def lock_holder(logdir: Union[str, os.PathLike]) -> Optional[Dict[str, Any]]:
    """What the lock file of ``logdir`` says about its holder, or ``None`` when no fit holds it.

    A fit removes the file when it ends; one killed leaves it behind, unlocked
    (the next fit takes it over), so a record can be that of a dead process.
    """
    try:
        holder = read_json(Path(logdir) / LOCK_FILE)
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _check_folder(logdir: Path) -> None:
    if logdir.exists() and not logdir.is_dir():
        raise ValueError(f"logdir {short_repr(str(logdir))} is a file, not a folder; give fit() a folder for its checkpoints.")
    try:
        logdir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"logdir {short_repr(str(logdir))} cannot be created: {error.strerror or error}.") from None
    if not os.access(logdir, os.W_OK | os.X_OK):
        raise ValueError(f"logdir {short_repr(str(logdir))} is not writable by this process, so no checkpoint could be saved there.")


def _warn_nothing_to_resume(logdir: Path, existed: bool, last_name: str) -> None:
    why = "does not exist" if not existed else f"has no {last_name}"
    warnings.warn(
        f"fit(resume=True): logdir {short_repr(str(logdir))} {why}, so there is nothing to resume; the fit starts afresh. "
        "Check the path if you meant to continue a run.",
        UserWarning,
        stacklevel=5,
    )


def _holder_record() -> Dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv)[:300],
    }


def _lock(logdir: Path) -> Optional[int]:
    """The file descriptor holding the folder's lock; ``None`` where ``flock`` does not exist."""
    if fcntl is None:  # pragma: no cover - not POSIX
        warnings.warn("this platform has no fcntl.flock: the logdir is not locked against a second fit.", UserWarning, stacklevel=4)
        return None
    path = logdir / LOCK_FILE
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as error:
            # os.access cannot tell for root, or on read-only and special file systems
            raise ValueError(f"logdir {short_repr(str(logdir))} is not writable by this process ({error.strerror or error}), so no checkpoint could be saved there.") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LogdirInUseError(logdir, lock_holder(logdir) or {}) from None
        except BaseException:
            os.close(fd)
            raise
        # the file may have been replaced between open and flock: then the lock guards nothing
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    record = (json.dumps(_holder_record()) + "\n").encode("utf-8")
    try:
        # no fsync: the record only names the holder while it runs, and the flock is what guards
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def claim_logdir(logdir: Union[str, os.PathLike], resume: bool = False, last_name: str = "checkpoint_last.safetensors") -> Iterator[Path]:
    """Hold ``logdir`` for one fit (see the module docstring); yields it as a ``Path``.

    Args:
        logdir: The fit's checkpoint folder (created).
        resume: Whether the fit will resume; warns when there is nothing to resume.
        last_name: The file a resumed fit continues from.

    Raises:
        ValueError: if ``logdir`` is a file or cannot be written.
        LogdirInUseError: if another fit holds it.
    """
    logdir = Path(logdir)
    existed = logdir.is_dir()
    _check_folder(logdir)
    fd = _lock(logdir)
    try:
        # the indexed checkpoints' folder too (strfsolver.solver.recovery.CHECKPOINT_FOLDER)
        for stale in io.stale_temporaries(logdir) + io.stale_temporaries(logdir / "checkpoints"):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        if resume and not (logdir / last_name).is_file():
            _warn_nothing_to_resume(logdir, existed, last_name)
        yield logdir
    finally:
        if fd is not None:
            # removed while still held, so no other fit can lock the file in between; one that opened
            # it already finds it unlinked after its flock (the inode check in _lock) and starts over
            with contextlib.suppress(FileNotFoundError):
                (logdir / LOCK_FILE).unlink()
            os.close(fd)
