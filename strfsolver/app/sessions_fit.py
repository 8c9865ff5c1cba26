"""``strfsolver fit CONFIG`` with ``sessions: {name: data file}``: several recordings, one shared core.

The config names one data file per session instead of ``data``; every other
key means what it means for one file (:py:mod:`strfsolver.app.fit_config`),
applied to each session: each is split by stimulus with ``valid_fraction``,
``test_fraction`` and ``split_seed``, and the model named by ``model`` is
built with one readout per session (``n_neurons={session: N_s}``) and
fitted by the ``"multi-session"`` solver (``solver`` is ``"auto"`` or
``"multi-session"``). It writes

- ``summary.csv``: one row per neuron of every session, with ``session``,
  ``neuron`` (its index in the session), ``neuron_id``, the validation
  metrics, ``test_<metric>`` with a test split, and the validation data's ``snr``;
- ``history.csv`` (one row per epoch) and ``learning_curves.png``;
- ``model/``: the fitted model with every session's readout
  (``strfsolver.models.from_pretrained(logdir / "model")``), and the
  checkpoints under ``fit/`` (``--resume`` continues from them).

Keys that name stimuli of one file (``valid_stimuli``, ``test_stimuli``),
several ``seeds``, ``loggers`` and ``freqs_hz`` are refused with several sessions.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Dict, Mapping

from strfsolver.app.config_schema import FIT_SCHEMA, ConfigError, defaults
from strfsolver.app.fit_data import load_data, split_data
from strfsolver.app.report import has_matplotlib, plot_learning_curves, rows_to_csv, summary_lines
from strfsolver.loggers.files import history_to_csv
from strfsolver.utils.io import atomic_write_text

__all__ = ["run_sessions_fit", "REFUSED_WITH_SESSIONS"]

#: config keys that have no meaning for several sessions yet, and why
REFUSED_WITH_SESSIONS = {
    "valid_stimuli": "the sessions have stimuli of their own; use 'valid_fraction'",
    "test_stimuli": "the sessions have stimuli of their own; use 'test_fraction'",
    "loggers": "a multi-session fit writes history.csv; tracking loggers are not wired to it yet",
    "freqs_hz": "the multi-session report draws no STRF figure",
}


def _check_keys(config: Mapping[str, Any]) -> None:
    keys = defaults(FIT_SCHEMA)
    for key, why in REFUSED_WITH_SESSIONS.items():
        if config[key] != keys[key]:
            raise ConfigError(f"config key {key!r} is not used with 'sessions' ({why}); leave it out")
    if len(config["seeds"]) != 1:
        raise ConfigError(f"config key 'seeds': a fit of several sessions takes one seed, got {config['seeds']}")
    if config["solver"] not in ("auto", "multi-session"):
        raise ConfigError(f"config key 'solver': several sessions are fitted by 'multi-session', got {config['solver']!r}")


def run_sessions_fit(config: Mapping[str, Any], *, progress: bool = True, resume: bool = False,
                     print_fn: Callable[[str], Any] = print) -> Dict[str, Any]:
    """Fit a validated config with ``sessions`` and write the report; see the module docstring.

    Returns:
        ``{"summary": rows, "solver": the fitted solver, "files": {name: path}, "seconds": float}``.
    """
    from strfsolver import models, solver as solvers
    from strfsolver.data import check_sessions, neural_collate, session_loaders
    from strfsolver.metrics import snr as snr_metric
    from strfsolver.utils.seeding import seeded
    from strfsolver.workflow.experiment import choose_batch_size, choose_model

    start = time.perf_counter()
    _check_keys(config)
    datasets = {name: load_data({**config, "data": path}) for name, path in config["sessions"].items()}
    try:
        datasets = check_sessions(datasets, "config key 'sessions'")
    except ValueError as error:
        raise ConfigError(str(error)) from None
    splits = {name: split_data(dataset, config) for name, dataset in datasets.items()}
    train = {name: parts[0] for name, parts in splits.items()}
    valid = {name: parts[1] for name, parts in splits.items()}
    test = {name: parts[2] for name, parts in splits.items() if parts[2] is not None} or None
    first = next(iter(datasets.values()))
    model_options = dict(config["model_options"])
    model_options.setdefault("n_lags", 20)
    model_options.setdefault("dt_ms", first.dt_ms)
    model_name = choose_model([r for d in train.values() for r in d.responses]) if config["model"] == "auto" else config["model"]
    batch_size = choose_batch_size(min(d.n_stims for d in train.values())) if config["batch_size"] == "auto" else config["batch_size"]
    seed, out = config["seeds"][0], Path(config["logdir"])

    def loaders(parts, shuffle):
        return session_loaders(parts, batch_size=batch_size, shuffle=shuffle, seed=seed, device=config["device"])

    with seeded(seed):
        try:
            model = models.init(model_name, n_freqs=first.n_freqs, n_neurons={n: d.n_neurons for n, d in datasets.items()}, **model_options)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"config key 'model_options': {str(error).splitlines()[0]}") from None
        try:
            fitter = solvers.init("multi-session", model=model, criterion=config["loss"], device=config["device"],
                                  progress=progress, seed=seed, **config["solver_options"])
        except (TypeError, ValueError) as error:
            raise ConfigError(f"config key 'solver_options': {str(error).splitlines()[0]}") from None
        out.mkdir(parents=True, exist_ok=True)  # once the config has passed every check
        print_fn(f"fitting {model_name!r} to {len(datasets)} sessions ("
                 + ", ".join(f"{n}: {d.n_neurons} neurons" for n, d in datasets.items())
                 + f") with one shared core, seed {seed}")
        fitter.fit(loaders(train, True), loaders(valid, False), test_loader=None if test is None else loaders(test, False),
                   logdir=out / "fit", resume=resume)

    scored = {"": fitter.validation(loaders(valid, False))}
    if test is not None:
        scored["test_"] = fitter.validation(loaders(test, False))
    rows = []
    for name, dataset in datasets.items():
        data_snr = snr_metric(neural_collate([valid[name][i] for i in range(len(valid[name]))])["responses"].double())
        for n, neuron_id in enumerate(dataset.neuron_ids):
            row: Dict[str, Any] = {"session": name, "neuron": n, "neuron_id": neuron_id}
            for prefix, values in scored.items():
                row.update({f"{prefix}{metric}": float(values[name][metric][n]) for metric in fitter.metrics})
            row["snr"] = float(data_snr[n])
            rows.append(row)
    files = {"summary": out / "summary.csv", "history": out / "history.csv"}
    atomic_write_text(files["summary"], rows_to_csv(rows))
    atomic_write_text(files["history"], history_to_csv(fitter.log))
    files["model"] = model.save_pretrained(out / "model")
    if has_matplotlib():
        files["learning_curves"] = out / "learning_curves.png"
        plot_learning_curves(files["learning_curves"], fitter.log, {"val_cc": "val_cc", "val_cc_norm": "val_cc_norm"},
                             score_label="validation score (mean over all neurons)", best_epoch=fitter.best_epoch_,
                             title=f"learning curves, {len(datasets)} sessions")
    seconds = time.perf_counter() - start
    keys = [k for k in rows[0] if k not in ("session", "neuron", "neuron_id")]
    print_fn(f"\nper-neuron validation metrics ({len(rows)} neurons of {len(datasets)} sessions):")
    for line in summary_lines(rows, keys, width=18):
        print_fn(line)
    print_fn(f"\nwrote {', '.join(str(p) for p in files.values())} and fit/ in {seconds:.1f} s")
    return {"summary": rows, "solver": fitter, "files": files, "seconds": seconds}
