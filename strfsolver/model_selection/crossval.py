"""Stimulus-grouped cross-validation of one or several models on the same folds.

:py:func:`cross_validate` fits one spec on every fold; :py:func:`run_folds`
is the engine it shares with :py:func:`~strfsolver.model_selection.compare`:
it lists every (model, fold) task, takes the finished ones from the fold
store when there is an output folder, runs the rest (here or on an
executor) and stores each as it arrives.

A neuron's cross-validated score is computed once, on the concatenation of
every fold's held-out predictions (each stimulus is predicted by the one
model that never saw it); the mean over folds is reported beside it
(docs/conventions.md §7).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from strfsolver.utils.checks import check_count, check_flag, check_real
from strfsolver.utils.deprecation import renamed
from strfsolver.workflow.experiment import SCORE_METRICS, ExperimentSpec, score_predictions
from strfsolver.model_selection.folds import as_spec, expand_grid, fit_fold
from strfsolver.model_selection.splitters import check_cv
from strfsolver.model_selection.store import FoldStore, data_digest, fingerprint
from strfsolver.utils.checks import short_repr

__all__ = ["CVResult", "cross_validate", "run_folds"]

#: per-neuron metrics of the ``scores`` and ``summary`` tables
TABLE_METRICS = ("cc", "cc_norm", "cc_norm_hsu", "fve", "signal_power", "noise_power", "snr")


class CVResult:
    """The cross-validation of one model: every fold's result and the tables built from them.

    Attributes:
        name: The model's name in the tables.
        folds: One dict per fold (see :py:func:`~strfsolver.model_selection.folds.fit_fold`), in fold order.
        neuron_ids: The data set's neuron ids.
        predictions: One ``(N, T_i)`` held-out prediction per stimulus, in the data set's order.
        scores: ``pandas.DataFrame``, one row per fold and neuron: ``model``,
            ``fold``, ``neuron``, ``neuron_id``, the metrics on the fold's
            held-out stimuli (``cc``, ``cc_norm``, ``cc_norm_hsu``, ``fve``,
            ``signal_power``, ``noise_power``, ``snr``), ``alpha`` (ridge,
            else NaN), ``params`` (the chosen hyperparameters as JSON) and
            one column per searched key, ``epochs``, ``best_epoch``, ``seconds``.
        summary: ``pandas.DataFrame``, one row per neuron: the metrics on the
            concatenated held-out predictions, and ``<metric>_fold_mean`` for
            ``cc``, ``cc_norm`` and ``fve``.
    """

    def __init__(self, name: str, folds: List[Dict[str, Any]], dataset):
        import pandas as pd

        self.name = name
        self.folds = sorted(folds, key=lambda f: f["fold"])
        self.neuron_ids = dataset.neuron_ids
        self.dt_ms = dataset.dt_ms
        predictions: List[Any] = [None] * dataset.n_stims
        for fold in self.folds:
            for position, pred in zip(fold["test"], fold["predictions"]):
                predictions[position] = pred
        missing = [i for i, p in enumerate(predictions) if p is None]
        if missing:
            raise ValueError(f"stimuli {missing[:5]} were held out by no fold: the splitter must hold out every stimulus once.")
        self.predictions = predictions
        n_neurons = dataset.n_neurons
        pooled = score_predictions(predictions, dataset.responses, SCORE_METRICS)
        frames = []
        searched = sorted({key for fold in self.folds for key in fold["params"]})
        for fold in self.folds:
            columns: Dict[str, Any] = {
                "model": name,
                "fold": fold["fold"],
                "neuron": np.arange(n_neurons),
                "neuron_id": self.neuron_ids,
            }
            for metric in TABLE_METRICS:
                columns[metric] = np.asarray(fold["scores"][metric], dtype=np.float64)
            alphas = fold.get("alphas")
            columns["alpha"] = np.asarray(alphas, dtype=np.float64) if alphas is not None else np.nan
            columns["params"] = json.dumps(fold["params"], sort_keys=True)
            for key in searched:
                value = fold["params"].get(key)
                columns[key] = json.dumps(value) if isinstance(value, (list, dict)) else value
            columns["epochs"] = fold["epochs"]
            columns["best_epoch"] = np.nan if fold["best_epoch"] is None else fold["best_epoch"]
            columns["seconds"] = fold["seconds"]
            frames.append(pd.DataFrame(columns))
        self.scores = pd.concat(frames, ignore_index=True)
        summary: Dict[str, Any] = {"model": name, "neuron": np.arange(n_neurons), "neuron_id": self.neuron_ids}
        for metric in TABLE_METRICS:
            summary[metric] = np.asarray(pooled[metric], dtype=np.float64)
        by_neuron = self.scores.groupby("neuron")
        for metric in ("cc", "cc_norm", "fve"):
            # groupby's mean skips NaN: a fold where a neuron is undefined does not blank it
            summary[f"{metric}_fold_mean"] = by_neuron[metric].mean().reindex(range(n_neurons)).to_numpy()
        self.summary = pd.DataFrame(summary)

    @property
    def seconds(self) -> float:
        """Sum of the folds' fit times."""
        return float(sum(f["seconds"] for f in self.folds))

    def mean_strf(self) -> Optional[np.ndarray]:
        """The folds' STRFs averaged, ``(N, C, F, L)``, or ``None`` for a model without STRFs."""
        strfs = [f["strf"] for f in self.folds if f.get("strf") is not None]
        return np.mean(np.stack(strfs), axis=0) if strfs else None

    def __repr__(self) -> str:
        median = float(np.nanmedian(self.summary["cc_norm"])) if self.summary["cc_norm"].notna().any() else float("nan")
        return f"CVResult({self.name!r}, folds={len(self.folds)}, neurons={len(self.summary)}, median cc_norm={median:.3f})"


