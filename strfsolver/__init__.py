"""strfsolver: fit spectro-temporal receptive fields and deep encoding models
to sensory neural responses with PyTorch.

The package is organised by concept:

- :py:mod:`strfsolver.data`: datasets, padding, loaders, synthetic ground truth;
- :py:mod:`strfsolver.metrics`: exact, vectorized, NaN-aware metrics;
- :py:mod:`strfsolver.losses`: training losses (a registry);
- :py:mod:`strfsolver.models` and :py:mod:`strfsolver.prefilters`: encoding
  models and auditory front ends (registries);
- :py:mod:`strfsolver.solver`: the training loops (a registry);
- :py:class:`strfsolver.STRFEstimator`: the scikit-learn estimator;
- :py:func:`strfsolver.run_many` (:py:mod:`strfsolver.distributed`): independent
  fits on any ``concurrent.futures`` executor;
- :py:mod:`strfsolver.model_selection`: stimulus-grouped cross-validation and
  paired per-neuron model comparison (import it: ``from strfsolver.model_selection import compare``);
- :py:mod:`strfsolver.tracking`: experiment configs and loggers;
  :py:mod:`strfsolver.logger_factories`: one TensorBoard folder or W&B run per seed;
- :py:mod:`strfsolver.registry`: the machinery behind ``init("name")``;
- :py:mod:`strfsolver.io`: safe, atomic files.
"""

__version__ = "0.1.0"

from strfsolver import registry
from strfsolver import io
from strfsolver.random import set_random_seed
from strfsolver import data
from strfsolver import metrics
from strfsolver import losses
from strfsolver import prefilters
from strfsolver import models
from strfsolver import solver
from strfsolver import distributed
from strfsolver import tracking
from strfsolver import logger_factories
from strfsolver.distributed import run_many

__all__ = [
    "registry",
    "io",
    "set_random_seed",
    "data",
    "metrics",
    "losses",
    "prefilters",
    "models",
    "solver",
    "distributed",
    "tracking",
    "logger_factories",
    "run_many",
    "STRFEstimator",
]


def __getattr__(name):
    # the estimator pulls in scikit-learn when it is installed (about a second
    # of import time); load it on first use only
    if name == "STRFEstimator":
        from strfsolver.estimator import STRFEstimator

        return STRFEstimator
    raise AttributeError(f"module 'strfsolver' has no attribute {name!r}")
