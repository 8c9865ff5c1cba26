"""The main job: fit linear STRFs to the embedded synthetic population.

``python -m strfsolver demo --logdir DIR`` (or ``strfsolver demo --logdir DIR``)
draws the synthetic population of :py:func:`strfsolver.data.synthetic_population`
(LNP neurons with known STRFs, Poisson responses to repeated spectrograms),
splits its stimuli into training and validation sets, fits the ``"linear"``
model of every neuron at once with the ``"population"`` solver (MSE loss, a
light ``"smooth-strf"`` penalty, early stopping on validation ``cc_norm``)
and writes to ``DIR``:

- ``summary.csv``: one row per neuron: ``neuron``, ``cc`` and ``cc_norm`` of
  the fitted model on the validation stimuli, ``truth_cc_norm`` (the
  generating model's own ``cc_norm`` there, the ceiling) and ``strf_corr``
  (Pearson correlation between the fitted and the true STRF, over all
  frequency x lag entries);
- ``history.csv``: the solver's epoch dicts;
- ``strfs.png``: fitted against true STRFs, ``learning_curves.png``: losses
  and validation ``cc_norm`` per epoch (both need matplotlib; without it
  they are skipped with a note);
- ``comparison/``: the closing comparison of the ``"ridge"`` linear model with
  an ``"ln"`` model, cross-validated by stimulus on a small part of the data
  (:py:data:`COMPARISON`): ``scores.csv``, ``summary.csv``, ``pairs.csv``,
  ``models.csv``, figures and ``report.html``
  (see :py:func:`strfsolver.model_selection.compare`);

and prints a short table. The generating neurons are linear-nonlinear
(softplus), so a linear model cannot reach the truth's ``cc_norm`` exactly;
the STRF correlation shows how well the receptive fields are recovered.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

import torch

from strfsolver import solver
from strfsolver.utils import io
from strfsolver.utils.deprecation import renamed
from strfsolver.data import synthetic_population
from strfsolver.workflow.experiment import ExperimentSpec, build_experiment, choose_valid_fraction
from strfsolver.utils.seeding import set_random_seed
from strfsolver.app.report import has_matplotlib as _has_matplotlib
from strfsolver.app.report import median, plot_learning_curves, rows_to_csv, summary_lines
from strfsolver.loggers.files import CSVLogger
from strfsolver.utils.checks import short_repr

__all__ = ["run_demo", "strf_correlation", "DEFAULTS", "QUICK", "COMPARISON"]

#: default sizes and settings of the demo (the README's figures come from these)
DEFAULTS: Dict[str, Any] = dict(
    n_neurons=32,
    n_stims=20,
    n_repeats=10,
    n_freqs=32,
    n_lags=20,
    n_times=500,
    valid_fraction="auto",
    batch_size="auto",
    lr=None,
    max_epochs=None,
    patience=None,
    smoothness=1e-2,
    seed=0,
)
#: ``--quick``: a smaller problem that runs in seconds (smoke tests, CI)
QUICK: Dict[str, Any] = dict(n_neurons=8, n_stims=10, n_repeats=6, n_freqs=16, n_lags=10, n_times=200, lr=1e-2, max_epochs=40, patience=10)

#: the closing comparison: ridge against "ln" on the first neurons and stimuli, cross-validated by stimulus
COMPARISON: Dict[str, Any] = dict(n_neurons=8, n_stims=20, n_splits=2)

SUMMARY_COLUMNS = ("neuron", "cc", "cc_norm", "truth_cc_norm", "strf_corr", "ridge_cc_norm")


def strf_correlation(fitted: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Per-neuron Pearson correlation between two sets of STRFs.

    Args:
        fitted: ``(N, C, F, L)`` kernels.
        truth: ``(N, C, F, L)`` kernels.

    Returns:
        ``(N,)``; NaN for a neuron whose kernel is constant.
    """
    if fitted.shape != truth.shape:
        raise ValueError(f"fitted STRFs have shape {tuple(fitted.shape)} but the true ones {tuple(truth.shape)}; expected the same (N, C, F, L).")
    a = fitted.detach().double().reshape(fitted.shape[0], -1)
    b = truth.detach().double().reshape(truth.shape[0], -1)
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    denominator = a.norm(dim=1) * b.norm(dim=1)
    corr = (a * b).sum(dim=1) / denominator
    return torch.where(denominator > 0, corr, torch.full_like(corr, float("nan")))


