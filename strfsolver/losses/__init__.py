"""Training losses, registered by name: ``strfsolver.losses.init("mse")``.

Every loss takes ``pred (B, N, 1, T)`` and ``responses (B, N, R, T)``, masks
NaN positions out of its value and its gradient and reduces over neurons
(CONVENTIONS.md §3).
"""

import sys

from strfsolver import registry

registry.add_helper_functions(sys.modules[__name__])

registry.add_docstring(sys.modules[__name__])
