"""The top layer: the ``strfsolver`` command line and what only it uses.

- :py:mod:`strfsolver.app.cli`: the command line (``strfsolver fit``, ``compare``, ``predict``, ...);
- :py:mod:`strfsolver.app.fit_config`, :py:mod:`strfsolver.app.compare_config`: its config files;
- :py:mod:`strfsolver.app.saved_models`: ``predict`` and ``evaluate`` with a saved model;
- :py:mod:`strfsolver.app.demo`: the demo on the synthetic population;
- :py:mod:`strfsolver.app.report`: the per-neuron report of ``demo`` and ``fit`` (tables, summary, figure).
"""
