"""Old module paths of strfsolver, importable for one more release.

The package is organised in layers (``utils`` < ``data`` / ``metrics`` /
``losses`` < ``nn`` < ``prefilters`` / ``models`` < ``ridge`` < ``solver`` <
``loggers`` < ``workflow`` < ``estimator`` / ``model_selection`` < ``app``), so
modules that sat at the top level moved: ``strfsolver.checks`` is now
:py:mod:`strfsolver.utils.checks`, ``strfsolver.cli`` is
:py:mod:`strfsolver.app.cli`, and so on (:py:data:`MOVED`).

:py:func:`install` (called by ``strfsolver/__init__.py``) puts a finder on
``sys.meta_path`` that answers an import of an old path with the very module of
the new path, so ``strfsolver.checks is strfsolver.utils.checks`` and objects
pickled under an old path still load, and warns with a ``DeprecationWarning``
that names the new path. No file is left at an old path.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from typing import Dict, Optional

#: old dotted module path -> new dotted module path
MOVED: Dict[str, str] = {
    "strfsolver.checks": "strfsolver.utils.checks",
    "strfsolver.io": "strfsolver.utils.io",
    "strfsolver.random": "strfsolver.utils.seeding",
    "strfsolver.executors": "strfsolver.utils.executors",
    "strfsolver.models.layers": "strfsolver.nn.layers",
    "strfsolver.models.activations": "strfsolver.nn.activations",
    "strfsolver.models.standardize": "strfsolver.nn.standardize",
    "strfsolver.solver.loggers": "strfsolver.loggers.files",
    "strfsolver.tracking": "strfsolver.loggers.tracking",
    "strfsolver.logger_factories": "strfsolver.loggers.logger_factories",
    "strfsolver.logger_choice": "strfsolver.loggers.logger_choice",
    "strfsolver.experiment": "strfsolver.workflow.experiment",
    "strfsolver.distributed": "strfsolver.workflow.distributed",
    "strfsolver.cli": "strfsolver.app.cli",
    "strfsolver.fit_config": "strfsolver.app.fit_config",
    "strfsolver.compare_config": "strfsolver.app.compare_config",
    "strfsolver.saved_models": "strfsolver.app.saved_models",
    "strfsolver.demo": "strfsolver.app.demo",
    "strfsolver.report": "strfsolver.app.report",
    "strfsolver.solver.resume_options": "strfsolver.solver.persistence",
    "strfsolver.solver.checkpoint_schema": "strfsolver.solver.checkpoint",
    "strfsolver.solver.neuron_history": "strfsolver.solver.neurons",
    "strfsolver.solver.closure": "strfsolver.solver.update",
}


class _AliasLoader(importlib.abc.Loader):
    """Loads an old path as the module of its new path (imported if need be)."""

    def __init__(self, new_name: str):
        self.new_name = new_name
        self.own_spec = None

    def create_module(self, spec):
        warnings.warn(
            f"{spec.name} moved to {self.new_name}; import {self.new_name} instead "
            f"(the old path goes away in the next release).",
            DeprecationWarning,
            stacklevel=2,  # the frames of the import system are skipped: this names the importer
        )
        module = importlib.import_module(self.new_name)
        self.own_spec = module.__spec__
        return module

    def exec_module(self, module) -> None:
        # the module is already executed; the import system has just set its
        # __spec__ to the old path's: give it back its own
        module.__spec__ = self.own_spec


class _MovedFinder(importlib.abc.MetaPathFinder):
    """Finds the old paths of :py:data:`MOVED`, and nothing else."""

    def find_spec(self, fullname: str, path=None, target=None) -> Optional[importlib.machinery.ModuleSpec]:
        new_name = MOVED.get(fullname)
        if new_name is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(new_name))


def install() -> None:
    """Put the finder of old paths first on ``sys.meta_path`` (once)."""
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _MovedFinder())
