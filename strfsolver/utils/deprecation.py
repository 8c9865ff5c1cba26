"""Renamed settings: the old spelling keeps working for one release, with a ``DeprecationWarning``.

Every setting has one name across Python, config files and the command line
(``progress`` for the progress bar, ``logdir`` for the folder a fit, a run
or a command writes into). Where a setting had another name before,
:py:func:`renamed` decides which value to use, at every place that still
takes the old spelling::

    logdir = renamed(logdir, out, "logdir", "out", where="compare()")
"""

from __future__ import annotations

import warnings
from typing import Any
from strfsolver.utils.checks import short_repr

__all__ = ["renamed"]


def renamed(
    new_value: Any,
    old_value: Any,
    new: str,
    old: str,
    *,
    where: str = "",
    default: Any = None,
    error: type = TypeError,
    stacklevel: int = 3,
) -> Any:
    """The value of a setting renamed from ``old`` to ``new``.

    Args:
        new_value: What was given under the new name (``default`` when nothing was).
        old_value: What was given under the old name; ``None`` when nothing was.
        new, old: The two names, as the user spells them (``"logdir"``, ``"--out"``).
        where: What takes the setting, to start the messages (``"compare()"``,
            ``"config"``); empty for none.
        default: The new name's default: a ``new_value`` that is not this object was given.
        error: The exception raised when both names were given (``TypeError`` for
            keyword arguments, as Python's own; a ``ValueError`` subclass for configs).
        stacklevel: Of the warning, counted from this function (3: the caller's caller).

    Returns:
        ``new_value`` when the old name was not given, else ``old_value``, with a
        ``DeprecationWarning`` that names the new name.

    Raises:
        error: when both names were given.
    """
    if old_value is None:
        return new_value
    prefix = f"{where}: " if where else ""
    if new_value is not default:
        raise error(f"{prefix}{short_repr(old)} and {short_repr(new)} are the same setting ({short_repr(old)} is its old name); give only {short_repr(new)}.")
    warnings.warn(
        f"{prefix}{short_repr(old)} is now called {short_repr(new)}; {short_repr(old)} will be removed in the next release.",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
    return old_value
