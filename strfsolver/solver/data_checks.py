"""Checks of the training data against the model, made when a fit starts.

The data contract of each stimulus on its own is checked by
:py:class:`~strfsolver.data.NeuralDataset`; what can only be judged with the
model in hand lives here, so that a fit that could not learn part of its
model stops before its first epoch instead of finishing silently.
"""

from __future__ import annotations

from typing import Any

from strfsolver.utils.checks import is_count

__all__ = ["check_lags_fit_stimuli"]


def check_lags_fit_stimuli(model: Any, loader: Any) -> None:
    """Refuse a model whose ``n_lags`` exceeds the longest training stimulus.

    Lag ``l`` of an STRF sees the stimulus ``l`` bins back; when every
    stimulus is shorter than ``l + 1`` bins that weight never meets an input,
    gets no gradient and stays at its random start. The check needs a loader
    over a :py:class:`~strfsolver.data.NeuralDataset` (``loader.dataset.lengths``);
    other loaders are not inspected.

    Raises:
        ValueError: naming ``n_lags`` and the longest stimulus' length.
    """
    n_lags = getattr(model, "n_lags", None)
    lengths = getattr(getattr(loader, "dataset", None), "lengths", None)
    if not is_count(n_lags, 1) or not lengths:
        return
    longest = max(lengths)
    if n_lags > longest:
        raise ValueError(
            f"n_lags={n_lags} is longer than every training stimulus (the longest has {longest} bins): lags "
            f"{longest} to {n_lags - 1} would never see the stimulus and keep their initial values; use "
            f"n_lags <= {longest} or longer stimuli."
        )
