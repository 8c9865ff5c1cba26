"""The lowest layer: helpers every other part of strfsolver may use, and that use none of it.

- :py:mod:`strfsolver.utils.checks`: argument checks with clear messages, JSON conversion;
- :py:mod:`strfsolver.utils.io`: safe, atomic files (tensors, state dicts, JSON);
- :py:mod:`strfsolver.utils.seeding`: seeding every random number generator;
- :py:mod:`strfsolver.utils.executors`: running calls on any ``concurrent.futures`` executor;
- :py:mod:`strfsolver.utils.deprecation`: the old spelling of a renamed setting, for one release.
"""