def _check_dataset(dataset) -> None:
    from strfsolver.data import NeuralDataset

    if not isinstance(dataset, NeuralDataset):
        raise ValueError(f"dataset must be a strfsolver.data.NeuralDataset, got {type(dataset).__name__}.")


def run_folds(
    specs: Mapping[str, Union[ExperimentSpec, Mapping[str, Any]]],
    dataset,
    cv: Any = 5,
    *,
    inner_cv: Any = None,
    param_grids: Optional[Mapping[str, Optional[Mapping[str, Sequence[Any]]]]] = None,
    executor: Any = None,
    threads: Optional[int] = None,
    seed: int = 0,
    valid_fraction: Union[float, str] = "auto",
    logdir: Optional[Union[str, Path]] = None,
    progress: bool = False,
    out: Optional[Union[str, Path]] = None,
) -> Dict[str, CVResult]:
    """Fit every model on the same folds; ``{name: CVResult}`` in the order of ``specs``.

    With ``logdir``, each finished fold is stored under ``logdir/folds/`` as soon as
    it arrives, and folds found there are not fitted again.
    See :py:func:`cross_validate` for the arguments.
    """
    logdir = renamed(logdir, out, "logdir", "out", where="run_folds()")
    from strfsolver.utils.executors import check_executor, run_calls

    _check_dataset(dataset)
    if not isinstance(specs, Mapping) or not specs:
        raise ValueError(f"specs must be a non-empty dict of model names to specs, got {short_repr(specs, 80)}.")
    check_executor(executor)
    seed = check_count(seed, "seed", 0)
    if valid_fraction != "auto":
        valid_fraction = check_real(valid_fraction, "valid_fraction", 0, 1, low_open=True, high_open=True)
    check_flag(progress, "progress")
    param_grids = dict(param_grids or {})
    unknown = sorted(set(param_grids) - set(specs))
    if unknown:
        raise ValueError(f"param_grids names model(s) {unknown} that are not among the specs {list(specs)}.")
    checked = {}
    for name, spec in specs.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"model names must be non-empty strings, got {short_repr(name)}.")
        checked[name] = as_spec(spec, f"spec {name!r}")
        expand_grid(param_grids.get(name))  # refuse a bad grid before any fit
    # the output folder is checked (a folder, writable) before anything is built or fitted
    store = None if logdir is None else FoldStore(logdir)
    splits = [(np.asarray(train), np.asarray(test)) for train, test in check_cv(cv).split(dataset)]
    for name, spec in checked.items():
        _check_buildable(name, spec, param_grids.get(name), dataset, splits[0][0])
    digest = None if store is None else data_digest(dataset)
    settings = {"seed": seed, "valid_fraction": valid_fraction, "inner_cv": repr(inner_cv)}

    finished: Dict[str, Dict[int, Dict[str, Any]]] = {name: {} for name in checked}
    tasks, keys = [], []
    for name, spec in checked.items():
        grid = param_grids.get(name)
        for fold, (train, test) in enumerate(splits):
            key = None if store is None else fingerprint(spec, grid, train, test, dataset, settings, digest)
            stored = None if store is None else store.load(name, fold, key)
            if stored is not None:
                finished[name][fold] = stored
                continue
            kwargs = dict(fold=fold, param_grid=grid, inner_cv=inner_cv, valid_fraction=valid_fraction, seed=seed)
            tasks.append((fit_fold, (spec, dataset, train.tolist(), test.tolist()), kwargs))
            keys.append((name, fold, key))

    bar = None
    if progress:
        from tqdm.auto import tqdm

        total = len(checked) * len(splits)
        bar = tqdm(total=total, initial=total - len(tasks), desc="folds x models", unit="fit")

    def collect(index: int, result: Dict[str, Any]) -> None:
        name, fold, key = keys[index]
        finished[name][fold] = result
        if result.get("advice"):
            import warnings

            from strfsolver.solver.diagnostics import FitWarning

            for message in result["advice"]:
                warnings.warn(f"model {short_repr(name)}, fold {fold}: {message}", FitWarning, stacklevel=2)
        if store is not None:
            store.save(name, fold, key, result)
        if bar is not None:
            bar.set_postfix_str(f"{name} fold {fold}")
            bar.update(1)

    try:
        run_calls(tasks, executor=executor, threads=threads, on_result=collect)
    finally:
        if bar is not None:
            bar.close()
    return {name: CVResult(name, list(finished[name].values()), dataset) for name in checked}


