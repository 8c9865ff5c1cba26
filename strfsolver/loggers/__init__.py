"""Loggers: where the per-epoch dictionaries of a fit go, besides the history.

The solver only calls the loggers it is given (``solver.init(...,
loggers=[...])``), so this package sits above :py:mod:`strfsolver.solver`:

- :py:mod:`strfsolver.loggers.protocol`: what a logger provides (:py:class:`Logger`);
- :py:mod:`strfsolver.loggers.files`: CSV and JSON-lines files;
- :py:mod:`strfsolver.loggers.run_config`: a run's config and folder name;
- :py:mod:`strfsolver.loggers.tracking`: TensorBoard and Weights & Biases;
- :py:mod:`strfsolver.loggers.logger_factories`: one TensorBoard folder or W&B run per seed;
- :py:mod:`strfsolver.loggers.logger_choice`: loggers named in a config (``"csv"``, ``"wandb"``, ...).
"""

from strfsolver.loggers.protocol import Logger
from strfsolver.loggers.files import CSVLogger, JSONLinesLogger, history_to_csv
from strfsolver.loggers.run_config import auto_config, flatten_config, slug_from_config
from strfsolver.loggers.tracking import TensorBoardLogger, WandbLogger

__all__ = [
    "Logger",
    "CSVLogger",
    "JSONLinesLogger",
    "history_to_csv",
    "auto_config",
    "flatten_config",
    "slug_from_config",
    "TensorBoardLogger",
    "WandbLogger",
]
