"""Encoding models, registered by name.

``strfsolver.models.init("linear", n_freqs=F, n_lags=L, n_neurons=N)``
"""

import sys

from strfsolver import registry

registry.add_helper_functions(sys.modules[__name__])

registry.add_docstring(sys.modules[__name__])
