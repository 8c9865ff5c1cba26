"""``strfsolver fit CONFIG``: fit a model to a data file described by a config.

A config is a JSON or YAML file (YAML needs ``pip install strfsolver[yaml]``)
with these keys; only ``data`` (or ``sessions``) and ``logdir`` are required:

=================  =========================================================
key                meaning (default)
=================  =========================================================
``data``           path of a ``.npz`` (:py:func:`strfsolver.data.load_npz`)
                   or ``.nwb`` file (:py:func:`strfsolver.data.from_nwb`),
                   or a dataset folder (:py:func:`strfsolver.data.open_folder`:
                   read per batch, never loaded whole), relative to the config file
``sessions``       instead of ``data``: ``{session name: data file}`` of several
                   recordings, fitted with one shared core and a readout per
                   session (:py:mod:`strfsolver.app.sessions_fit`)
``data_options``   keyword arguments of ``from_nwb`` (``{}``)
``logdir``         the folder the fit writes into, relative to the config
                   file (``out``, its old name, is taken for one release)
``model``          registered model name, or ``"auto"``: ``"ln"`` for
                   responses that never go below zero, else ``"linear"`` (``"auto"``)
``model_options``  keyword arguments of the model; ``n_lags`` (20) lives here
``solver``         registered solver name, or ``"auto"``: ``"ridge"`` for the
                   ``"linear"`` model, ``"population"`` otherwise (``"auto"``)
``solver_options`` keyword arguments of the solver (``lr``, ``max_epochs``,
                   ``patience``, ...)
``loss``           registered loss name (``"mse"``)
``seeds``          list of seeds, one fit each (``[0]``)
``valid_fraction`` fraction of the stimuli held out for early stopping, or
                   ``"auto"``: a fifth, at least 1 and at most 10 stimuli
                   (``"auto"``)
``test_fraction``  fraction held out for a final test (0)
``split_seed``     seed of the split by stimulus (0)
``batch_size``     stimuli per batch, or ``"auto"``: a quarter of the training
                   stimuli, 1 to 8 (``"auto"``)
``device``         where to train: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` (``"cpu"``)
``valid_stimuli``  the validation stimuli by position or name (the data
                   file's ``stim_names``), instead of ``valid_fraction``
``test_stimuli``   the test stimuli by position or name, instead of
                   ``test_fraction``
``loggers``        loggers of every seed's fit: names among ``csv``,
                   ``jsonl``, ``tensorboard``, ``wandb``, or mappings
                   ``{"kind": ..., options}``; they write into
                   ``seeds/seed_<n>/`` (``[]``)
``freqs_hz``       band centre frequencies, to label the STRF figure in kHz
=================  =========================================================

It writes the same report as ``strfsolver demo`` (``summary.csv`` with one
row per neuron, ``history.csv``, ``strfs.png`` for models with STRFs and
``learning_curves.png``) plus the multi-seed files of every seed under
``seeds/`` and the best seed's model in ``model/``, in the layout of
:py:meth:`~strfsolver.models.NeuralModel.save_pretrained`
(``strfsolver.models.from_pretrained(logdir / "model")`` loads it;
``strfsolver predict`` and ``strfsolver evaluate`` use it). ``strfsolver
fit CONFIG --resume`` continues an interrupted fit from the checkpoints
under ``seeds/``. There is no ground truth for recorded data, so ``summary.csv``
holds the validation (and test) scores averaged over seeds, their spread and
the data's signal-to-noise ratio instead of the truth's columns.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Union

from strfsolver.utils.checks import short_repr
from strfsolver.utils.io import atomic_write_text
from strfsolver.app.config_schema import (
    FIT_SCHEMA, RENAMED_KEYS, ConfigError, complete, defaults, read_config_file, validate_keys,
)
from strfsolver.app.fit_data import load_data, select_stimuli, split_data  # noqa: F401  (select_stimuli: a public name here)
from strfsolver.app.report import has_matplotlib, plot_learning_curves, rows_to_csv, summary_lines
from strfsolver.loggers.files import history_to_csv

__all__ = ["ConfigError", "load_config", "validate_config", "run_fit", "select_stimuli", "CONFIG_KEYS", "RENAMED_KEYS"]

#: every key a config may hold, with its default (``...`` = required); the checks are in FIT_SCHEMA
CONFIG_KEYS: Dict[str, Any] = defaults(FIT_SCHEMA)

#: ``complete_config(config, {key: default})``: the defaults filled in, unknown and missing keys refused
complete_config = complete


def load_config(path: Union[str, os.PathLike]) -> Dict[str, Any]:
    """Read a JSON (``.json``) or YAML (``.yaml``/``.yml``) config file.

    Relative ``data`` and ``logdir`` paths are resolved against the file's folder.
    """
    path, config = read_config_file(path)
    if not isinstance(config, dict):
        raise ConfigError(f"{path} must hold a mapping of keys to values, got {type(config).__name__}")
    for key in ("data", "logdir", *RENAMED_KEYS):
        if isinstance(config.get(key), str) and not os.path.isabs(config[key]):
            config[key] = str(path.parent / config[key])
    if isinstance(config.get("sessions"), dict):
        config["sessions"] = {name: str(path.parent / file) if isinstance(file, str) and not os.path.isabs(file) else file
                              for name, file in config["sessions"].items()}
    return config


def validate_config(config: Mapping[str, Any]) -> Dict[str, Any]:
    """Check every key against :py:data:`~strfsolver.app.config_schema.FIT_SCHEMA` and fill in
    defaults, then the checks that tie keys together; raises :py:class:`ConfigError`.

    Returns:
        A complete config (a new dict).
    """
    full = validate_keys(config, FIT_SCHEMA)
    if (full["data"] is None) == (full["sessions"] is None):
        raise ConfigError("config key 'data' is required (or 'sessions': {name: data file} of several recordings), and not both"
                          if full["data"] is None else "config keys 'data' and 'sessions' exclude each other: give one of them")
    if full["solver"] == "multi-seed":
        raise ConfigError("config key 'solver': name the inner solver; several seeds are asked for with 'seeds'")
    if full["valid_fraction"] != "auto" and full["valid_fraction"] + full["test_fraction"] >= 1:
        raise ConfigError("config keys 'valid_fraction' + 'test_fraction' must leave stimuli to train on (sum < 1)")
    forbidden = {"model", "criterion", "device"} & set(full["solver_options"])
    if forbidden:
        key = sorted(forbidden)[0]
        instead = {"model": "'model'", "criterion": "'loss'", "device": "'device'"}[key]
        raise ConfigError(f"config key 'solver_options' may not set {short_repr(key)}: use the config key {instead} instead")
    return full


def run_fit(config: Union[Mapping[str, Any], str, os.PathLike], *, progress: bool = True, plots: bool = True, resume: bool = False, print_fn: Callable[[str], Any] = print) -> Dict[str, Any]:
    """Fit what ``config`` describes and write the report; see the module docstring.

    Args:
        config: A config dict or the path of a JSON/YAML config file.
        progress: Show the solver's progress bar.
        plots: Draw the PNG figures (needs matplotlib).
        resume: Continue each seed's fit from its last checkpoint under ``seeds/`` (if there is one).
        print_fn: Where the table goes.

    Returns:
        ``{"summary": rows, "result": MultiSeedResult, "files": {name: path}, "seconds": float}``.
    """
    from strfsolver import solver
    from strfsolver.workflow.experiment import ExperimentSpec, build_experiment, choose_model, resolve_solver, stimulus_responses
    from strfsolver.solver.loop import check_monitor_key

    start = time.perf_counter()
    if not isinstance(config, Mapping):
        config = load_config(config)
    config = validate_config(config)
    if config["sessions"] is not None:  # several recordings: one shared core (strfsolver.app.sessions_fit)
        from strfsolver.app.sessions_fit import run_sessions_fit

        return run_sessions_fit(config, progress=progress, resume=resume, print_fn=print_fn)
    dataset = load_data(config)
    if config["freqs_hz"] is not None and len(config["freqs_hz"]) != dataset.n_freqs:
        raise ConfigError(f"config key 'freqs_hz' has {len(config['freqs_hz'])} frequencies but the data have {dataset.n_freqs} bands")
    out = Path(config["logdir"])

    train, valid, test = split_data(dataset, config)

    model_options = dict(config["model_options"])
    model_options.setdefault("n_lags", 20)
    model_name = choose_model(stimulus_responses(train)) if config["model"] == "auto" else config["model"]
    inner = resolve_solver(config["solver"], model_name)
    solver_options = dict(config["solver_options"], solver=inner)
    if config["loggers"]:
        from strfsolver.loggers.logger_choice import logger_factory

        solver_options["logger_factory"] = logger_factory(config["loggers"], out / "seeds", {"model": model_name, "solver": inner})
    # a closed-form fit gives the same result under every seed: fit it once
    seeds = list(config["seeds"])[:1] if inner == "ridge" else list(config["seeds"])
    spec = ExperimentSpec(
        model=model_name, model_options=model_options, solver="multi-seed", solver_options=solver_options,
        loss=config["loss"], batch_size=config["batch_size"], seeds=seeds, progress=progress, logdir=out / "seeds",
        device=config["device"], repeats="auto",
    )
    experiment = build_experiment(spec, train, valid, test, seed=config["split_seed"])
    # the multi-seed runner builds its models and solvers late: build one of each now to check the options
    try:
        probe = experiment.model_factory(0)
    except TypeError as error:
        raise ConfigError(f"config key 'model_options': {error}") from None
    except ValueError as error:
        raise ConfigError(f"config key 'model_options': {str(error).splitlines()[0]}") from None
    try:
        probe_solver = solver.init(inner, model=probe, criterion=config["loss"], **config["solver_options"])
        if inner != "ridge":
            check_monitor_key(probe_solver, probe_solver.monitor, has_validation=True)
    except TypeError as error:
        raise ConfigError(f"config key 'solver_options': {error}") from None
    except KeyError as error:
        raise ConfigError(f"config key 'solver_options': {error.args[0]}") from None
    except ValueError as error:
        raise ConfigError(f"config key 'solver_options': {str(error).splitlines()[0]}") from None
    model_factory = experiment.model_factory
    # the experiment summarised the repeats when nothing reads them: hold on to its datasets only
    train, valid, test = experiment.train, experiment.valid, experiment.test
    n_neurons, neuron_ids, dt_ms = dataset.n_neurons, dataset.neuron_ids, dataset.dt_ms
    del dataset
    # created once the config has passed every check, so that a refused one leaves nothing behind
    out.mkdir(parents=True, exist_ok=True)
    print_fn(
        f"fitting {model_name!r} to {n_neurons} neurons with the {inner!r} solver: "
        f"{len(train)} training, {len(valid)} validation"
        + (f", {len(test)} test" if test is not None else "")
        + f" stimuli, seeds {seeds}"
    )
    result = experiment.fit(resume=resume).solver.result_

    # per-neuron table: mean and spread over seeds (the multi-seed summary), plus the data's own SNR
    data_snr = valid.repeat_statistics.response_metrics(("snr",))["snr"]
    one_repeat = max(valid.n_repeats) < 2
    summary = result.summary.set_index(["split", "metric", "neuron"])
    splits = ["valid"] + (["test"] if test is not None else [])
    rows = []
    for n, neuron_id in enumerate(neuron_ids):
        row: Dict[str, Any] = {"neuron": n, "neuron_id": neuron_id}
        for split in splits:
            prefix = "" if split == "valid" else "test_"
            # the metrics the seeds were scored on: the solver's (``solver_options.metrics``), cc and cc_norm by default
            for metric in [m for m in summary.index.get_level_values("metric").unique() if (split, m, n) in summary.index]:
                entry = summary.loc[(split, metric, n)]
                row[f"{prefix}{metric}"] = float(entry["mean"])
                if len(result.runs) > 1:
                    row[f"{prefix}{metric}_std"] = float(entry["std"])
        row["snr"] = float(data_snr[n])
        rows.append(row)
    files = {"summary": out / "summary.csv", "history": out / "history.csv"}
    atomic_write_text(files["summary"], rows_to_csv(rows))
    best_run = result.best_run
    atomic_write_text(files["history"], history_to_csv(best_run.history))

    best_model = model_factory(result.best_seed)
    best_model.load_state_dict(result.best_state_dict)
    files["model"] = best_model.save_pretrained(out / "model")
    if plots and has_matplotlib():
        files["learning_curves"] = out / "learning_curves.png"
        # with one repeat per stimulus cc_norm is cc (no noise ceiling to correct for): one curve, not two
        curves = {"val_cc": "val_cc"} if one_repeat else {"val_cc": "val_cc", "val_cc_norm": "val_cc_norm"}
        plot_learning_curves(
            files["learning_curves"],
            best_run.history,
            curves,
            score_label="validation score (mean over neurons)",
            best_epoch=best_run.final.get("best_epoch"),
            title=f"learning curves, seed {result.best_seed}",
        )
        if getattr(best_model, "has_strf", False):
            from strfsolver.app.report import save_strf_pages

            strfs = best_model.strf().detach().cpu()
            # a prefilter may change the bands the STRF spans: label in kHz only when they are the data's
            freqs = config["freqs_hz"] if config["freqs_hz"] is not None and len(config["freqs_hz"]) == strfs.shape[-2] else None
            for index, path in enumerate(save_strf_pages(out / "strfs.png", strfs, dt_ms=dt_ms, freqs_hz=freqs,
                                                         titles=[f"neuron {i}" for i in neuron_ids])):
                files["strfs" if index == 0 else f"strfs_{index + 1}"] = path
    elif plots:
        print_fn("note: matplotlib is not installed, so the figures were skipped (pip install strfsolver[plot]).")

    seconds = time.perf_counter() - start
    keys = [k for k in rows[0] if k not in ("neuron", "neuron_id")]
    if one_repeat:
        # one repeat: cc_norm repeats cc and the signal-to-noise ratio is undefined (all NaN)
        keys = [k for k in keys if "cc_norm" not in k and k != "snr"]
        print_fn("note: one repeat per validation stimulus, so cc_norm equals cc and snr is undefined; both are left out here.")
    print_fn(f"\nbest seed {result.best_seed}; per-neuron validation metrics ({len(rows)} neurons):")
    for line in summary_lines(rows, keys, width=18):
        print_fn(line)
    print_fn(f"\nwrote {', '.join(str(p) for p in files.values())} and seeds/ in {seconds:.1f} s")
    return {"summary": rows, "result": result, "files": files, "seconds": seconds}
