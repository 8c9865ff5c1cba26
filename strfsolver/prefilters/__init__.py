"""Auditory prefilters applied to spectrograms before a model's core, by name.

``strfsolver.prefilters.init("identity", n_freqs=32, dt_ms=5.0)``
"""

import sys

from strfsolver import registry

registry.add_helper_functions(sys.modules[__name__])

registry.add_docstring(sys.modules[__name__])
