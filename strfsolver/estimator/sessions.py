""":py:meth:`STRFEstimator.fit <strfsolver.estimator.STRFEstimator.fit>` on several recording sessions.

``STRFEstimator(model="nrf").fit({"mouse1": dataset1, "mouse2": dataset2})``
fits one model with a shared core and one readout per session
(:py:mod:`strfsolver.models.sessions`) with the ``"multi-session"`` solver.
Each session is split by stimulus on its own (``val_fraction`` of its
stimuli held out for early stopping, or the sessions of ``X_val``), and
``scores_`` is one per-neuron table over all sessions, with a ``session``
column. Predictions of a session: ``est.solver_.transform(stims, session=name)``.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

import numpy as np

from strfsolver.data import check_sessions, session_loaders
from strfsolver.estimator.inputs import _is_sparse
from strfsolver.models.interpret import linear_strfs
from strfsolver.estimator.params import check_params, fit_loggers, renamed_params, solver_options
from strfsolver.utils.checks import short_repr

__all__ = ["fit_sessions", "session_scores", "is_sessions"]


def is_sessions(X: Any) -> bool:
    """Whether ``fit``'s ``X`` is ``{session: data}`` (a mapping that is no sparse matrix: scipy's
    dictionary-of-keys format is a dict too, and is refused as sparse input)."""
    return isinstance(X, Mapping) and not _is_sparse(X)


def _split(datasets: Dict[str, Any], valid: Optional[Mapping[str, Any]], val_fraction: Any, rng: np.random.Generator):
    """``(train, valid or None, held-out stimulus positions per session)``."""
    from strfsolver.workflow.experiment import choose_valid_count

    if valid is not None:
        valid = check_sessions(valid, "X_val")
        if list(valid) != list(datasets):
            raise ValueError(f"X_val has the sessions {list(valid)} but X has {list(datasets)}; give each session's validation data.")
        return datasets, valid, {name: "given" for name in datasets}
    if val_fraction == 0:
        return datasets, None, {name: [] for name in datasets}
    train, held, positions = {}, {}, {}
    for name, dataset in datasets.items():
        count = choose_valid_count(dataset.n_stims) if val_fraction == "auto" else int(round(val_fraction * dataset.n_stims))
        if not 1 <= count < dataset.n_stims:
            raise ValueError(f"session {name!r} has {dataset.n_stims} stimuli: val_fraction={short_repr(val_fraction)} leaves "
                             "no stimulus to validate or to train on; give it more stimuli, or X_val.")
        chosen = sorted(rng.permutation(dataset.n_stims)[:count].tolist())
        train[name] = dataset.subset([i for i in range(dataset.n_stims) if i not in chosen])
        held[name], positions[name] = dataset.subset(chosen), chosen
    return train, held, positions


def session_scores(solver: Any, datasets: Mapping[str, Any], batch_size: int):
    """One ``pandas.DataFrame`` row per neuron of every session: ``session``, ``neuron`` (its index in
    the session), ``neuron_id`` and :py:data:`~strfsolver.workflow.experiment.SCORE_METRICS` of the
    solver's predictions on the session's data."""
    import pandas as pd

    from strfsolver.workflow.experiment import SCORE_METRICS, score_predictions, stimulus_responses

    tables = []
    for name, dataset in datasets.items():
        preds = solver.transform(list(dataset.stims), batch_size=batch_size, session=name)
        values = score_predictions(preds, list(stimulus_responses(dataset, for_metrics=True)), SCORE_METRICS)  # summarised data too
        table = pd.DataFrame({"session": name, "neuron": np.arange(dataset.n_neurons), "neuron_id": list(dataset.neuron_ids), **values})
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def fit_sessions(estimator: Any, X: Mapping[str, Any], y: Any = None, X_val: Optional[Mapping[str, Any]] = None):
    """What ``estimator.fit({session: NeuralDataset}, X_val={session: NeuralDataset})`` does; returns the estimator."""
    import pandas as pd
    import torch

    from strfsolver import models, solver as solvers
    from strfsolver.estimator.inputs import _seed_from
    from strfsolver.utils.seeding import seeded
    from strfsolver.workflow.experiment import choose_batch_size, choose_model

    if y is not None:
        raise ValueError("fit({session: NeuralDataset}) takes the responses from the datasets; leave y out.")
    if estimator.solver not in ("auto", "multi-session"):
        raise ValueError(f"several sessions are fitted by the 'multi-session' solver; got solver={short_repr(estimator.solver)} "
                         "(leave it 'auto').")
    datasets = check_sessions(X, "X")
    model_kwargs, settings = check_params(estimator), renamed_params(estimator)
    seed = _seed_from(estimator.random_state)
    with seeded(seed):
        train, valid, split = _split(datasets, X_val, estimator.val_fraction, np.random.default_rng(seed))
        dt_ms = float(model_kwargs.setdefault("dt_ms", next(iter(datasets.values())).dt_ms))
        first = next(iter(datasets.values()))
        # a summarised session keeps its PSTHs, not the repeats: their sign decides for it
        model_name = (choose_model([r for d in train.values() for r in (d.psths if d.repeats == "summary" else d.responses)])
                      if estimator.model == "auto" else estimator.model)
        batch_size = choose_batch_size(min(d.n_stims for d in train.values())) if estimator.batch_size == "auto" else estimator.batch_size
        model = models.init(model_name, n_freqs=first.n_freqs, n_lags=estimator.n_lags,
                            n_neurons={name: d.n_neurons for name, d in datasets.items()},
                            **({"n_channels": first.n_channels} if first.stim_ndim == 3 else {}), **model_kwargs)
        one_repeat = valid is not None and all(max(d.n_repeats) < 2 for d in valid.values())
        monitor, mode = (("val_cc" if one_repeat else "val_cc_norm"), "max") if valid is not None else ("train_loss", "min")
        options = solver_options(estimator, "multi-session", monitor, mode)
        loggers = fit_loggers(estimator, "multi-session", options, settings["logdir"])
        solver = solvers.init("multi-session", model=model, criterion=estimator.loss, device=estimator.device,
                              progress=bool(settings["progress"]), loggers=loggers, seed=seed, **options)
        solver.fit(session_loaders(train, batch_size=batch_size, shuffle=True, seed=seed, device=estimator.device),
                   None if valid is None else session_loaders(valid, batch_size=batch_size, device=estimator.device))
    # predict() and score() go through the solver, which asks for a session: est.solver_.transform(stims, session=name)
    estimator._predictor, estimator._y_1d = solver, False
    estimator.model_, estimator.solver_, estimator.model_name_ = solver.model, solver, model_name
    estimator.batch_size_, estimator.stop_reason_, estimator.dt_ms_ = batch_size, solver.stop_reason_, dt_ms
    estimator.sessions_ = dict(solver.fit_sessions_)
    estimator.n_features_in_, estimator.n_neurons_ = first.n_freqs, dict(estimator.sessions_)
    estimator.n_iter_, estimator.best_epoch_, estimator.monitor_ = len(solver.log), solver.best_epoch_, monitor
    estimator.validation_split_ = {"kind": "sessions", "held_out": split}
    estimator.history_ = pd.DataFrame([dict(row) for row in solver.log])
    with torch.no_grad():
        estimator.scores_ = session_scores(solver, valid if valid is not None else train, batch_size)
    estimator.scores_.attrs["data"] = "validation" if valid is not None else "training"
    # {session: (N_s, F, L)}, each as a one-session fit's strfs_ (models.interpret.linear_strfs)
    estimator.strfs_ = linear_strfs(model)
    return estimator
