"""The registry of :py:mod:`strfsolver.losses`: ``register``, ``parametrize``, ``init``, ``get_options``.

The package re-exports these helpers; its submodules import them from here, so
that they do not import the package that imports them (no import cycle).
"""

import sys

from strfsolver import registry

registry.add_helper_functions(sys.modules[__name__], name="strfsolver.losses")
