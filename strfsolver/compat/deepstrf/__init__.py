"""deepSTRF's training calls: ``from strfsolver.compat.deepstrf import Fitter, fit_multi_seed``.

Same signatures, defaults and return formats as ``deepSTRF.training``; the
training is done by strfsolver's registered solvers
(:py:mod:`~strfsolver.compat.deepstrf.fitter`,
:py:mod:`~strfsolver.compat.deepstrf.multi_seed`).
"""

from strfsolver.compat.deepstrf.fitter import Fitter, mse_loss, print_epoch
from strfsolver.compat.deepstrf.multi_seed import fit_multi_seed

__all__ = ["Fitter", "fit_multi_seed", "mse_loss", "print_epoch"]
