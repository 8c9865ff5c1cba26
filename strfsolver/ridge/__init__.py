"""Closed-form ridge regression of linear STRFs from streamed sufficient statistics.

- :class:`RidgeStatistics` accumulates, stimulus by stimulus, the Grams and
  cross-products of the lagged design without building it
  (:mod:`~strfsolver.ridge.statistics`).
- :func:`fit_ridge` solves ridge (or a smoothness-penalised Tikhonov) for
  every neuron at once, choosing each neuron's alpha by cross-validation over
  stimuli or by exact leave-one-bin-out (:mod:`~strfsolver.ridge.solve`).

Example:

    >>> import torch
    >>> from strfsolver.ridge import RidgeStatistics, fit_ridge
    >>> g = torch.Generator().manual_seed(0)
    >>> stats = RidgeStatistics(n_lags=3)
    >>> for length in (200, 150, 180, 220, 170):
    ...     x = torch.randn(4, length, generator=g, dtype=torch.float64)
    ...     y = x[:2].roll(1, 1) + 0.1 * torch.randn(2, length, generator=g, dtype=torch.float64)
    ...     _ = stats.add(x, y)
    >>> fit = fit_ridge(stats, cv=5)
    >>> fit.coef.shape, fit.cv_scores.shape
    (torch.Size([2, 12]), torch.Size([15, 2]))
"""

from strfsolver.ridge.lagged import lagged_cross, lagged_design, lagged_gram, lagged_sum
from strfsolver.ridge.statistics import RidgeStatistics
from strfsolver.ridge.solve import DEFAULT_RELATIVE_ALPHAS, SEARCH_CONDITION_LIMIT, RidgeFit, fit_ridge, laplacian_penalty

__all__ = [
    "RidgeStatistics",
    "fit_ridge",
    "RidgeFit",
    "DEFAULT_RELATIVE_ALPHAS",
    "SEARCH_CONDITION_LIMIT",
    "laplacian_penalty",
    "lagged_design",
    "lagged_gram",
    "lagged_cross",
    "lagged_sum",
]
