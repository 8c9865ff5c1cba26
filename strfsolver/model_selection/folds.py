"""Fitting one outer fold: the optional inner hyperparameter search, the refit, the held-out predictions.

:py:func:`fit_fold` is the unit of work of :py:func:`~strfsolver.model_selection.cross_validate`:
a plain module-level function of plain arguments, so any
``concurrent.futures`` executor can run it, and what it returns (NumPy
arrays, numbers, strings) is what a resumable run stores per fold.

Only the fold's training stimuli are ever shown to a fit: the inner search
splits them again, and a gradient solver's early-stopping stimuli are drawn
from them too. The held-out stimuli are only predicted.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import numbers
import time
import warnings
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from strfsolver.workflow.experiment import SCORE_METRICS, ExperimentSpec, build_experiment, choose_valid_count, score_predictions
from strfsolver.utils.checks import short_repr

__all__ = ["as_spec", "apply_params", "expand_grid", "fit_fold", "is_closed_form"]

# a comparison writes its own files per fold: these keys of a spec would collide across folds
_REFUSED_KEYS = ("logdir", "output_dir", "loggers")


def as_spec(spec: Union[ExperimentSpec, Mapping[str, Any]], what: str = "spec") -> ExperimentSpec:
    """An :py:class:`~strfsolver.workflow.experiment.ExperimentSpec` from a spec or a dict of its keys, fit for cross-validation."""
    if isinstance(spec, Mapping):
        try:
            spec = ExperimentSpec.from_mapping(spec)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{what}: {error}") from None
    if not isinstance(spec, ExperimentSpec):
        raise ValueError(f"{what} must be an ExperimentSpec or a dict of its keys (model, solver, ...), got {type(spec).__name__}.")
    for key in _REFUSED_KEYS:
        if getattr(spec, key):
            raise ValueError(f"{what}: {short_repr(key)} is not used in cross-validation (each fold is fitted apart); leave it unset.")
    return spec


def _split_key(key: Any, what: str) -> List[str]:
    names = [f.name for f in dataclasses.fields(ExperimentSpec)]
    if not isinstance(key, str) or not key:
        raise ValueError(f"{what}: a key must be a string such as 'solver_options.lr', got {short_repr(key)}.")
    parts = key.split(".", 1)
    if parts[0] not in names or parts[0] in _REFUSED_KEYS:
        raise ValueError(f"{what}: key {short_repr(key)} does not name a spec field; the fields are {names}.")
    if parts[0] in ("model_options", "solver_options") and len(parts) == 1:
        raise ValueError(f"{what}: key {short_repr(key)} names a whole mapping; name one option, e.g. '{parts[0]}.n_lags'.")
    if parts[0] not in ("model_options", "solver_options") and len(parts) == 2:
        raise ValueError(f"{what}: key {short_repr(key)}: only model_options and solver_options have sub-keys.")
    return parts


def expand_grid(param_grid: Optional[Mapping[str, Sequence[Any]]]) -> List[Dict[str, Any]]:
    """Every combination of ``param_grid`` (``{"solver_options.lr": [1e-3, 1e-2], ...}``), in order.

    ``None`` or an empty grid gives one empty combination.
    """
    if param_grid is None:
        return [{}]
    if not isinstance(param_grid, Mapping):
        raise ValueError(f"param_grid must be a dict of spec keys to lists of values, got {type(param_grid).__name__}.")
    keys = list(param_grid)
    values = []
    for key in keys:
        _split_key(key, "param_grid")
        options = param_grid[key]
        if isinstance(options, (str, bytes)) or not isinstance(options, Sequence) or len(options) == 0:
            raise ValueError(f"param_grid[{short_repr(key)}] must be a non-empty list of values, got {short_repr(options)}.")
        values.append(list(options))
    return [dict(zip(keys, combination)) for combination in itertools.product(*values)]


def apply_params(spec: ExperimentSpec, params: Mapping[str, Any]) -> ExperimentSpec:
    """``spec`` with the dotted ``params`` set (``"model_options.n_lags"``, ``"batch_size"``...)."""
    changes: Dict[str, Any] = {}
    for key, value in params.items():
        parts = _split_key(key, "params")
        if len(parts) == 1:
            changes[parts[0]] = value
        else:
            options = dict(changes.get(parts[0], getattr(spec, parts[0])))
            options[parts[1]] = value
            changes[parts[0]] = options
    return dataclasses.replace(spec, **changes)


def is_closed_form(experiment) -> bool:
    """Whether the experiment's solver solves in closed form (the ridge solver or a subclass): no early stopping."""
    from strfsolver.solver.ridge import RidgeSolver

    return isinstance(experiment.solver, RidgeSolver)


def _scalar_history(history: Sequence[Mapping[str, Any]]) -> List[Dict[str, float]]:
    """The numbers of each epoch dict (per-neuron tensors and strings left out): what a fold file keeps."""
    rows = []
    for epoch in history:
        row = {}
        for key, value in epoch.items():
            if isinstance(value, numbers.Real) and not isinstance(value, bool):
                row[key] = float(value)
            elif hasattr(value, "ndim") and getattr(value, "ndim") == 0:
                row[key] = float(value)
        rows.append(row)
    return rows


