"""``strfsolver compare CONFIG`` with ``sessions: {name: data file}``: a shared core against per-session models.

The config names one data file per session instead of ``data``; each model
spec of ``models`` also says how it treats the sessions, ``"sessions":
"shared"`` (one model with a readout per session, fitted on all sessions)
or ``"per-session"`` (one model per session), with the keys ``model``,
``model_options``, ``solver_options`` (of the ``"multi-session"`` solver),
``loss`` and ``batch_size``. ``cv`` (a number of folds, or ``{"n_splits",
"shuffle", "seed"}``), ``metric``, ``seed``, ``valid_fraction``, ``n_boot``
and ``data_options`` mean what they mean for one file; ``param_grids`` and
``inner_cv`` are refused. Every session's stimuli are dealt into the same
number of folds and every model sees the same folds
(:py:func:`strfsolver.model_selection.compare_sessions`). It writes
``scores.csv`` (one row per model, session and neuron), ``pairs.csv`` and
``models.csv``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Union

from strfsolver.app.config_schema import COMPARE_SCHEMA, ConfigError, defaults, validate_keys
from strfsolver.app.fit_data import load_data
from strfsolver.utils.checks import short_repr

__all__ = ["run_compare_sessions"]


def run_compare_sessions(config: Mapping[str, Any], logdir: Optional[Union[str, os.PathLike]] = None, *,
                         print_fn: Callable[[str], Any] = print) -> Dict[str, Any]:
    """Run a ``sessions`` comparison config (already read) and write its tables; see the module docstring.

    Returns:
        ``{"result": SessionComparison, "files": {name: path}, "seconds": float}``.
    """
    from strfsolver.model_selection import StimulusKFold, compare_sessions

    start = time.perf_counter()
    full = validate_keys(config, COMPARE_SCHEMA)
    keys = defaults(COMPARE_SCHEMA)
    for key in ("param_grids", "inner_cv"):
        if full[key] != keys[key]:
            raise ConfigError(f"config key {key!r} is not used with 'sessions' (no nested search of several sessions yet); leave it out")
    out = logdir if logdir is not None else full["logdir"]
    if out is None:
        raise ConfigError("no output folder: pass --logdir DIR or set the config key 'logdir'")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--logdir {short_repr(str(out))} is a file; the comparison writes a folder of tables")
    cv = full["cv"]
    try:
        cv = StimulusKFold(**cv) if isinstance(cv, Mapping) else cv
        datasets = {name: load_data({**full, "data": path}) for name, path in full["sessions"].items()}
        result = compare_sessions(full["models"], datasets, cv=cv, metric=full["metric"], n_boot=full["n_boot"],
                                  seed=full["seed"], valid_fraction=full["valid_fraction"])
    except (TypeError, ValueError) as error:
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"config key 'models' or 'sessions': {str(error).splitlines()[0]}") from None
    files = result.save_tables(out)
    seconds = time.perf_counter() - start
    print_fn(result.models.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print_fn(result.pairs[["model_a", "model_b", "median_diff", "ci_low", "ci_high", "p_value", "wins"]].to_string(
        index=False, float_format=lambda v: f"{v:.3g}"))
    print_fn(f"\nwrote {', '.join(str(p) for p in files.values())} in {seconds:.1f} s")
    return {"result": result, "files": files, "seconds": seconds}
