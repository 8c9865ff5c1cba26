"""A core shared by several recordings against per-session models, on the same folds: :py:func:`compare_sessions`.

Each session's stimuli are dealt into the same number of folds (the
splitter of ``cv``, run on every session). In fold k every model is fitted
on every session's training stimuli of fold k and predicts every session's
held-out stimuli of fold k:

- a ``"shared"`` spec fits one model with a readout per session on all
  sessions at once (the ``"multi-session"`` solver);
- a ``"per-session"`` spec fits one model per session, each on its session alone.

Each fit stops early on a share of its training stimuli (``valid_fraction``).
After the last fold each neuron's held-out predictions of all folds are
scored together, so every neuron has one score per model, paired across
models (the same neurons, the same held-out stimuli), and the pairs are
compared as :py:func:`~strfsolver.model_selection.compare` does: median
difference with a bootstrap interval, Wilcoxon signed-rank test, wins.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Union

import numpy as np

from strfsolver.data import check_sessions, session_loaders
from strfsolver.model_selection.paired import paired_comparison
from strfsolver.model_selection.splitters import check_cv
from strfsolver.utils.checks import check_count, short_repr

__all__ = ["compare_sessions", "SessionComparison", "SHARING", "SPEC_KEYS"]

#: how a spec treats the sessions
SHARING = ("shared", "per-session")
#: the keys of a spec (``sessions`` and ``model`` required)
SPEC_KEYS = ("sessions", "model", "model_options", "solver_options", "loss", "batch_size")
_METRICS = ("cc", "cc_norm", "fve")


class SessionComparison:
    """The result of :py:func:`compare_sessions`.

    Attributes:
        scores: One row per model, session and neuron: ``model``, ``session``, ``neuron``,
            ``neuron_id``, ``cc``, ``cc_norm``, ``fve`` of the concatenated held-out predictions.
        pairs: One row per ordered pair of models: ``model_a``, ``model_b``, ``median_diff`` (of
            ``metric``, a minus b), ``ci_low``, ``ci_high``, ``statistic``, ``p_value``, ``wins``,
            ``losses``, ``ties``, ``n_neurons``.
        models: One row per model: ``median_<metric>``, ``mean_<metric>``, ``seconds`` (its fits).
        metric: The score the pairs compare.
    """

    def __init__(self, scores, pairs, models, metric: str):
        self.scores, self.pairs, self.models, self.metric = scores, pairs, models, metric

    def save_tables(self, folder: Union[str, Path]) -> Dict[str, Path]:
        """Write ``scores.csv``, ``pairs.csv`` and ``models.csv`` into ``folder`` (created); returns the paths."""
        from strfsolver.utils.io import atomic_write_text

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        files = {}
        for name in ("scores", "pairs", "models"):
            files[name] = folder / f"{name}.csv"
            atomic_write_text(files[name], getattr(self, name).to_csv(index=False))
        return files


def _check_specs(specs: Any) -> Dict[str, Dict[str, Any]]:
    if not isinstance(specs, Mapping) or len(specs) < 2:
        raise ValueError(f"specs must map at least two model names to specs, got {short_repr(specs)}.")
    checked = {}
    for name, spec in specs.items():
        if not isinstance(spec, Mapping):
            raise ValueError(f"spec {name!r} must be a mapping with the keys {list(SPEC_KEYS)}, got {type(spec).__name__}.")
        unknown = sorted(set(spec) - set(SPEC_KEYS))
        if unknown:
            raise ValueError(f"spec {name!r} has the unknown key(s) {unknown}; a spec has {list(SPEC_KEYS)}.")
        if spec.get("sessions") not in SHARING:
            raise ValueError(f"spec {name!r}: 'sessions' must be one of {list(SHARING)}, got {short_repr(spec.get('sessions'))}.")
        if not isinstance(spec.get("model"), str):
            raise ValueError(f"spec {name!r}: 'model' must be a registered model name, got {short_repr(spec.get('model'))}.")
        checked[name] = dict(spec)
    return checked


def _folds(datasets: Mapping[str, Any], cv: Any) -> Dict[str, List]:
    splitter = check_cv(cv, "cv")
    folds = {name: [(np.asarray(a), np.asarray(b)) for a, b in splitter.split(d.n_stims)] for name, d in datasets.items()}
    counts = {name: len(f) for name, f in folds.items()}
    if len(set(counts.values())) != 1:
        raise ValueError(f"cv={short_repr(cv)} gives the sessions different numbers of folds {counts}; use a number of folds.")
    return folds


def _fit(spec: Mapping[str, Any], train: Mapping[str, Any], seed: int, valid_fraction: Any):
    """A multi-session solver fitted to ``train`` (``{session: dataset}``), early stopping on a share of it."""
    from strfsolver import models, solver as solvers
    from strfsolver.utils.seeding import seeded
    from strfsolver.workflow.experiment import choose_batch_size, choose_valid_count

    rng = np.random.default_rng(seed)
    fit, stop = {}, {}
    for name, data in train.items():
        count = choose_valid_count(data.n_stims) if valid_fraction == "auto" else max(1, int(round(valid_fraction * data.n_stims)))
        if not 1 <= count < data.n_stims:
            raise ValueError(f"session {name!r} has {data.n_stims} training stimuli in a fold: too few to stop early on some of them.")
        held = set(rng.permutation(data.n_stims)[:count].tolist())
        fit[name] = data.subset([i for i in range(data.n_stims) if i not in held])
        stop[name] = data.subset(sorted(held))
    first = next(iter(train.values()))
    batch_size = spec.get("batch_size") or choose_batch_size(min(d.n_stims for d in fit.values()))
    options = dict({"n_lags": 20}, **spec.get("model_options", {}))
    with seeded(seed):
        model = models.init(spec["model"], n_freqs=first.n_freqs, n_neurons={n: d.n_neurons for n, d in train.items()}, **options)
        solver = solvers.init("multi-session", model=model, criterion=spec.get("loss", "mse"), progress=False, seed=seed,
                              **spec.get("solver_options", {}))
        solver.fit(session_loaders(fit, batch_size=batch_size, shuffle=True, seed=seed), session_loaders(stop, batch_size=batch_size))
    return solver


def compare_sessions(specs: Mapping[str, Mapping[str, Any]], datasets: Mapping[str, Any], cv: Any = 5, *,
                     metric: str = "cc_norm", n_boot: int = 2000, seed: int = 0, valid_fraction: Union[float, str] = "auto") -> SessionComparison:
    """Cross-validate shared-core and per-session models of several recordings on the same folds.

    Args:
        specs: ``{name: spec}``, at least two; a spec is a mapping with ``sessions`` (``"shared"``
            or ``"per-session"``), ``model`` (a registered name), and optionally ``model_options``
            (``n_lags`` defaults to 20), ``solver_options`` (of the ``"multi-session"`` solver),
            ``loss`` and ``batch_size``.
        datasets: ``{session: NeuralDataset}`` (:py:func:`~strfsolver.data.check_sessions`).
        cv: Folds of every session's stimuli: a number, or a splitter giving every session as many folds.
        metric: The score compared: ``"cc_norm"``, ``"cc"`` or ``"fve"``.
        n_boot: Bootstrap resamples of the median difference's interval.
        seed: Seed of every fit and of the early-stopping stimuli.
        valid_fraction: Share of a fold's training stimuli each fit stops early on (``"auto"``: a fifth, 1 to 10).

    Returns:
        A :py:class:`SessionComparison`.

    Raises:
        ValueError: for bad specs, sessions, folds or a metric, before any fit.
    """
    import pandas as pd

    from strfsolver.workflow.experiment import score_predictions, stimulus_responses

    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {list(_METRICS)}, got {short_repr(metric)}.")
    n_boot = check_count(n_boot, "n_boot", 1)
    specs, datasets = _check_specs(specs), check_sessions(datasets, "datasets")
    folds = _folds(datasets, cv)
    n_folds = len(next(iter(folds.values())))
    tables, seconds = [], {}
    for name, spec in specs.items():
        preds = {s: [None] * d.n_stims for s, d in datasets.items()}
        start = time.perf_counter()
        for k in range(n_folds):
            train = {s: datasets[s].subset(folds[s][k][0].tolist()) for s in datasets}
            groups = [list(datasets)] if spec["sessions"] == "shared" else [[s] for s in datasets]
            for group in groups:
                solver = _fit(spec, {s: train[s] for s in group}, seed, valid_fraction)
                for s in group:
                    held = folds[s][k][1].tolist()
                    out = solver.transform([datasets[s].stims[i] for i in held], session=s)
                    for i, pred in zip(held, out):
                        preds[s][i] = pred.detach().cpu()
        seconds[name] = time.perf_counter() - start
        for s, data in datasets.items():
            values = score_predictions(preds[s], list(stimulus_responses(data, for_metrics=True)), _METRICS)  # summarised data too
            tables.append(pd.DataFrame({"model": name, "session": s, "neuron": np.arange(data.n_neurons),
                                        "neuron_id": list(data.neuron_ids), **values}))
    scores = pd.concat(tables, ignore_index=True)
    by_model = {name: scores[scores.model == name][metric].to_numpy() for name in specs}
    pairs = [{"model_a": a, "model_b": b, **paired_comparison(by_model[a], by_model[b], n_boot=n_boot, seed=seed)}
             for a in specs for b in specs if a != b]
    models = pd.DataFrame([{"model": name, "sessions": specs[name]["sessions"], f"median_{metric}": float(np.nanmedian(v)),
                            f"mean_{metric}": float(np.nanmean(v)), "seconds": seconds[name]} for name, v in by_model.items()])
    return SessionComparison(scores, pd.DataFrame(pairs), models, metric)
