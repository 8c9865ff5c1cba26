"""Solvers: the training loops that fit a model to data, registered by name.

``strfsolver.solver.init("population", model=model)``
"""

import sys

from strfsolver import registry

registry.add_helper_functions(sys.modules[__name__])

registry.add_docstring(sys.modules[__name__])
