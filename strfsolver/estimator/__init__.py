"""A scikit-learn style estimator around a model and a solver: :py:class:`STRFEstimator`.

``STRFEstimator(model="linear", n_lags=20).fit(X, y)`` on ``(n_times,
n_freqs)`` arrays; see :py:mod:`strfsolver.estimator.estimator` for the
shapes it takes and ``docs/estimator.md`` for a guide.
"""

from strfsolver.estimator.estimator import HAS_SKLEARN, NotFittedError, STRFEstimator, dataset_to_arrays

__all__ = ["STRFEstimator", "dataset_to_arrays", "NotFittedError", "HAS_SKLEARN"]