def _summary_csv(rows: List[Dict[str, Any]]) -> str:
    return rows_to_csv(rows, SUMMARY_COLUMNS)


def _table(rows: List[Dict[str, Any]]) -> str:
    lines = summary_lines(rows, SUMMARY_COLUMNS[1:])
    ratio = [r["cc_norm"] / r["truth_cc_norm"] for r in rows if r["truth_cc_norm"] > 0 and not math.isnan(r["cc_norm"])]
    if ratio:
        lines.append(f"{'cc_norm/truth':<14}{median(ratio):>9.3f}{min(ratio):>9.3f}{max(ratio):>9.3f}")
    return "\n".join(lines)


def _plot_strfs(path: Path, fitted: torch.Tensor, truth: torch.Tensor, corr: torch.Tensor, dt_ms: float, n_cols: int = 8) -> None:
    """Every neuron: its true STRF above its fitted one, ``n_cols`` neurons a row, one colour bar."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    from strfsolver.models.plotting import _lag_ticks

    n = fitted.shape[0]
    n_cols = min(n_cols, n)
    blocks = math.ceil(n / n_cols)
    fig, axes = plt.subplots(2 * blocks, n_cols, figsize=(1.5 * n_cols + 1.2, 2.9 * blocks + 0.6), squeeze=False)
    n_lags, n_freqs = fitted.shape[-1], fitted.shape[-2]
    extent = (-0.5 * dt_ms, (n_lags - 0.5) * dt_ms, -0.5, n_freqs - 0.5)
    image = None
    for i in range(blocks * n_cols):
        block, column = divmod(i, n_cols)
        for row, (kernels, label) in enumerate(((truth, "true"), (fitted, "fitted"))):
            ax = axes[2 * block + row, column]
            if i >= n:
                ax.set_visible(False)
                continue
            kernel = kernels[i, 0].numpy()
            # each kernel divided by its own largest weight: shapes are compared, not gains (the gains differ)
            limit = float(np.abs(kernel).max()) or 1.0
            image = ax.imshow(kernel / limit, origin="lower", aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1, extent=extent, interpolation="nearest")
            ax.set_xticks(_lag_ticks(n_lags, dt_ms))
            ax.tick_params(labelsize=6)
            ax.set_yticks([])
            if column == 0:
                ax.set_ylabel(f"{label}\nfrequency", fontsize=7)
            if row == 0:
                ax.set_title(f"neuron {i}, r = {float(corr[i]):.2f}", fontsize=7)
            elif block == blocks - 1 or i + n_cols >= n:
                ax.set_xlabel("lag (ms)", fontsize=7)
    fig.suptitle("STRFs of every neuron: true (upper) and fitted linear model (lower); r = their correlation", fontsize=9)
    fig.tight_layout()
    width = 1.5 * n_cols + 1.2
    fig.subplots_adjust(right=1 - 0.9 / width)
    bar = fig.colorbar(image, cax=fig.add_axes((1 - 0.7 / width, 0.2, 0.12 / width, 0.6)))
    bar.set_label("weight / largest |weight| of the kernel", fontsize=7)
    bar.ax.tick_params(labelsize=6)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_demo(
    logdir: Optional[Union[str, os.PathLike]] = None,
    *,
    quick: bool = False,
    plots: bool = True,
    progress: bool = True,
    print_fn: Callable[[str], Any] = print,
    out: Optional[Union[str, os.PathLike]] = None,
    **options: Any,
) -> Dict[str, Any]:
    """Fit the demo and write its files; see the module docstring.

    Args:
        logdir: The folder to write into (created; required).
        quick: Start from :py:data:`QUICK` sizes instead of :py:data:`DEFAULTS`.
        plots: Draw the two PNGs (when matplotlib is installed).
        progress: Show the solver's progress bar.
        print_fn: Where the table and notes go.
        **options: Overrides of :py:data:`DEFAULTS` (``n_neurons``, ``n_stims``,
            ``n_repeats``, ``n_freqs``, ``n_lags``, ``n_times``,
            ``valid_fraction``, ``batch_size``, ``lr``, ``max_epochs``,
            ``patience``, ``smoothness`` (weight of the ``"smooth-strf"``
            penalty; 0 for none), ``seed``).
        out: Old name of ``logdir``, taken for one release (with a ``DeprecationWarning``).

    Returns:
        ``{"summary": rows (list of dicts), "history": epoch dicts, "files":
        {name: path}, "seconds": float, "best_epoch": int}``.
    """
    logdir = renamed(logdir, out, "logdir", "out", where="run_demo()")
    if logdir is None:
        raise TypeError("run_demo() needs logdir, the folder to write into.")
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown demo option(s) {unknown}; options are {sorted(DEFAULTS)}.")
    settings = dict(DEFAULTS)
    if quick:
        settings.update(QUICK)
    settings.update({k: v for k, v in options.items() if v is not None})
    out = Path(logdir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    set_random_seed(settings["seed"])
    population = synthetic_population(
        n_neurons=settings["n_neurons"],
        n_stims=settings["n_stims"],
        n_repeats=settings["n_repeats"],
        n_freqs=settings["n_freqs"],
        n_lags=settings["n_lags"],
        n_times=settings["n_times"],
        seed=settings["seed"],
    )
    fraction = settings["valid_fraction"]
    if fraction == "auto":
        fraction = choose_valid_fraction(settings["n_stims"])
    if not 0 < fraction < 1:
        raise ValueError(f"valid_fraction must lie strictly between 0 and 1, got {short_repr(fraction)}.")
    if not settings["smoothness"] >= 0:
        raise ValueError(f"smoothness is the weight of a penalty and must be >= 0, got {short_repr(settings['smoothness'])}.")
    if settings["n_stims"] < 2:
        raise ValueError(f"the demo needs at least 2 stimuli (one to train, one to validate), got n_stims={settings['n_stims']}.")
    train, valid = population.dataset.split([1 - fraction, fraction], seed=settings["seed"])

    spec = ExperimentSpec(
        model="linear",
        model_options={"n_lags": settings["n_lags"]},
        solver="population",
        solver_options=dict(
            {k: settings[k] for k in ("lr", "max_epochs", "patience") if settings[k] is not None},
            # a little smoothness along frequency and lag: cleaner STRFs at almost no cost in cc_norm
            penalties=[solver.penalties.init("smooth-strf", weight=settings["smoothness"])] if settings["smoothness"] > 0 else [],
        ),
        loss="mse",
        batch_size=settings["batch_size"],
        progress=progress,
        loggers=[CSVLogger(out / "history.csv")],
    )
    experiment = build_experiment(spec, train, valid, seed=settings["seed"])
    fitter = experiment.solver
    print_fn(
        f"fitting {settings['n_neurons']} linear STRFs ({settings['n_freqs']} bands x {settings['n_lags']} lags) on "
        f"{len(train)} training and {len(valid)} validation stimuli ({settings['n_repeats']} repeats, "
        f"{settings['n_times']} bins each)"
    )
    experiment.fit()
    history = fitter.log
    valid_loader = experiment.valid_loader
    # the same linear model in closed form, each neuron's ridge penalty chosen by cross-validation
    ridge_start = time.perf_counter()
    ridge = build_experiment(dataclasses.replace(spec, solver="ridge", solver_options={}, loggers=()), train, valid).fit()
    ridge_seconds = time.perf_counter() - ridge_start
    ridge_scores = ridge.solver.validation(ridge.valid_loader)

    scores = fitter.validation(valid_loader)  # the restored best state
    truth = population.truth_cc_norm(valid).double().cpu()
    fitted_strfs = fitter.model.strf().detach().cpu()
    true_strfs = population.strfs.detach().cpu()
    corr = strf_correlation(fitted_strfs, true_strfs)
    rows = [
        {
            "neuron": n,
            "cc": float(scores["cc"][n]),
            "cc_norm": float(scores["cc_norm"][n]),
            "truth_cc_norm": float(truth[n]),
            "strf_corr": float(corr[n]),
            "ridge_cc_norm": float(ridge_scores["cc_norm"][n]),
        }
        for n in range(settings["n_neurons"])
    ]
    files = {"summary": out / "summary.csv", "history": out / "history.csv"}
    io.atomic_write_text(files["summary"], _summary_csv(rows))

    if plots and _has_matplotlib():
        files["strfs"] = out / "strfs.png"
        files["learning_curves"] = out / "learning_curves.png"
        _plot_strfs(files["strfs"], fitted_strfs, true_strfs, corr, population.dt_ms)
        plot_learning_curves(
            files["learning_curves"],
            history,
            {"val_cc_norm": "fitted (mean over neurons)"},
            loss_label="MSE loss",
            score_label="validation cc_norm",
            reference=("truth (mean over neurons)", float(truth.nanmean())),
            best_epoch=fitter.best_epoch_,
        )
    elif plots:
        print_fn("note: matplotlib is not installed, so strfs.png and learning_curves.png were skipped (pip install matplotlib).")

    comparison = _compare_models(population.dataset, settings, out / "comparison", plots and _has_matplotlib())
    files["comparison"] = out / "comparison"

    seconds = time.perf_counter() - start
    print_fn(f"\nbest epoch {fitter.best_epoch_} of {len(history)}; validation metrics per neuron ({len(rows)} neurons):")
    print_fn(_table(rows))
    print_fn(
        f"ridge_cc_norm: the same linear model in closed form (the 'ridge' solver, per-neuron alphas by 5-fold "
        f"cross-validation), fitted in {ridge_seconds:.1f} s"
    )
    pair = comparison.pair("ln", "ridge")
    print_fn(
        f"\ncomparison ({COMPARISON['n_splits']}-fold cross-validation by stimulus, first {len(comparison.paired)} neurons, "
        f"{min(COMPARISON['n_stims'], population.dataset.n_stims)} stimuli): 'ln' minus 'ridge' median cc_norm {pair['median_diff']:+.3f} "
        f"[{pair['ci_low']:+.3f}, {pair['ci_high']:+.3f}], Wilcoxon p = {pair['p_value']:.3g}, 'ln' higher on "
        f"{pair['wins']} of {pair['n_neurons']} neurons (comparison/report.html)"
    )
    print_fn(f"\nwrote {', '.join(str(p) for p in files.values())} in {seconds:.1f} s")
    return {"summary": rows, "history": history, "files": files, "seconds": seconds, "best_epoch": fitter.best_epoch_,
            "ridge_seconds": ridge_seconds, "comparison": comparison}


def _compare_models(dataset, settings: Dict[str, Any], out: Path, plots: bool):
    """The demo's last step: ridge against an LN model, cross-validated by stimulus on a small part of the data."""
    from strfsolver.model_selection import compare
    from strfsolver.model_selection.html_report import write_report

    n_stims = min(COMPARISON["n_stims"], dataset.n_stims)
    subset = dataset.subset(list(range(n_stims))).select_neurons(list(range(min(COMPARISON["n_neurons"], dataset.n_neurons))))
    n_lags = settings["n_lags"]
    specs = {
        "ridge": {"model": "linear", "model_options": {"n_lags": n_lags}},
        # the solver's defaults, as the main fit; a --max-epochs (or --quick) caps this fit too
        "ln": {"model": "ln", "model_options": {"n_lags": n_lags},
               "solver_options": {k: settings[k] for k in ("max_epochs", "patience") if settings[k] is not None}},
    }
    result = compare(specs, subset, cv=min(COMPARISON["n_splits"], n_stims), n_boot=500, seed=settings["seed"])
    result.save_tables(out)
    figures = {}
    if plots:
        from strfsolver.model_selection.figures import write_figures

        figures = write_figures(result, out)
    write_report(result, out, figures, {"data": "the demo's synthetic population", "neurons": len(result.paired), "stimuli": n_stims})
    return result
