"""Run independent calls on any ``concurrent.futures`` executor, with the results of a sequential run.

The generic machinery under :py:func:`strfsolver.workflow.distributed.run_many` and
the ``"multi-seed"`` solver: :py:func:`run_calls` runs ``(fn, args, kwargs)``
triples here or on an executor (a process pool, a Dask or Slurm cluster),
shipping lambdas and closures with ``cloudpickle``, with a fixed torch
thread count and the caller's random state left as it was. It knows nothing
of solvers or seeds; see :py:mod:`strfsolver.workflow.distributed` for the whole story.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, List, Optional, Sequence

import torch

from strfsolver.utils import seeding as _random
from strfsolver.utils.checks import check_count
from strfsolver.utils.checks import short_repr

__all__ = ["check_executor", "check_threads", "run_calls"]

# one piece of work at a time per process: the global RNG and the torch thread
# count are process-wide, so two threads of one process would disturb each
# other's seeding; re-entrant so that a piece of work may call run_many itself
_PROCESS_LOCK = threading.RLock()


def check_executor(executor: Any) -> None:
    """Refuse anything that does not look like a ``concurrent.futures`` executor.

    Args:
        executor: ``None`` or an object with a callable ``submit``.

    Raises:
        ValueError: naming the type that came, when ``submit`` is missing.
    """
    if executor is None:
        return
    if not callable(getattr(executor, "submit", None)):
        raise ValueError(
            f"executor must have the concurrent.futures interface (a submit(fn, *args) method returning futures), "
            f"e.g. a ProcessPoolExecutor, dask's client.get_executor() or a submitit executor; got "
            f"{type(executor).__name__} ({short_repr(executor, 80)}), which has no submit method."
        )


def check_threads(threads: Any) -> Optional[int]:
    """``threads`` as an ``int`` (>= 1), or ``None`` (the calling process' torch thread count)."""
    return check_count(threads, "threads", 1, allow_none=True)


def _invoke(fn: Callable, args: tuple, kwargs: dict, threads: Optional[int]) -> Any:
    """Run ``fn`` with ``threads`` torch threads, leaving the process as it found it."""
    with _PROCESS_LOCK:
        previous_threads = torch.get_num_threads()
        # a sequential run must not change the caller's random streams, and a
        # worker reused for the next piece must not carry this one's state
        rng = _random.get_rng_state()
        try:
            if threads is not None and threads != previous_threads:
                torch.set_num_threads(threads)
            return fn(*args, **kwargs)
        finally:
            _random.set_rng_state(rng)
            if torch.get_num_threads() != previous_threads:
                torch.set_num_threads(previous_threads)


def _cloudpickle():
    try:
        import cloudpickle
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "running work on an executor needs the cloudpickle package (it ships lambdas and closures to the "
            "workers): pip install strfsolver[distributed]"
        ) from error
    return cloudpickle


def _run_payload(payload: bytes) -> Any:
    """The function every executor runs: unpack ``(fn, args, kwargs, threads)`` and call it.

    Module-level, so that plain pickle (a ``ProcessPoolExecutor``) ships it by name.
    """
    fn, args, kwargs, threads = _cloudpickle().loads(payload)
    return _invoke(fn, args, kwargs, threads)


def run_calls(
    calls: Sequence[tuple],
    executor: Any = None,
    threads: Optional[int] = None,
    on_result: Optional[Callable[[int, Any], Any]] = None,
) -> List[Any]:
    """Run ``fn(*args, **kwargs)`` for each ``(fn, args, kwargs)``; results in order.

    The building block of :py:func:`strfsolver.workflow.distributed.run_many` and of the
    ``"multi-seed"`` solver.

    Args:
        calls: ``(fn, args, kwargs)`` triples; ``fn`` may be a lambda or a closure.
        executor: ``None`` (run here, in order) or a ``concurrent.futures``-like executor.
        threads: Torch intra-op threads for each call; ``None``: this process' current count.
        on_result: Called as ``on_result(index, result)`` for each result as it
            is collected, in order (e.g. to store finished work before the
            rest is done).

    Returns:
        The results, in the order of ``calls``.

    Raises:
        ValueError: for an executor without ``submit`` or a bad ``threads``.
        Exception: the first failing call's exception (in the order of
            ``calls``); the calls not started yet are cancelled.
    """
    check_executor(executor)
    threads = check_threads(threads)
    if threads is None:
        threads = torch.get_num_threads()
    calls = list(calls)
    if executor is None:
        results = []
        for index, (fn, args, kwargs) in enumerate(calls):
            results.append(_invoke(fn, tuple(args), dict(kwargs), threads))
            if on_result is not None:
                on_result(index, results[-1])
        return results
    cloudpickle = _cloudpickle()
    futures = []
    try:
        for fn, args, kwargs in calls:
            payload = cloudpickle.dumps((fn, tuple(args), dict(kwargs), threads))
            futures.append(executor.submit(_run_payload, payload))
        results = []
        for index, future in enumerate(futures):
            results.append(future.result())
            if on_result is not None:
                on_result(index, results[-1])
        return results
    except BaseException:
        for future in futures:
            cancel = getattr(future, "cancel", None)
            if callable(cancel):
                cancel()
        raise
