"""Run independent fits on any executor: a process pool, a Dask cluster, Slurm.

Fits of several seeds or of a hyperparameter grid do not talk to each other,
so they can run anywhere. Everything here takes an ``executor``: any object
with the :py:mod:`concurrent.futures` interface, i.e. a ``submit(fn, *args)``
that returns a future with a ``result()``. That covers

- ``concurrent.futures.ProcessPoolExecutor`` on one machine (use the
  ``"spawn"`` or ``"forkserver"`` context: a forked child of a process whose
  torch thread pool already ran can hang),
- ``dask.distributed.Client(...).get_executor()`` on a Dask cluster,
- ``submitit.AutoExecutor(folder)`` on a Slurm cluster,

and ``None``, which runs the work here, one piece after the other.

The work usually holds lambdas and closures (model and loader factories),
which the standard :py:mod:`pickle` refuses. Each piece of work is therefore
turned into bytes with ``cloudpickle`` in this process and submitted as
``_run_payload(payload)``: a module-level function of an installed module
and a ``bytes`` object, which every executor can ship. The worker needs
``strfsolver`` installed, nothing else from the calling script.

Results equal those of a sequential run, bit for bit on the CPU: each piece
seeds its own random generators, and runs with the same number of torch
threads as the calling process had (or ``threads``), because a different
thread count may split floating-point reductions differently. Thread-based
executors (``Client(processes=False)``) share the global random state of one
process, so the pieces of work of one process run one at a time.

See ``docs/distributed.md``.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence

from strfsolver.utils.executors import check_executor, run_calls
from strfsolver.solver import seed_runs

__all__ = ["check_executor", "run_many", "run_calls", "CONFIG_KEYS", "RENAMED_KEYS"]

#: keys a dict config of :py:func:`run_many` may have (see there)
CONFIG_KEYS = ("model_factory", "solver", "solver_kwargs", "loaders", "loader_factory", "seed", "fit_kwargs", "logdir", "logger_factory")
#: dict config keys renamed in 0.2 (old: new); the old key works for one release
RENAMED_KEYS = {"output_dir": "logdir"}


def _call_config(config: Callable[[], Any]) -> Any:
    return config()


def _config_call(index: int, config: Any) -> tuple:
    """The ``(fn, args, kwargs)`` of one config of :py:func:`run_many`, checked here, before any work runs."""
    if isinstance(config, dict):
        unknown = sorted(set(config) - set(CONFIG_KEYS) - set(RENAMED_KEYS))
        if unknown:
            raise ValueError(f"configs[{index}] has unknown key(s) {unknown}; a dict config may have {list(CONFIG_KEYS)}.")
        task = seed_runs.make_task(
            where=f"configs[{index}]",
            model_factory=config.get("model_factory"),
            solver=config.get("solver", "population"),
            solver_kwargs=config.get("solver_kwargs", {}),
            loaders=config.get("loaders"),
            loader_factory=config.get("loader_factory"),
            seed=config.get("seed", 0),
            fit_kwargs=config.get("fit_kwargs", {}),
            logdir=config.get("logdir"),
            output_dir=config.get("output_dir"),  # the old key: make_task warns
            logger_factory=config.get("logger_factory"),
        )
        return seed_runs.fit_seed, (task,), {}
    if callable(config):
        return _call_config, (config,), {}
    raise ValueError(
        f"configs[{index}] must be a callable taking no argument or a dict with keys among {list(CONFIG_KEYS)}; "
        f"got {type(config).__name__}."
    )


def run_many(configs: Sequence[Any], executor: Any = None, *, threads: Optional[int] = None) -> List[Any]:
    """Run independent fits, here or on an executor; results in the order of ``configs``.

    A config is either

    - a **callable** taking no argument (a lambda, a closure, a
      ``functools.partial``): it is called and its return value is the result;
    - a **dict** describing one seeded fit, with the keys

      - ``model_factory`` (required): ``seed -> nn.Module``;
      - ``loaders``: ``(train, valid)`` or ``(train, valid, test)`` loaders, or
        ``loader_factory``: ``seed -> (train, valid[, test])`` (one of the two);
      - ``solver``: a registered solver name (default ``"population"``);
      - ``solver_kwargs``: options of that solver (``lr``, ``max_epochs``, ...);
      - ``seed``: default 0; seeds every generator before the model is built;
      - ``fit_kwargs``: keyword arguments of ``Solver.fit`` (not ``logdir``);
      - ``logdir``: a folder for this fit's files (as one seed of ``"multi-seed"``;
        ``output_dir``, its old name, is taken for one release);
      - ``logger_factory``: ``seed -> list of loggers``;

      and its result is a :py:class:`strfsolver.solver.seed_runs.SeedRun`
      (history, final metrics, per-neuron metrics, best state), exactly as
      one seed of the ``"multi-seed"`` solver.

    Args:
        configs: The configs (a list, any length).
        executor: ``None`` (run here, one after the other) or any executor
            with the ``concurrent.futures`` interface.
        threads: Torch intra-op threads of each fit; ``None``: the calling
            process' current count, which makes executor results equal to
            sequential ones bit for bit.

    Returns:
        One result per config, in order.

    Raises:
        ValueError: for a config of another kind, a dict config with an
            unknown key or bad values, or an executor without ``submit``.
    """
    check_executor(executor)
    if isinstance(configs, (dict, str, bytes)) or not isinstance(configs, (Sequence, tuple)):
        if callable(configs) or isinstance(configs, dict):
            raise ValueError(f"configs must be a list of configs, got a single {type(configs).__name__}; wrap it in a list.")
        try:
            configs = list(configs)
        except TypeError:
            raise ValueError(f"configs must be a list of callables or dicts, got {type(configs).__name__}.") from None
    calls = [_config_call(i, config) for i, config in enumerate(configs)]
    return run_calls(calls, executor=executor, threads=threads)
