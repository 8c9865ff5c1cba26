"""The per-neuron report the command line writes (``demo`` and ``fit``).

Tables as CSV text, a median / min / max summary for the terminal and the
learning-curve figure. matplotlib is optional: :py:func:`has_matplotlib`
says whether the figures can be drawn.
"""

from __future__ import annotations

import csv
import io as _stdio
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

__all__ = ["has_matplotlib", "median", "rows_to_csv", "summary_lines", "plot_learning_curves", "save_strf_pages"]


def has_matplotlib() -> bool:
    """Whether matplotlib can be imported (``pip install strfsolver[plot]``)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def median(values: Sequence[float]) -> float:
    """Median of the finite values; NaN when there is none."""
    finite = torch.tensor([v for v in values if not math.isnan(v)], dtype=torch.float64)
    return float(finite.median()) if finite.numel() else float("nan")


def rows_to_csv(rows: List[Dict[str, Any]], columns: Optional[Sequence[str]] = None) -> str:
    """One CSV line per row dict, floats to 6 significant digits.

    Args:
        rows: The table, one dict per row.
        columns: Column order; default: the keys in first-seen order.
    """
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = _stdio.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buffer.getvalue()


def summary_lines(rows: List[Dict[str, Any]], keys: Sequence[str], width: int = 14) -> List[str]:
    """A header and one ``key median min max`` line per key, over the rows' finite values."""
    lines = [f"{'':<{width}}{'median':>9}{'min':>9}{'max':>9}"]
    for key in keys:
        values = [row[key] for row in rows if not math.isnan(row[key])]
        if values:
            lines.append(f"{key:<{width}}{median(values):>9.3f}{min(values):>9.3f}{max(values):>9.3f}")
        else:
            lines.append(f"{key:<{width}}{'nan':>9}{'nan':>9}{'nan':>9}")
    return lines


def plot_learning_curves(
    path: Path,
    history: List[Dict[str, Any]],
    scores: Dict[str, str],
    loss_label: str = "loss",
    score_label: str = "validation score",
    reference: Optional[Tuple[str, float]] = None,
    best_epoch: Optional[int] = None,
    title: Optional[str] = None,
) -> None:
    """Losses (left) and validation scores (right) per epoch, saved to ``path``.

    Args:
        path: The PNG to write.
        history: The solver's epoch dicts.
        scores: Epoch-dict keys to draw on the right, with their legend labels.
        loss_label: Label of the left axis.
        score_label: Label of the right axis.
        reference: ``(label, value)`` of a dashed horizontal line on the right.
        best_epoch: Marked with a dotted vertical line on both panels, named in the legends.
        title: Figure title.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    left.plot([row["epoch"] for row in history], [row["train_loss"] for row in history], label="train")
    validated = [row for row in history if "val_loss" in row]
    left.plot([r["epoch"] for r in validated], [r["val_loss"] for r in validated], label="validation")
    left.set_xlabel("epoch")
    left.set_ylabel(loss_label)
    left.legend()
    for key, label in scores.items():
        right.plot([r["epoch"] for r in validated if key in r], [r[key] for r in validated if key in r], label=label)
    if reference is not None:
        right.axhline(reference[1], color="k", linestyle="--", linewidth=1, label=reference[0])
    if best_epoch is not None:
        for ax in (left, right):
            ax.axvline(best_epoch, color="gray", linestyle=":", linewidth=1, label=f"best epoch ({best_epoch})")
        left.legend()
    from matplotlib.ticker import MaxNLocator

    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    right.set_xlabel("epoch")
    right.set_ylabel(score_label)
    right.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_strf_pages(path: Path, strfs, per_page: int = 48, **kwargs: Any) -> List[Path]:
    """Every neuron's STRF as PNG pages: ``path`` for the first, ``<stem>_2.png``... for the next ones.

    Args:
        path: The first page's file.
        strfs: ``(N, C, F, L)`` or ``(N, F, L)``.
        per_page: Panels per page (one colour scale across the pages).
        **kwargs: Of :py:func:`strfsolver.models.plot_strfs` (``dt_ms``, ``freqs_hz``, ``titles``...).

    Returns:
        The paths written, in page order.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from strfsolver.models.plotting import plot_strf_pages

    path = Path(path)
    written = []
    for index, figure in enumerate(plot_strf_pages(strfs, per_page=per_page, **kwargs)):
        target = path if index == 0 else path.with_name(f"{path.stem}_{index + 1}{path.suffix}")
        figure.savefig(target, dpi=110)
        plt.close(figure)
        written.append(target)
    return written
