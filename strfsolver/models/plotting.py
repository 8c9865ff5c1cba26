"""Draw a grid of STRFs with matplotlib (optional dependency: ``pip install strfsolver[plot]``)."""

from __future__ import annotations

import math
from typing import Any, List, Optional, Sequence

import numpy as np
import torch
from strfsolver.utils.checks import short_repr

__all__ = ["plot_strfs", "plot_strf_pages"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:  # the message is the point
        raise ImportError(
            "plot_strfs needs matplotlib, an optional dependency: pip install strfsolver[plot] (or pip install matplotlib)."
        ) from error
    return plt


def _lag_ticks(n_lags: int, dt_ms: float) -> np.ndarray:
    """A few round lag values in ms that fall on the kernel's lag range."""
    from matplotlib.ticker import MaxNLocator

    span = (n_lags - 1) * dt_ms
    ticks = MaxNLocator(nbins=3, steps=[1, 2, 2.5, 5, 10], integer=dt_ms >= 1).tick_values(0, span)
    return ticks[(ticks >= 0) & (ticks <= span + 1e-9)]


def plot_strfs(
    strfs,
    n_cols: int = 8,
    dt_ms: Optional[float] = None,
    freqs_hz: Optional[Sequence[float]] = None,
    titles: Optional[Sequence[str]] = None,
    cmap: str = "RdBu_r",
    panel_size: float = 1.6,
    shared_scale: bool = True,
    colorbar_label: str = "weight",
    color_limit: Optional[float] = None,
    title: Optional[str] = None,
):
    """Draw one panel per neuron (every neuron given); a multi-channel STRF shows its channels side by side.

    Colours are symmetric around zero (red = excitation with the default
    map): one scale for all panels with a shared colour bar, or one per
    panel (``shared_scale=False``, shapes compared, not gains). Frequency
    runs upwards, lag from 0 (left). For hundreds of neurons, draw them
    page by page with :py:func:`plot_strf_pages`.

    Args:
        strfs: ``(N, C, F, L)`` or ``(N, F, L)`` tensor or array.
        n_cols: Panels per row.
        dt_ms: Bin width; the lag axis is then in ms (round values), else in bins.
        freqs_hz: ``F`` band centres; the frequency axis is then in kHz, else in bands.
        titles: One title per neuron (the data set's neuron ids, say; default ``"neuron n"``).
        cmap: Matplotlib colour map.
        panel_size: Size of a panel in inches.
        shared_scale: One colour scale and a colour bar for all panels.
        colorbar_label: Label of the shared colour bar.
        color_limit: The shared scale's largest absolute weight (default: the largest in ``strfs``).
        title: The figure's title.

    Returns:
        The ``matplotlib.figure.Figure``.
    """
    plt = _pyplot()
    array = strfs.detach().cpu().numpy() if isinstance(strfs, torch.Tensor) else np.asarray(strfs, dtype=float)
    if array.ndim == 3:
        array = array[:, None]
    if array.ndim != 4:
        raise ValueError(f"strfs must have shape (N, C, F, L) or (N, F, L), got {array.shape}.")
    n_neurons, n_channels, n_freqs, n_lags = array.shape
    if titles is not None and len(titles) != n_neurons:
        raise ValueError(f"titles has {len(titles)} entries for {n_neurons} STRFs.")
    if freqs_hz is not None and len(freqs_hz) != n_freqs:
        raise ValueError(f"freqs_hz has {len(freqs_hz)} entries for {n_freqs} bands.")
    n_cols = max(1, min(n_cols, n_neurons))
    n_rows = math.ceil(n_neurons / n_cols)
    width = panel_size * n_cols * max(1, n_channels * n_lags / max(n_freqs, 1)) ** 0.5 + (0.9 if shared_scale else 0)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(width, panel_size * n_rows + 0.5), squeeze=False)
    finite = array[np.isfinite(array)]
    shared_limit = float(np.abs(finite).max()) if finite.size and np.abs(finite).max() > 0 else 1.0
    if color_limit is not None:
        shared_limit = float(color_limit)
    step = dt_ms if dt_ms is not None else 1.0
    image = None
    for index, ax in enumerate(axes.flat):
        if index >= n_neurons:
            ax.set_visible(False)
            continue
        # channels side by side, separated by a blank (NaN) column
        blocks = []
        for c in range(n_channels):
            if c:
                blocks.append(np.full((n_freqs, 1), np.nan))
            blocks.append(array[index, c])
        panel = np.concatenate(blocks, axis=1)
        limit = shared_limit
        if not shared_scale:
            limit = np.nanmax(np.abs(panel)) if np.isfinite(panel).any() else 1.0
            limit = limit if limit > 0 else 1.0
        # pixel centres on lag * dt (ms) and band index: ticks then read in the axes' own units
        extent = (-0.5 * step, (panel.shape[1] - 0.5) * step, -0.5, n_freqs - 0.5)
        image = ax.imshow(panel, origin="lower", aspect="auto", cmap=cmap, vmin=-limit, vmax=limit, interpolation="nearest", extent=extent)
        ax.set_title(titles[index] if titles is not None else f"neuron {index}", fontsize=8)
        if dt_ms is not None and n_channels == 1:
            ax.set_xticks(_lag_ticks(n_lags, dt_ms))
        ax.tick_params(labelsize=6)
        if freqs_hz is not None:
            ticks = np.unique(np.linspace(0, n_freqs - 1, min(3, n_freqs)).round().astype(int))
            ax.set_yticks(ticks)
            ax.set_yticklabels([f"{freqs_hz[t] / 1000:.2g}" for t in ticks], fontsize=6)
        if index % n_cols:
            ax.set_yticklabels([])
        else:
            ax.set_ylabel("frequency (kHz)" if freqs_hz is not None else "frequency band", fontsize=7)
        if index + n_cols >= n_neurons:  # the lowest panel of its column
            ax.set_xlabel("lag (ms)" if dt_ms is not None else "lag (bins)", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    if shared_scale and image is not None:
        # room on the right for one colour bar that every panel shares
        fig.subplots_adjust(right=1 - 1.0 / width)
        bar_axes = fig.add_axes((1 - 0.8 / width, 0.15, 0.12 / width, 0.7))
        bar = fig.colorbar(image, cax=bar_axes)
        bar.set_label(colorbar_label, fontsize=7)
        bar.ax.tick_params(labelsize=6)
    return fig


def plot_strf_pages(strfs, per_page: int = 48, titles: Optional[Sequence[str]] = None, **kwargs) -> List[Any]:
    """Every neuron's STRF, ``per_page`` panels a figure (one colour scale across all pages).

    Args:
        strfs: ``(N, C, F, L)`` or ``(N, F, L)``.
        per_page: Panels per figure.
        titles: One title per neuron.
        **kwargs: Of :py:func:`plot_strfs`.

    Returns:
        A list of figures, the neurons in order.
    """
    array = strfs.detach().cpu().numpy() if isinstance(strfs, torch.Tensor) else np.asarray(strfs, dtype=float)
    if isinstance(per_page, bool) or not isinstance(per_page, int) or per_page < 1:
        raise ValueError(f"per_page must be a positive integer, got {short_repr(per_page)}.")
    if titles is not None and len(titles) != len(array):
        raise ValueError(f"titles has {len(titles)} entries for {len(array)} STRFs.")
    finite = array[np.isfinite(array)]
    limit = float(np.abs(finite).max()) if finite.size and np.abs(finite).max() > 0 else None
    figures = []
    for start in range(0, len(array), per_page):
        page_titles = None if titles is None else list(titles[start:start + per_page])
        figures.append(plot_strfs(array[start:start + per_page], titles=page_titles, color_limit=limit, **kwargs))
    return figures
