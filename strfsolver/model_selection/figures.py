"""The figures of a model comparison (matplotlib, an optional dependency).

- :py:func:`plot_pair_scatter`: each neuron's score under model A against model B, with the diagonal;
- :py:func:`plot_score_distributions`: the per-neuron ``cc_norm`` of every model;
- :py:func:`plot_best_strfs`: the best model's STRFs (averaged over folds) for its best neurons;
- :py:func:`plot_fold_learning_curves`: validation score per epoch of every fold of every trained model.

Each takes a :py:class:`~strfsolver.model_selection.ComparisonResult` and
a PNG path, writes the figure and closes it. :py:func:`write_figures`
draws them all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np

__all__ = ["plot_pair_scatter", "plot_score_distributions", "plot_best_strfs", "plot_fold_learning_curves", "write_figures"]

_DPI = 110


def _pyplot():
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError("comparison figures need matplotlib: pip install strfsolver[plot]") from error
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Union[str, Path]) -> Path:
    plt = _pyplot()
    path = Path(path)
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)
    return path


def _p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def plot_pair_scatter(result, a: str, b: str, path: Union[str, Path]) -> Path:
    """Model ``a`` (x) against model ``b`` (y), one dot per neuron, with the diagonal."""
    plt = _pyplot()
    metric = result.metric
    x, y = result.paired[a].to_numpy(), result.paired[b].to_numpy()
    finite = np.isfinite(x) & np.isfinite(y)
    row = result.pair(a, b)
    fig, ax = plt.subplots(figsize=(4.4, 4.4))
    above = finite & (y > x)
    ax.scatter(x[finite & ~above], y[finite & ~above], s=16, color="tab:blue", label=f"{a} higher or equal ({row['wins'] + row['ties']})")
    ax.scatter(x[above], y[above], s=16, color="tab:orange", label=f"{b} higher ({row['losses']})")
    values = np.r_[x[finite], y[finite]]
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    pad = 0.05 * (high - low or 1.0)
    ax.plot([low - pad, high + pad], [low - pad, high + pad], color="gray", linewidth=1, linestyle="--")
    ax.set_xlim(low - pad, high + pad)
    ax.set_ylim(low - pad, high + pad)
    ax.set_aspect("equal")
    ax.set_xlabel(f"{a}: {metric}")
    ax.set_ylabel(f"{b}: {metric}")
    ax.set_title(
        f"{a} - {b}: median {row['median_diff']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]\n"
        f"Wilcoxon {_p_text(row['p_value'])}, {row['n_neurons']} neurons",
        fontsize=9,
    )
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return _save(fig, path)


def plot_score_distributions(result, path: Union[str, Path]) -> Path:
    """Box plot of every model's per-neuron score, with the neurons as dots."""
    plt = _pyplot()
    metric = result.metric
    names = result.names
    data = [result.paired[name].to_numpy() for name in names]
    data = [values[np.isfinite(values)] for values in data]
    fig, ax = plt.subplots(figsize=(1.4 * len(names) + 2.2, 3.8))
    ax.boxplot(data, showfliers=False, widths=0.5)
    ax.set_xticks(range(1, len(names) + 1))
    ax.set_xticklabels(names)
    jitter = np.random.default_rng(0)
    for position, values in enumerate(data, start=1):
        ax.scatter(position + jitter.uniform(-0.12, 0.12, len(values)), values, s=9, alpha=0.6, color="tab:blue")
    if metric == "cc_norm":
        ax.axhline(1.0, color="gray", linewidth=1, linestyle=":", label="noise ceiling")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_ylabel(f"cross-validated {metric} per neuron")
    ax.set_title(f"{metric} of {len(result.paired)} neurons, {len(result.results[names[0]].folds)}-fold cross-validation", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_best_strfs(result, path: Union[str, Path], n_show: int = 8, model: Optional[str] = None) -> Optional[Path]:
    """The STRFs (mean over folds) of the best-scoring neurons of ``model`` (default: the best model).

    Returns ``None`` (and writes nothing) for a model without STRFs.
    """
    from strfsolver.models.plotting import plot_strfs

    name = model or result.best_model
    cv = result.results[name]
    strfs = cv.mean_strf()
    if strfs is None:
        return None
    scores = cv.summary[result.metric].to_numpy()
    order = np.argsort(np.where(np.isfinite(scores), -scores, np.inf), kind="stable")[:n_show]
    titles = [f"neuron {cv.neuron_ids[n]}\n{result.metric} {scores[n]:.2f}" for n in order]
    fig = plot_strfs(
        strfs[order], dt_ms=cv.dt_ms, titles=titles, n_cols=min(4, len(order)),
        title=f"{name}: STRFs of its {len(order)} best neurons (mean over folds)",
    )
    return _save(fig, path)


def _curve_key(history: List[Dict[str, float]]) -> Optional[str]:
    for key in ("val_cc_norm", "val_cc", "val_loss", "train_loss"):
        if any(key in row for row in history):
            return key
    return None


def plot_fold_learning_curves(result, path: Union[str, Path]) -> Optional[Path]:
    """Validation score per epoch, one line per fold, one panel per model trained by gradient steps.

    Closed-form models (one "epoch") have no curve. Returns ``None`` when no model has one.
    """
    plt = _pyplot()
    trained = [name for name, cv in result.results.items() if max(f["epochs"] for f in cv.folds) > 1]
    if not trained:
        return None
    fig, axes = plt.subplots(1, len(trained), figsize=(4.2 * len(trained), 3.4), squeeze=False)
    for ax, name in zip(axes[0], trained):
        key = None
        for fold in result.results[name].folds:
            history = fold["history"]
            key = _curve_key(history) or key
            rows = [row for row in history if key in row]
            line, = ax.plot([r["epoch"] for r in rows], [r[key] for r in rows], label=f"fold {fold['fold']}")
            best = fold["best_epoch"]
            best_rows = [r for r in rows if r["epoch"] == best]
            if best_rows:
                ax.plot([best], [best_rows[0][key]], marker="o", color=line.get_color(), markersize=5)
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{key} (early-stopping stimuli)" if key and key.startswith("val") else str(key))
        ax.set_title(f"{name}: dots mark each fold's best epoch", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def write_figures(result, out: Union[str, Path]) -> Dict[str, Path]:
    """Every figure of the comparison into ``out``; ``{name: path}`` of those drawn."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files: Dict[str, Path] = {"distributions": plot_score_distributions(result, out / "cc_norm_distributions.png")}
    names = result.names
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            files[f"scatter_{a}_vs_{b}"] = plot_pair_scatter(result, a, b, out / f"scatter_{a}_vs_{b}.png")
    strfs = plot_best_strfs(result, out / "best_strfs.png")
    if strfs is not None:
        files["best_strfs"] = strfs
    curves = plot_fold_learning_curves(result, out / "fold_learning_curves.png")
    if curves is not None:
        files["fold_learning_curves"] = curves
    return files
