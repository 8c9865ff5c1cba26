"""The main job: fit linear STRFs to the embedded synthetic population.

``python -m strfsolver demo --out DIR`` (or ``strfsolver demo --out DIR``)
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
from typing import Any, Callable, Dict, List, Union

import torch

from strfsolver import io, solver
from strfsolver.data import synthetic_population
from strfsolver.experiment import ExperimentSpec, build_experiment, choose_valid_count
from strfsolver.random import set_random_seed
from strfsolver.report import has_matplotlib as _has_matplotlib
from strfsolver.report import median, plot_learning_curves, rows_to_csv, summary_lines
from strfsolver.solver.loggers import CSVLogger

__all__ = ["run_demo", "strf_correlation", "DEFAULTS", "QUICK"]

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


def _plot_strfs(path: Path, fitted: torch.Tensor, truth: torch.Tensor, corr: torch.Tensor, dt_ms: float, n_show: int = 8) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = min(n_show, fitted.shape[0])
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n + 1, 3.6), squeeze=False)
    lags_ms = fitted.shape[-1] * dt_ms
    for i in range(n):
        for row, (kernel, label) in enumerate(((truth[i, 0], "true"), (fitted[i, 0], "fitted"))):
            ax = axes[row, i]
            # each kernel on its own symmetric scale: shapes are compared, not gains
            limit = float(kernel.abs().max()) or 1.0
            ax.imshow(kernel.numpy(), origin="lower", aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit, extent=(0, lags_ms, 0, kernel.shape[0]))
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_ylabel(f"{label}\nfrequency")
            if row == 0:
                ax.set_title(f"neuron {i}\nr = {float(corr[i]):.2f}", fontsize=8)
            else:
                ax.set_xlabel(f"0-{lags_ms:.0f} ms", fontsize=7)
    fig.suptitle("STRFs: true (top) and fitted linear model (bottom)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_demo(
    out: Union[str, os.PathLike],
    *,
    quick: bool = False,
    plots: bool = True,
    progress: bool = True,
    print_fn: Callable[[str], Any] = print,
    **options: Any,
) -> Dict[str, Any]:
    """Fit the demo and write its files; see the module docstring.

    Args:
        out: Output folder (created).
        quick: Start from :py:data:`QUICK` sizes instead of :py:data:`DEFAULTS`.
        plots: Draw the two PNGs (when matplotlib is installed).
        progress: Show the solver's progress bar.
        print_fn: Where the table and notes go.
        **options: Overrides of :py:data:`DEFAULTS` (``n_neurons``, ``n_stims``,
            ``n_repeats``, ``n_freqs``, ``n_lags``, ``n_times``,
            ``valid_fraction``, ``batch_size``, ``lr``, ``max_epochs``,
            ``patience``, ``smoothness`` (weight of the ``"smooth-strf"``
            penalty; 0 for none), ``seed``).

    Returns:
        ``{"summary": rows (list of dicts), "history": epoch dicts, "files":
        {name: path}, "seconds": float, "best_epoch": int}``.
    """
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown demo option(s) {unknown}; options are {sorted(DEFAULTS)}.")
    settings = dict(DEFAULTS)
    if quick:
        settings.update(QUICK)
    settings.update({k: v for k, v in options.items() if v is not None})
    out = Path(out)
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
        fraction = choose_valid_count(settings["n_stims"]) / settings["n_stims"] if settings["n_stims"] >= 2 else 0.5
    if not 0 < fraction < 1:
        raise ValueError(f"valid_fraction must lie strictly between 0 and 1, got {fraction!r}.")
    if not settings["smoothness"] >= 0:
        raise ValueError(f"smoothness is the weight of a penalty and must be >= 0, got {settings['smoothness']!r}.")
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

    seconds = time.perf_counter() - start
    print_fn(f"\nbest epoch {fitter.best_epoch_} of {len(history)}; validation metrics per neuron ({len(rows)} neurons):")
    print_fn(_table(rows))
    print_fn(
        f"ridge_cc_norm: the same linear model in closed form (the 'ridge' solver, per-neuron alphas by 5-fold "
        f"cross-validation), fitted in {ridge_seconds:.1f} s"
    )
    print_fn(f"\nwrote {', '.join(str(p) for p in files.values())} in {seconds:.1f} s")
    return {"summary": rows, "history": history, "files": files, "seconds": seconds, "best_epoch": fitter.best_epoch_,
            "ridge_seconds": ridge_seconds}
