"""Folders written whole or not at all.

:py:func:`write_folder` gives the caller a temporary sibling folder
(``.<name>.<pid>-<hex>.tmp``) to fill, then puts it in place by renames: an
existing folder is first renamed aside (``.<name>.<pid>-<hex>.old``), the new
one renamed in, and the old one removed. A crash at any moment therefore
leaves either the old complete folder or the new complete one:

* before the old folder is renamed aside: the old folder, plus a temporary
  that :py:func:`recover_folder` removes;
* between the two renames: no folder, but the old one aside, which
  :py:func:`recover_folder` renames back;
* after the new folder is renamed in: the new folder, plus an aside copy that
  :py:func:`recover_folder` removes.

Every save and every load of such a folder calls :py:func:`recover_folder`
first. Temporaries of a process that is still running are left alone.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Collection, Iterator, List, Union
from strfsolver.utils.checks import short_repr

__all__ = ["write_folder", "recover_folder", "leftovers"]

PathLike = Union[str, os.PathLike]


def _leftover_pattern(name: str) -> "re.Pattern[str]":
    return re.compile(rf"^\.{re.escape(name)}\.(\d+)-[0-9a-f]{{12}}\.(tmp|old)$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process is not inside another write_folder of the same folder
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def leftovers(path: PathLike) -> List[Path]:
    """The temporary and aside folders that writes of ``path`` left beside it."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    pattern = _leftover_pattern(path.name)
    return sorted(p for p in path.parent.iterdir() if pattern.match(p.name) and p.is_dir())


def recover_folder(path: PathLike) -> None:
    """Finish what a write of ``path`` that died left: put the old folder back, remove the rest.

    Leftovers of a process still running are left to it.
    """
    path = Path(path)
    pattern = _leftover_pattern(path.name)
    found = [(p, pattern.match(p.name)) for p in leftovers(path)]
    found = [(p, int(m.group(1)), m.group(2)) for p, m in found if m]
    asides = [p for p, pid, kind in found if kind == "old" and not _alive(pid)]
    if asides and not os.path.lexists(path):
        # died between the two renames: the old complete folder goes back in place
        newest = max(asides, key=lambda p: p.stat().st_mtime)
        os.rename(newest, path)
        asides.remove(newest)
    for leftover in asides + [p for p, pid, kind in found if kind == "tmp" and not _alive(pid)]:
        shutil.rmtree(leftover, ignore_errors=True)


def _sibling(path: Path, kind: str) -> Path:
    return path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(6)}.{kind}"


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def write_folder(path: PathLike, owned: Collection[str], what: str = "the folder") -> Iterator[Path]:
    """Fill a temporary sibling of ``path`` in the ``with`` block; on success it replaces ``path``.

    Args:
        path: The folder to write. An existing one is replaced, but only if it
            holds nothing but the entries ``owned`` names (what a previous write
            put there); anything else in it is refused, never deleted.
        owned: The names of the entries the folder holds.
        what: How the messages name the folder (e.g. ``"an estimator folder"``).

    Raises:
        ValueError: ``path`` is a file, or a folder holding other entries.
    """
    path = Path(path)
    if os.path.lexists(path) and not path.is_dir():
        raise ValueError(f"{path} is a file, not a folder; {what} is written as a folder, so give a new or empty folder.")
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_folder(path)
    if path.is_dir():
        foreign = sorted(p.name for p in path.iterdir() if p.name not in owned)
        if foreign:
            raise ValueError(
                f"{path} holds {short_repr(foreign[0])}, which is not part of {what}; saving replaces the whole folder, "
                "so give a new or empty folder (nothing was written)."
            )
    temporary = _sibling(path, "tmp")
    temporary.mkdir()
    try:
        yield temporary
        _fsync_folder(temporary)
        if path.is_dir():
            aside = _sibling(path, "old")
            os.rename(path, aside)
            try:
                os.rename(temporary, path)
            except BaseException:
                os.rename(aside, path)
                raise
            _fsync_folder(path.parent)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.rename(temporary, path)
            _fsync_folder(path.parent)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)
