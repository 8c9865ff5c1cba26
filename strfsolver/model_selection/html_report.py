"""A self-contained ``report.html`` of a model comparison.

One file that opens from disk with no server and no network: the figures
are embedded as base64 PNGs, the tables are plain HTML, the style is an
inline ``<style>`` block, and there is no script and no external link.
"""

from __future__ import annotations

import base64
import html
import math
import time
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from strfsolver.utils.io import atomic_write_text

__all__ = ["write_report", "render_report"]

_STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; } td.text { text-align: left; }
figure { display: inline-block; margin: 0.5em; } img { max-width: 100%; }
figcaption { font-size: 0.85em; color: #555; } .note { color: #555; font-size: 0.9em; }
"""


def _cell(value: Any) -> str:
    if isinstance(value, float):
        text = "nan" if math.isnan(value) else f"{value:.4g}"
        return f"<td>{text}</td>"
    if isinstance(value, (int,)) and not isinstance(value, bool):
        return f"<td>{value}</td>"
    return f'<td class="text">{html.escape(str(value))}</td>'


def _table(frame, max_rows: Optional[int] = None) -> str:
    rows = frame if max_rows is None else frame.head(max_rows)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in rows.columns)
    body = []
    for record in rows.itertuples(index=False):
        body.append("<tr>" + "".join(_cell(v.item() if hasattr(v, "item") else v) for v in record) + "</tr>")
    note = ""
    if max_rows is not None and len(frame) > max_rows:
        note = f'<p class="note">first {max_rows} of {len(frame)} rows; every row is in the CSV file.</p>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{note}"


def _figure(path: Path, caption: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


_CAPTIONS = {
    "distributions": "Cross-validated score of every neuron under each model; the dotted line is the noise ceiling.",
    "best_strfs": "The best model's STRFs, averaged over folds, for its best-scoring neurons.",
    "fold_learning_curves": "Score on each fold's early-stopping stimuli per epoch; dots mark the epoch kept.",
}


def render_report(result, figures: Mapping[str, Union[str, Path]], settings: Optional[Mapping[str, Any]] = None, max_neuron_rows: int = 200) -> str:
    """The report's HTML text.

    Args:
        result: A :py:class:`~strfsolver.model_selection.ComparisonResult`.
        figures: ``{name: PNG path}`` (as :py:func:`~strfsolver.model_selection.figures.write_figures` returns).
        settings: What was run (data file, folds...), shown as a table.
        max_neuron_rows: Rows of the per-neuron table shown (the CSV has them all).
    """
    import pandas as pd

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>strfsolver model comparison</title>',
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Model comparison</h1>",
        f'<p class="note">Written by strfsolver on {html.escape(time.strftime("%Y-%m-%d %H:%M"))}. '
        "Every score is cross-validated by stimulus: each stimulus is predicted by the fit that never saw it, "
        "and a neuron's score is computed on all its held-out predictions together.</p>",
    ]
    if settings:
        frame = pd.DataFrame({"setting": list(settings), "value": [str(v) for v in settings.values()]})
        parts += ["<h2>Settings</h2>", _table(frame)]
    parts += [
        "<h2>Models</h2>",
        '<p class="note">median_cc_norm: the median fraction of the noise ceiling reached (in correlation); '
        "median_explained_fraction: its square, the fraction of the explainable variance.</p>",
        _table(result.models),
        "<h2>Pairs</h2>",
        f'<p class="note">median_diff: median over neurons of {html.escape(result.metric)}(a) - '
        f"{html.escape(result.metric)}(b), with a 95% bootstrap interval over neurons; p_value: two-sided "
        "Wilcoxon signed-rank test; wins: neurons where a scores higher.</p>",
        _table(result.pairs),
        "<h2>Figures</h2>",
    ]
    for name, path in figures.items():
        caption = _CAPTIONS.get(name)
        if caption is None and name.startswith("scatter_"):
            caption = "Each neuron under the two models; dots above the diagonal favour the model on the y axis."
        parts.append(_figure(Path(path), caption or name))
    parts += [f"<h2>Per-neuron {html.escape(result.metric)}</h2>", _table(result.paired, max_neuron_rows)]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(result, out: Union[str, Path], figures: Mapping[str, Union[str, Path]], settings: Optional[Mapping[str, Any]] = None) -> Path:
    """Write ``out/report.html`` (atomically); returns its path."""
    path = Path(out) / "report.html"
    atomic_write_text(path, render_report(result, figures, settings))
    return path
