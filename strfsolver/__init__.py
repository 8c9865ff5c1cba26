"""strfsolver: fit spectro-temporal receptive fields and deep encoding models
to sensory neural responses with PyTorch.

The package is organised in layers, lowest first; a layer imports only the
layers below it (the import-linter contract in ``setup.cfg``):

- :py:mod:`strfsolver.utils`: argument checks, safe atomic files
  (:py:mod:`strfsolver.utils.io`), seeding, executors;
- :py:mod:`strfsolver.metrics`: exact, vectorized, NaN-aware metrics;
  :py:mod:`strfsolver.data`: datasets, padding, loaders, synthetic ground truth;
  :py:mod:`strfsolver.losses`: training losses (a registry);
- :py:mod:`strfsolver.nn`: the building blocks of the models (STRF layers,
  activations, stimulus standardization);
- :py:mod:`strfsolver.prefilters` and :py:mod:`strfsolver.models`: auditory
  front ends and encoding models (registries);
- :py:mod:`strfsolver.ridge`: the closed-form ridge core;
- :py:mod:`strfsolver.solver`: the training loops (a registry);
- :py:mod:`strfsolver.loggers`: the logger protocol, file loggers, TensorBoard
  and W&B (:py:mod:`strfsolver.loggers.tracking`), one TensorBoard folder or
  W&B run per seed (:py:mod:`strfsolver.loggers.logger_factories`);
- :py:mod:`strfsolver.workflow`: experiments and
  :py:func:`strfsolver.run_many` (:py:mod:`strfsolver.workflow.distributed`):
  independent fits on any ``concurrent.futures`` executor;
- :py:class:`strfsolver.STRFEstimator` (:py:mod:`strfsolver.estimator`): the
  scikit-learn estimator; :py:mod:`strfsolver.model_selection`:
  stimulus-grouped cross-validation and paired per-neuron model comparison
  (import it: ``from strfsolver.model_selection import compare``);
- :py:mod:`strfsolver.app`: the command line, its config files, the demo and
  the reports.

:py:mod:`strfsolver.registry` is the machinery behind ``init("name")``. The
modules that moved keep their old paths for one release
(:py:mod:`strfsolver._moved`, with a ``DeprecationWarning``).
"""

from strfsolver._version import __version__
from strfsolver import _moved

_moved.install()

from strfsolver import registry  # noqa: E402
from strfsolver.utils import io  # noqa: E402
from strfsolver.utils.seeding import set_random_seed  # noqa: E402
from strfsolver import data  # noqa: E402
from strfsolver import metrics  # noqa: E402
from strfsolver import losses  # noqa: E402
from strfsolver import prefilters  # noqa: E402
from strfsolver import models  # noqa: E402
from strfsolver import solver  # noqa: E402
from strfsolver.workflow import distributed  # noqa: E402
from strfsolver.loggers import tracking  # noqa: E402
from strfsolver.loggers import logger_factories  # noqa: E402
from strfsolver.workflow.distributed import run_many  # noqa: E402

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
