"""Whole fits, above the solver and the loggers: one experiment, or many on any executor.

- :py:mod:`strfsolver.workflow.experiment`: one description of a fit
  (:py:class:`~strfsolver.workflow.experiment.ExperimentSpec`), shared by the
  estimator, ``strfsolver fit`` and the demo;
- :py:mod:`strfsolver.workflow.distributed`: independent fits on any
  ``concurrent.futures`` executor (:py:func:`strfsolver.run_many`).
"""