def _json_value(value: Any) -> Any:
    """A chosen hyperparameter as JSON would hold it (tuples as lists, NumPy numbers as Python ones)."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


def _fit_and_predict(spec: ExperimentSpec, dataset, train_idx: Sequence[int], test_idx: Sequence[int], valid_fraction: float, seed: int):
    """Fit ``spec`` on the training stimuli (early stopping on some of them when needed); predict the test ones."""
    train = dataset.subset(list(train_idx))
    # built first to learn the solver's kind; its warnings about the data count only if it is the one fitted
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        experiment = build_experiment(spec, train, None, seed=seed)
    if is_closed_form(experiment):
        for warning in caught:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    else:
        # gradient steps stop early on a few of the training stimuli, never on held-out ones
        if len(train) < 2:
            raise ValueError(
                f"a fold has {len(train)} training stimulus: a gradient solver needs at least 2 (one for early stopping)."
            )
        if valid_fraction == "auto":
            n_valid = choose_valid_count(len(train))
        else:
            n_valid = min(len(train) - 1, max(1, int(round(valid_fraction * len(train)))))
        order = np.random.default_rng(seed).permutation(len(train))
        valid = train.subset(sorted(order[:n_valid].tolist()))
        experiment = build_experiment(spec, train.subset(sorted(order[n_valid:].tolist())), valid, seed=seed)
    experiment.fit()
    test = dataset.subset(list(test_idx))
    preds = experiment.solver.transform(test.stims, batch_size=experiment.batch_size)
    preds = [pred.detach().cpu().numpy()[:, 0] for pred in preds]
    return experiment, preds, test


def fit_fold(
    spec: ExperimentSpec,
    dataset,
    train_idx: Sequence[int],
    test_idx: Sequence[int],
    *,
    fold: int = 0,
    param_grid: Optional[Mapping[str, Sequence[Any]]] = None,
    inner_cv: Any = None,
    valid_fraction: Union[float, str] = "auto",
    seed: int = 0,
    metrics: Sequence[str] = SCORE_METRICS,
) -> Dict[str, Any]:
    """Fit one outer fold and predict its held-out stimuli.

    With ``param_grid``, every combination is scored by an inner
    stimulus-grouped cross-validation over the training stimuli only (mean
    over neurons of ``cc_norm`` on the inner held-out predictions taken
    together; the first best combination wins) and the winner is refitted
    on all training stimuli.

    Args:
        spec: What to fit.
        dataset: The :py:class:`~strfsolver.data.NeuralDataset`.
        train_idx, test_idx: Stimulus positions of this fold.
        fold: The fold's number (returned as is).
        param_grid: ``{spec key: values}`` for the inner search, or ``None``.
        inner_cv: Splitter of the inner search (default ``StimulusKFold(3)``).
        valid_fraction: Share of the training stimuli a gradient solver stops early on, or
            ``"auto"`` (:py:func:`strfsolver.workflow.experiment.choose_valid_count`).
        seed: Seed of every fit and of the early-stopping draw.
        metrics: Per-neuron metrics to compute on the held-out stimuli.

    Returns:
        ``{"fold", "train", "test", "predictions" (one (N, T_i) float32 array
        per test stimulus), "scores" ({metric: (N,)}), "params", "inner" (one
        {"params", "score"} per combination), "alphas" ((N,) or None),
        "epochs", "best_epoch", "seconds", "history", "strf" (or None),
        "advice" (the messages of the fit's ``FitWarning``s)}``.
    """
    from strfsolver.model_selection.splitters import StimulusKFold, check_cv

    start = time.perf_counter()
    train_idx = [int(i) for i in train_idx]
    test_idx = [int(i) for i in test_idx]
    candidates = expand_grid(param_grid)
    inner: List[Dict[str, Any]] = []
    chosen: Dict[str, Any] = candidates[0]
    if param_grid:
        splitter = check_cv(inner_cv if inner_cv is not None else StimulusKFold(min(3, len(train_idx))), "inner_cv")
        best = -math.inf
        for params in candidates:
            candidate = apply_params(spec, params)
            preds, responses = [], []
            for inner_train, inner_test in splitter.split(len(train_idx)):
                # positions inside the fold's training stimuli: the held-out ones are not among them
                fit_on = [train_idx[i] for i in inner_train]
                score_on = [train_idx[i] for i in inner_test]
                _, inner_preds, inner_data = _fit_and_predict(candidate, dataset, fit_on, score_on, valid_fraction, seed)
                preds.extend(inner_preds)
                responses.extend(inner_data.responses)
            score = float(np.nanmean(score_predictions(preds, responses, ("cc_norm",))["cc_norm"]))
            inner.append({"params": _json_value(params), "score": score})
            if score > best:
                best, chosen = score, params
    from strfsolver.solver.diagnostics import FitWarning

    # the fit's advice travels with the result (a worker's warnings would be lost); the caller reports it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FitWarning)
        experiment, preds, test = _fit_and_predict(apply_params(spec, chosen), dataset, train_idx, test_idx, valid_fraction, seed)
    advice = []
    for warning in caught:
        if issubclass(warning.category, FitWarning):
            advice.append(str(warning.message))
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    solver = experiment.solver
    alphas = getattr(solver, "alphas_", None)
    model = experiment.model
    strf = model.strf().detach().cpu().numpy() if getattr(model, "has_strf", False) else None
    history = _scalar_history(experiment.history or [])
    best_epoch = experiment.best_epoch
    return {
        "fold": int(fold),
        "train": train_idx,
        "test": test_idx,
        "predictions": preds,
        "scores": score_predictions(preds, test.responses, metrics),
        "params": _json_value(chosen),
        "inner": inner,
        "alphas": None if alphas is None else np.asarray(alphas, dtype=np.float64),
        "epochs": len(history),
        "best_epoch": None if best_epoch is None else int(best_epoch),
        "seconds": time.perf_counter() - start,
        "history": history,
        "strf": strf,
        "advice": advice,
    }
