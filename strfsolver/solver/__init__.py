"""Solvers: the training loops that fit a model to data, registered by name.

``strfsolver.solver.init("population", model=model).fit(train_loader, valid_loader)``

- :py:class:`Solver`: the abstract base, configuration plus the declared
  hooks (:py:data:`~strfsolver.solver.base.HOOKS`); a custom solver subclasses
  it and writes :py:meth:`Solver._inference`. ``fit`` runs a
  :py:class:`FitLoop` (early stopping, best state, checkpoints and resume,
  schedules, divergence checks, logging) and returns the solver.
- :py:class:`HookAliases`: opt-in mixin for the hook names of deepSTRF, CEBRA and flyvis.
- ``"population"`` (:py:class:`PopulationSolver`): every neuron jointly;
  ``"single-cell"`` (:py:class:`SingleCellSolver`): N independent one-neuron
  fits trained at once; ``"per-cell-best"`` (:py:class:`PerCellBestSolver`):
  joint training, each neuron's readout from its own best epoch;
  ``"multi-seed"`` (:py:class:`MultiSeedSolver`): another solver under
  several seeds, on any ``concurrent.futures`` executor; ``"multi-session"``
  (:py:class:`MultiSessionSolver`): a shared core and one readout per
  recording session, trained on all sessions at once or, for a new session,
  its readout alone; ``"ridge"``
  (:py:class:`RidgeSolver`): linear STRFs in closed form, each neuron's
  penalty chosen by cross-validation over stimuli.
- :py:mod:`~strfsolver.solver.schedules`: hyperparameter schedules over
  epochs or steps; :py:mod:`~strfsolver.solver.flyvis_schedules`: flyvis's
  schedule functions under flyvis's names, registered there.
- :py:mod:`~strfsolver.solver.penalties`: regularization terms added to the loss.
- :py:mod:`~strfsolver.loggers.files`: file loggers for the epoch dicts.
- :py:mod:`~strfsolver.solver.checkpoint`: the checkpoint files.
- :py:class:`TrainingDivergedError`: raised on a NaN or infinite loss.
- :py:class:`LogdirInUseError`: raised when another running fit holds the
  ``logdir`` (:py:mod:`~strfsolver.solver.logdir`).
"""

import sys

from strfsolver.utils.checks import short_repr
from strfsolver import registry
from strfsolver.solver._registry import _registry_state, alias, get_aliases, get_options, init, parametrize, register  # noqa: F401

registry.add_helper_functions(sys.modules[__name__])

from strfsolver.solver.errors import TrainingDivergedError  # noqa: E402
from strfsolver.solver.logdir import LogdirInUseError  # noqa: E402
from strfsolver.solver import schedules  # noqa: E402
from strfsolver.solver import flyvis_schedules  # noqa: E402  (registers flyvis's schedule functions in schedules)
registry.add_docstring(schedules)  # the registered names, flyvis's included
from strfsolver.solver import penalties  # noqa: E402
from strfsolver.solver import checkpoint  # noqa: E402
from strfsolver.solver.state import TrainingState, NeuronTrainingState  # noqa: E402
from strfsolver.solver import loop  # noqa: E402
from strfsolver.solver.fit_loop import FitLoop  # noqa: E402
from strfsolver.solver.compat import HookAliases  # noqa: E402
from strfsolver.solver.base import Solver  # noqa: E402
from strfsolver.solver.population import PopulationSolver  # noqa: E402
from strfsolver.solver.single_cell import NeuronStack, SingleCellSolver  # noqa: E402
from strfsolver.solver.per_cell_best import PerCellBestSolver  # noqa: E402
from strfsolver.solver.ridge import RidgeSolver  # noqa: E402
from strfsolver.solver.multi_seed import MultiSeedSolver, MultiSeedResult  # noqa: E402
from strfsolver.solver.multi_session import MultiSessionSolver  # noqa: E402

__all__ = [
    "Solver",
    "TrainingState",
    "NeuronTrainingState",
    "loop",
    "FitLoop",
    "HookAliases",
    "PopulationSolver",
    "SingleCellSolver",
    "NeuronStack",
    "PerCellBestSolver",
    "RidgeSolver",
    "MultiSeedSolver",
    "MultiSeedResult",
    "MultiSessionSolver",
    "TrainingDivergedError",
    "LogdirInUseError",
    "schedules",
    "flyvis_schedules",
    "penalties",
    "checkpoint",
]

# CEBRA's and flyvis's solver names: their objectives (a contrastive embedding, several tasks) are not
# response prediction, so none is an alias; the note names what does the same job here
_JOINT = "the solver that fits one recording's neurons jointly is 'population' ('single-cell' fits each neuron alone)."
for _foreign in ("single-session", "single-session-aux", "single-session-hybrid", "single-session-full"):
    alias(_foreign, None, source="CEBRA", note=f"a contrastive embedding of one session; {_JOINT}")
# CEBRA's "multi-session" shares one embedding across sessions; strfsolver's own "multi-session" (registered
# above) shares one encoding core across recordings: the same idea for response prediction, so no note there
alias("multi-session-aux", None, source="CEBRA", note="a contrastive embedding shared across sessions, with auxiliary "
      f"variables; 'multi-session' fits one encoding core shared by several recordings, with a readout per session; {_JOINT}")
alias("MultiTaskSolver", None, source="flyvis", note=f"one network trained on several tasks; {_JOINT} "
      "Its checkpoints, recover and schedules are every solver's here.")

registry.add_docstring(sys.modules[__name__])


# the file loggers moved to strfsolver.loggers, a layer above the solver, which
# the solver does not import; the old names still work for one release
_MOVED_TO_LOGGERS = {
    "loggers": ("strfsolver.loggers.files", None),
    "CSVLogger": ("strfsolver.loggers.files", "CSVLogger"),
    "JSONLinesLogger": ("strfsolver.loggers.files", "JSONLinesLogger"),
}


def __getattr__(name):
    if name not in _MOVED_TO_LOGGERS:
        raise AttributeError(f"module {short_repr(__name__)} has no attribute {short_repr(name)}")
    import importlib
    import warnings

    module_name, attribute = _MOVED_TO_LOGGERS[name]
    new = module_name if attribute is None else f"{module_name}.{attribute}"
    warnings.warn(
        f"strfsolver.solver.{name} moved to {new}; import it from there (the old name goes away in the next release).",
        DeprecationWarning,
        stacklevel=2,
    )
    module = importlib.import_module(module_name)
    return module if attribute is None else getattr(module, attribute)
