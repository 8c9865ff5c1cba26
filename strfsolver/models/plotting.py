"""Draw a grid of STRFs with matplotlib (optional dependency: ``pip install strfsolver[plot]``)."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import torch

__all__ = ["plot_strfs"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:  # the message is the point
        raise ImportError(
            "plot_strfs needs matplotlib, an optional dependency: pip install strfsolver[plot] (or pip install matplotlib)."
        ) from error
    return plt


def plot_strfs(
    strfs,
    n_cols: int = 8,
    dt_ms: Optional[float] = None,
    freqs_hz: Optional[Sequence[float]] = None,
    titles: Optional[Sequence[str]] = None,
    cmap: str = "RdBu_r",
    panel_size: float = 1.6,
):
    """Draw one panel per neuron; a multi-channel STRF shows its channels side by side.

    Colours are symmetric around zero per panel (red = excitation with the
    default map). Frequency runs upwards, lag runs from 0 (left) to ``L - 1``.

    Args:
        strfs: ``(N, C, F, L)`` or ``(N, F, L)`` tensor or array.
        n_cols: Panels per row.
        dt_ms: Bin width; the lag axis is labelled in ms when given.
        freqs_hz: ``F`` band centres; the frequency axis is labelled in kHz when given.
        titles: One title per neuron (default ``"neuron n"``).
        cmap: Matplotlib colour map.
        panel_size: Size of a panel in inches.

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
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(panel_size * n_cols * max(1, n_channels * n_lags / max(n_freqs, 1)) ** 0.5, panel_size * n_rows), squeeze=False)
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
        image = np.concatenate(blocks, axis=1)
        limit = np.nanmax(np.abs(image)) if np.isfinite(image).any() else 1.0
        limit = limit if limit > 0 else 1.0
        ax.imshow(image, origin="lower", aspect="auto", cmap=cmap, vmin=-limit, vmax=limit, interpolation="nearest")
        ax.set_title(titles[index] if titles is not None else f"neuron {index}", fontsize=8)
        if dt_ms is not None:
            ticks = np.linspace(0, n_lags - 1, min(3, n_lags)).round().astype(int)
            ax.set_xticks(ticks)
            ax.set_xticklabels([f"{t * dt_ms:g}" for t in ticks], fontsize=6)
        else:
            ax.tick_params(labelsize=6)
        if freqs_hz is not None:
            ticks = np.linspace(0, n_freqs - 1, min(3, n_freqs)).round().astype(int)
            ax.set_yticks(ticks)
            ax.set_yticklabels([f"{freqs_hz[t] / 1000:.1f}" for t in ticks], fontsize=6)
    fig.supxlabel("lag (ms)" if dt_ms is not None else "lag (bins)", fontsize=8)
    fig.supylabel("frequency (kHz)" if freqs_hz is not None else "frequency band", fontsize=8)
    fig.tight_layout()
    return fig
