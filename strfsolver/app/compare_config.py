"""``strfsolver compare CONFIG --logdir DIR``: cross-validate several models on a data file and compare them.

A config is a JSON or YAML file with these keys; ``data`` and ``models`` are required:

=================  =========================================================
key                meaning (default)
=================  =========================================================
``data``           path of a ``.npz`` or ``.nwb`` file, as for ``strfsolver fit``
``sessions``       instead of ``data``: ``{session name: data file}``, to compare
                   a core shared by the sessions with per-session models
                   (:py:mod:`strfsolver.app.compare_sessions`)
``data_options``   keyword arguments of ``from_nwb`` (``{}``)
``logdir``         the folder the comparison writes into (``--logdir`` on
                   the command line wins); ``out``, its old name, is taken
                   for one release
``models``         ``{name: spec}``; a spec has the model keys of a
                   ``strfsolver fit`` config: ``model``, ``model_options``
                   (``n_lags`` defaults to 20), ``solver``, ``solver_options``,
                   ``loss``, ``batch_size``, ``seeds``, ``device``
``cv``             folds: a number, ``"loso"``, or ``{"n_splits": 5,
                   "shuffle": true, "seed": 0}`` (``5``)
``param_grids``    ``{name: {"solver_options.lr": [...], ...}}``: nested
                   search for those models (``{}``)
``inner_cv``       folds of the nested search (``3``)
``metric``         the per-neuron score compared (``"cc_norm"``)
``seed``           seed of every fit (``0``)
``valid_fraction`` share of a fold's training stimuli a gradient solver
                   stops early on, or ``"auto"``: a fifth, 1 to 10 (``"auto"``)
``n_boot``         bootstrap resamples of the median difference (``2000``)
=================  =========================================================

It writes ``scores.csv`` (one row per model, fold and neuron),
``summary.csv`` (one row per model and neuron), ``pairs.csv``,
``models.csv``, the figures and a self-contained ``report.html``. Each
finished fold is stored under ``folds/``: running the command again does
not refit it, so an interrupted comparison continues where it stopped.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Union

from strfsolver.app.config_schema import COMPARE_SCHEMA, ConfigError, defaults, validate_keys
from strfsolver.app.fit_config import load_config
from strfsolver.app.fit_data import load_data
from strfsolver.utils.checks import short_repr
from strfsolver.utils.deprecation import renamed

__all__ = ["COMPARE_KEYS", "validate_compare_config", "run_compare"]

#: every key a compare config may hold, with its default (``...`` = required); the checks are in COMPARE_SCHEMA
COMPARE_KEYS: Dict[str, Any] = defaults(COMPARE_SCHEMA)


def _splitter(value: Any, key: str):
    from strfsolver.model_selection import StimulusKFold, check_cv

    try:
        if isinstance(value, Mapping):
            return StimulusKFold(**value)
        return check_cv(value, key)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"config key {short_repr(key)}: {error}") from None


def validate_compare_config(config: Mapping[str, Any]) -> Dict[str, Any]:
    """Check the keys, fill in defaults and build the specs; raises :py:class:`~strfsolver.app.fit_config.ConfigError`."""
    from strfsolver.model_selection.folds import as_spec, expand_grid

    full = validate_keys(config, COMPARE_SCHEMA)
    if full["data"] is None or full["sessions"] is not None:
        raise ConfigError("config key 'data' is required" if full["sessions"] is None else
                          "config keys 'data' and 'sessions' exclude each other: give one of them")
    specs = {}
    for name, spec in full["models"].items():
        spec["model_options"] = dict({"n_lags": 20}, **spec.get("model_options", {}))
        try:
            specs[name] = as_spec(spec, f"config key 'models': {short_repr(name)}")
        except ValueError as error:
            raise ConfigError(str(error)) from None
    for name, grid in full["param_grids"].items():
        if name not in specs:
            raise ConfigError(f"config key 'param_grids' names {short_repr(name)}, which is not among the models {short_repr(list(specs))}")
        try:
            expand_grid(grid)
        except ValueError as error:
            raise ConfigError(f"config key 'param_grids': {short_repr(name)}: {error}") from None
    full["cv_splitter"] = _splitter(full["cv"], "cv")
    full["inner_splitter"] = _splitter(full["inner_cv"], "inner_cv")
    full["specs"] = specs
    return full


def run_compare(
    config: Union[Mapping[str, Any], str, os.PathLike],
    logdir: Optional[Union[str, os.PathLike]] = None,
    *,
    workers: int = 0,
    progress: bool = True,
    plots: bool = True,
    print_fn: Callable[[str], Any] = print,
    out: Optional[Union[str, os.PathLike]] = None,
) -> Dict[str, Any]:
    """Run the comparison a config describes and write its files; see the module docstring.

    Args:
        config: A config dict or the path of a JSON/YAML config.
        logdir: The folder to write into (overrides the config's ``logdir``).
        workers: Fit the (model, fold) pairs on this many worker processes (0: here, in order).
        progress: A progress bar over folds and models.
        plots: Draw the figures (needs matplotlib); the report then embeds them.
        print_fn: Where the table goes.
        out: Old name of ``logdir``, taken for one release (with a ``DeprecationWarning``).

    Returns:
        ``{"result": ComparisonResult, "files": {name: path}, "seconds": float}``.
    """
    from strfsolver.model_selection import compare
    from strfsolver.model_selection.html_report import write_report
    from strfsolver.app.report import has_matplotlib

    start = time.perf_counter()
    out = renamed(logdir, out, "logdir", "out", where="run_compare()")
    if not isinstance(config, Mapping):
        config = load_config(config)
    if config.get("sessions") is not None and config.get("data") is None:  # several recordings: strfsolver.app.compare_sessions
        from strfsolver.app.compare_sessions import run_compare_sessions

        return run_compare_sessions(config, logdir, print_fn=print_fn)
    full = validate_compare_config(config)
    if out is None:
        out = full["logdir"]
    if out is None:
        raise ConfigError("no output folder: pass --logdir DIR or set the config key 'logdir'")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--logdir {short_repr(str(out))} is a file; the comparison writes a folder of tables, figures and report.html")
    if not Path(full["data"]).is_file():
        raise ConfigError(f"config key 'data': no file at {full['data']}")
    dataset = load_data(dict(full))
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    print_fn(f"comparing {', '.join(full['specs'])} on {dataset.n_neurons} neurons and {dataset.n_stims} stimuli, {full['cv_splitter']!r}")
    executor = None
    if workers:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        result = compare(
            full["specs"], dataset, cv=full["cv_splitter"], inner_cv=full["inner_splitter"],
            param_grids=full["param_grids"] or None, executor=executor, metric=full["metric"], n_boot=full["n_boot"],
            seed=full["seed"], valid_fraction=full["valid_fraction"], logdir=out, progress=progress,
            threads=1 if workers else None,
        )
    except ValueError as error:
        if created and not any(out.iterdir()):
            out.rmdir()  # a refused comparison leaves nothing behind
        raise ConfigError(str(error).splitlines()[0]) from None
    finally:
        if executor is not None:
            executor.shutdown()
    files: Dict[str, Path] = dict(result.save_tables(out))
    figures: Dict[str, Path] = {}
    if plots and has_matplotlib():
        from strfsolver.model_selection.figures import write_figures

        figures = write_figures(result, out)
        files.update(figures)
    elif plots:
        print_fn("note: matplotlib is not installed, so the figures were skipped (pip install strfsolver[plot]).")
    settings = {
        "data": full["data"], "neurons": dataset.n_neurons, "stimuli": dataset.n_stims, "folds": repr(full["cv_splitter"]),
        "metric": full["metric"], "seed": full["seed"],
        **{f"model {name}": json.dumps({k: v for k, v in vars(spec).items() if v not in (None, (), [], {})}, default=str) for name, spec in full["specs"].items()},
    }
    files["report"] = write_report(result, out, figures, settings)
    seconds = time.perf_counter() - start
    print_fn("")
    print_fn(result.models.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print_fn("")
    print_fn(result.pairs[["model_a", "model_b", "median_diff", "ci_low", "ci_high", "p_value", "wins"]].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print_fn(f"\nwrote {len(files)} files to {out} (report.html, scores.csv, summary.csv, pairs.csv...) in {seconds:.1f} s")
    return {"result": result, "files": files, "seconds": seconds}
