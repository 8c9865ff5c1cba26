"""Training losses, registered by name: ``strfsolver.losses.init("mse")``.

Every loss takes ``pred (B, N, 1, T)`` and ``responses (B, N, R, T)``, masks
NaN positions out of its value and its gradient and reduces over neurons
(docs/conventions.md §3). The functional forms are in
:py:mod:`strfsolver.losses.functional` (``mse``, ``poisson_nll``).
"""

import sys

from strfsolver import registry
from strfsolver.losses._registry import _registry_state, alias, get_aliases, get_options, init, parametrize, register  # noqa: F401

from strfsolver.losses import functional  # noqa: E402
from strfsolver.losses.functional import mse, poisson_nll  # noqa: E402
from strfsolver.losses.regression import MSELoss, PoissonLoss  # noqa: E402

__all__ = ["MSELoss", "PoissonLoss", "mse", "poisson_nll", "functional"]

registry.add_docstring(sys.modules[__name__])
