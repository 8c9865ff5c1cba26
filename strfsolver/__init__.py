"""strfsolver: fit spectro-temporal receptive fields and deep encoding models
to sensory neural responses with PyTorch.

The package is organised by concept:

- :py:mod:`strfsolver.data`: datasets, padding, loaders, synthetic ground truth;
- :py:mod:`strfsolver.metrics`: exact, vectorized, NaN-aware metrics;
- :py:mod:`strfsolver.losses`: training losses (a registry);
- :py:mod:`strfsolver.models` and :py:mod:`strfsolver.prefilters`: encoding
  models and auditory front ends (registries);
- :py:mod:`strfsolver.solver`: the training loops (a registry);
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
]
