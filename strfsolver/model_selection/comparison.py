"""Several models on the same stimulus-grouped folds, compared neuron by neuron.

:py:func:`compare` cross-validates every model on identical folds, so that
each neuron's scores under two models are paired, and
:py:class:`ComparisonResult` turns the pairs into the numbers a paper
reports: per ordered pair of models the median per-neuron difference of
``cc_norm`` with a bootstrap interval over neurons, the Wilcoxon
signed-rank p-value and the neurons each model wins; per model the
fraction of the noise ceiling it reaches (``cc_norm`` is the correlation
as a fraction of the highest one the trial-to-trial noise allows).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import numpy as np

from strfsolver.utils.checks import check_count
from strfsolver.utils.deprecation import renamed
from strfsolver.workflow.experiment import ExperimentSpec
from strfsolver.model_selection.crossval import CVResult, run_folds
from strfsolver.model_selection.paired import paired_comparison
from strfsolver.utils.checks import short_repr

__all__ = ["ComparisonResult", "compare"]


class ComparisonResult:
    """Every model's cross-validation and the paired statistics between them.

    Attributes:
        results: ``{name: CVResult}``, in the order the models were given.
        metric: The per-neuron score the pairs compare (``"cc_norm"``).
        scores: Long table, one row per model, fold and neuron (the models' ``CVResult.scores`` stacked).
        summary: One row per model and neuron: scores on the concatenated held-out predictions and fold means.
        paired: One row per neuron, one ``metric`` column per model.
        pairs: One row per ordered pair of models: ``model_a``, ``model_b``,
            ``median_diff`` (of a minus b), ``ci_low``, ``ci_high``,
            ``p_value``, ``statistic``, ``wins`` (neurons where a scores
            higher), ``losses``, ``ties``, ``n_neurons``.
        models: One row per model: ``median_cc``, ``median_cc_norm``
            (the median fraction of the noise ceiling reached),
            ``mean_cc_norm``, ``median_explained_fraction`` (``cc_norm``
            squared: of the explainable variance), ``n_neurons`` with a
            finite score, ``seconds`` (sum of its fits).
    """

    def __init__(self, results: Mapping[str, CVResult], metric: str = "cc_norm", n_boot: int = 2000, seed: int = 0):
        import pandas as pd

        self.results = dict(results)
        self.metric = metric
        names = list(self.results)
        first = self.results[names[0]]
        self.scores = pd.concat([r.scores for r in self.results.values()], ignore_index=True)
        self.summary = pd.concat([r.summary for r in self.results.values()], ignore_index=True)
        paired = {"neuron": np.arange(len(first.summary)), "neuron_id": first.neuron_ids}
        for name in names:
            paired[name] = self.results[name].summary[metric].to_numpy()
        self.paired = pd.DataFrame(paired)
        rows = []
        for a in names:
            for b in names:
                if a != b:
                    stats = paired_comparison(self.paired[a], self.paired[b], n_boot=n_boot, seed=seed)
                    rows.append({"model_a": a, "model_b": b, **stats})
        columns = ["model_a", "model_b", "median_diff", "ci_low", "ci_high", "p_value", "statistic", "wins", "losses", "ties", "n_neurons"]
        self.pairs = pd.DataFrame(rows, columns=columns)
        model_rows = []
        for name, result in self.results.items():
            cc_norm = result.summary["cc_norm"].to_numpy()
            finite = np.isfinite(cc_norm)
            model_rows.append(
                {
                    "model": name,
                    "median_cc": float(np.nanmedian(result.summary["cc"])) if result.summary["cc"].notna().any() else float("nan"),
                    "median_cc_norm": float(np.median(cc_norm[finite])) if finite.any() else float("nan"),
                    "mean_cc_norm": float(cc_norm[finite].mean()) if finite.any() else float("nan"),
                    "median_explained_fraction": float(np.median(cc_norm[finite] ** 2)) if finite.any() else float("nan"),
                    "n_neurons": int(finite.sum()),
                    "seconds": result.seconds,
                }
            )
        self.models = pd.DataFrame(model_rows)

    @property
    def names(self):
        """The model names, in order."""
        return list(self.results)

    @property
    def best_model(self) -> str:
        """The model with the highest median ``cc_norm`` (the first one on a tie)."""
        values = self.models["median_cc_norm"].fillna(-np.inf).to_numpy()
        return str(self.models["model"].iloc[int(np.argmax(values))])

    def pair(self, a: str, b: str) -> Dict[str, Any]:
        """The ``pairs`` row of ``a`` against ``b`` as a dict."""
        rows = self.pairs[(self.pairs["model_a"] == a) & (self.pairs["model_b"] == b)]
        if rows.empty:
            raise ValueError(f"no pair ({short_repr(a)}, {short_repr(b)}); the models are {self.names}.")
        return rows.iloc[0].to_dict()

    def save_tables(self, out: Union[str, Path]) -> Dict[str, Path]:
        """Write ``scores.csv``, ``summary.csv``, ``pairs.csv`` and ``models.csv`` to ``out``; their paths."""
        from strfsolver.utils.io import atomic_write_text

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        files = {}
        for name in ("scores", "summary", "pairs", "models"):
            files[name] = out / f"{name}.csv"
            atomic_write_text(files[name], getattr(self, name).to_csv(index=False, float_format="%.6g"))
        return files

    def __repr__(self) -> str:
        parts = [f"{row.model}: median cc_norm {row.median_cc_norm:.3f}" for row in self.models.itertuples()]
        return f"ComparisonResult({'; '.join(parts)})"


def compare(
    specs: Mapping[str, Union[ExperimentSpec, Mapping[str, Any]]],
    dataset,
    cv: Any = 5,
    inner_cv: Any = None,
    param_grids: Optional[Mapping[str, Optional[Mapping[str, Sequence[Any]]]]] = None,
    executor: Any = None,
    *,
    metric: str = "cc_norm",
    n_boot: int = 2000,
    threads: Optional[int] = None,
    seed: int = 0,
    valid_fraction: Union[float, str] = "auto",
    logdir: Optional[Union[str, Path]] = None,
    progress: bool = False,
    out: Optional[Union[str, Path]] = None,
) -> ComparisonResult:
    """Cross-validate every model on the same folds and compare them neuron by neuron.

    Args:
        specs: ``{name: spec}``; each spec as for :py:func:`~strfsolver.model_selection.cross_validate`.
        dataset: A :py:class:`~strfsolver.data.NeuralDataset`.
        cv: Number of folds, ``"loso"`` or a splitter; every model gets the same folds.
        inner_cv: Splitter of the nested searches.
        param_grids: ``{name: param_grid}`` for the models searched by nested cross-validation.
        executor: Any ``concurrent.futures`` executor for the (model, fold) fits, or ``None``.
        metric: The per-neuron score compared: ``"cc_norm"``, ``"cc"`` or ``"fve"``.
        n_boot: Bootstrap resamples of the median difference's interval.
        threads, seed, valid_fraction, logdir, progress, out: As for ``cross_validate``
            (``out`` is the old name of ``logdir``, taken for one release).

    Returns:
        A :py:class:`ComparisonResult`.

    Example:
        >>> import strfsolver
        >>> from strfsolver.model_selection import compare
        >>> pop = strfsolver.data.synthetic_population(n_neurons=4, n_stims=6, n_repeats=3, n_freqs=6, n_lags=4, n_times=60)
        >>> specs = {"ridge": {"model": "linear", "model_options": {"n_lags": 4}},
        ...          "short": {"model": "linear", "model_options": {"n_lags": 2}}}
        >>> result = compare(specs, pop.dataset, cv=3)
        >>> list(result.pairs[["model_a", "model_b"]].itertuples(index=False, name=None))
        [('ridge', 'short'), ('short', 'ridge')]
    """
    logdir = renamed(logdir, out, "logdir", "out", where="compare()")
    if metric not in ("cc_norm", "cc", "fve"):
        raise ValueError(f"metric must be 'cc_norm', 'cc' or 'fve', got {short_repr(metric)}.")
    n_boot = check_count(n_boot, "n_boot", 1)
    results = run_folds(
        specs, dataset, cv, inner_cv=inner_cv, param_grids=param_grids, executor=executor, threads=threads,
        seed=seed, valid_fraction=valid_fraction, logdir=logdir, progress=progress,
    )
    return ComparisonResult(results, metric=metric, n_boot=n_boot, seed=seed)
