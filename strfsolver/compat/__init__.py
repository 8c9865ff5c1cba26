"""Other libraries' calls, unchanged, over strfsolver's registered solvers.

- :py:mod:`strfsolver.compat.deepstrf`: deepSTRF's ``Fitter`` and
  ``fit_multi_seed`` with deepSTRF's signatures, defaults and return formats.
  ``from strfsolver.compat.deepstrf import Fitter`` replaces
  ``from deepSTRF.training import Fitter`` and the script runs as it was.

Nothing here trains: each call builds a registered solver
(``strfsolver.solver.init("population" | "per-cell-best", ...)``), runs it
and translates the arguments and the results. The hook names of deepSTRF,
CEBRA and flyvis on strfsolver's own solvers are
:py:class:`strfsolver.solver.HookAliases`; their registry names are aliases
(``strfsolver.models.get_aliases()``).
"""

from strfsolver.compat import deepstrf

__all__ = ["deepstrf"]
