"""A scikit-learn style estimator around a model and a solver: :py:class:`STRFEstimator`.

``STRFEstimator(model="linear", n_lags=20).fit(X, y)`` on ``(n_times,
n_freqs)`` arrays; see :py:mod:`strfsolver.estimator.estimator` for the
shapes it takes and ``docs/estimator.md`` for a guide.

- :py:mod:`~strfsolver.estimator.estimator`: the estimator;
- :py:mod:`~strfsolver.estimator.inputs`: checks and conversions of ``X``
  and ``y``, :py:func:`dataset_to_arrays`, the validation split;
- :py:mod:`~strfsolver.estimator.files`: the folder ``save`` writes;
- :py:mod:`~strfsolver.estimator.sklearn_compat`: the base classes used
  without scikit-learn.
"""

from strfsolver.estimator.estimator import HAS_SKLEARN, NotFittedError, STRFEstimator
from strfsolver.estimator.inputs import dataset_to_arrays

__all__ = ["STRFEstimator", "dataset_to_arrays", "NotFittedError", "HAS_SKLEARN"]