def _check_buildable(name: str, spec: ExperimentSpec, grid, dataset, train) -> None:
    """Build the model and solver of ``spec`` (and of each grid point) on a fold's training
    stimuli, so that a bad name or option is refused before any fit, not in the middle of one."""
    import warnings

    from strfsolver.workflow.experiment import build_experiment
    from strfsolver.model_selection.folds import apply_params

    train_set = dataset.subset([int(i) for i in train])
    for candidate in [spec] + [apply_params(spec, params) for params in expand_grid(grid)]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the fits warn for themselves
                build_experiment(candidate, train_set)
        except (ValueError, TypeError, KeyError) as error:
            raise ValueError(f"spec {short_repr(name)} does not build: {str(error).splitlines()[0]}") from None


def cross_validate(
    spec: Union[ExperimentSpec, Mapping[str, Any]],
    dataset,
    cv: Any = 5,
    inner_cv: Any = None,
    param_grid: Optional[Mapping[str, Sequence[Any]]] = None,
    executor: Any = None,
    *,
    name: str = "model",
    threads: Optional[int] = None,
    seed: int = 0,
    valid_fraction: Union[float, str] = "auto",
    logdir: Optional[Union[str, Path]] = None,
    progress: bool = False,
    out: Optional[Union[str, Path]] = None,
) -> CVResult:
    """Fit ``spec`` on every stimulus-grouped fold of ``dataset`` and score the held-out predictions.

    Args:
        spec: An :py:class:`~strfsolver.workflow.experiment.ExperimentSpec` or a dict
            with the keys of a ``strfsolver fit`` config's model part
            (``model``, ``model_options``, ``solver``, ``solver_options``,
            ``loss``, ``batch_size``, ``seeds``, ``device``).
        dataset: A :py:class:`~strfsolver.data.NeuralDataset`.
        cv: Number of folds (``StimulusKFold``), ``"loso"`` or a splitter.
        inner_cv: Splitter of the nested search over the training stimuli of
            each fold (default: 3 folds). The ridge solver's own per-neuron
            alpha search runs inside every fit regardless.
        param_grid: ``{"solver_options.lr": [...], "model_options.n_lags": [...]}``:
            searched by nested cross-validation; ``None`` fits the spec as is.
        executor: ``None`` (here, in order) or any ``concurrent.futures``
            executor (a process pool, Dask's ``client.get_executor()``, submitit);
            the results are the same.
        name: The model's name in the tables.
        threads: Torch threads per fit (``None``: this process' count).
        seed: Seed of every fit (the same in every fold).
        valid_fraction: Share of a fold's training stimuli a gradient solver
            uses for early stopping (ridge uses them all), or ``"auto"``: a
            fifth, at least one and at most ten, as a single fit
            (:py:func:`strfsolver.workflow.experiment.choose_valid_count`).
        logdir: Folder for finished folds (a run that is interrupted continues).
        progress: A progress bar over folds.
        out: Old name of ``logdir``, taken for one release (with a ``DeprecationWarning``).

    Returns:
        A :py:class:`CVResult` with ``scores`` and ``summary`` tables.

    Example:
        >>> import strfsolver
        >>> from strfsolver.model_selection import cross_validate
        >>> pop = strfsolver.data.synthetic_population(n_neurons=3, n_stims=6, n_repeats=3, n_freqs=6, n_lags=4, n_times=60)
        >>> result = cross_validate({"model": "linear", "model_options": {"n_lags": 4}}, pop.dataset, cv=3)
        >>> result.summary.shape[0], sorted(result.scores["fold"].unique())
        (3, [0, 1, 2])
    """
    logdir = renamed(logdir, out, "logdir", "out", where="cross_validate()")
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {short_repr(name)}.")
    results = run_folds(
        {name: spec}, dataset, cv, inner_cv=inner_cv, param_grids={name: param_grid} if param_grid else None,
        executor=executor, threads=threads, seed=seed, valid_fraction=valid_fraction, logdir=logdir, progress=progress,
    )
    return results[name]
