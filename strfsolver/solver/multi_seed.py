"""The ``"multi-seed"`` solver: one fit per seed, summarised across seeds.

A number reported from one training run mixes the model with the luck of
its initialisation and of its batch order. ``"multi-seed"`` wraps another
registered solver and runs it once per seed, on the same split, then
aggregates every neuron's validation and test metrics across the seeds::

    ms = strfsolver.solver.init(
        "multi-seed", solver="population",
        model_factory=lambda seed: strfsolver.models.init("linear", n_freqs=F, n_lags=L, n_neurons=N),
        seeds=[0, 1, 2], lr=1e-2, max_epochs=50)
    result = ms.fit(train_loader, valid_loader, test_loader).result_
    result.summary      # per split, metric and neuron: mean and std across seeds
    result.best_seed    # by the inner solver's monitor, on each seed's final state

The seeds are independent, so they can run on any executor
(:py:mod:`strfsolver.workflow.distributed`): a process pool, a Dask or Slurm cluster.
The results are the same as those of a sequential run.

What one seed does, and the result the seeds add up to, are in
:py:mod:`strfsolver.solver.seed_runs`; its public names are re-exported here.
"""

from __future__ import annotations

import numbers
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from literate_dataclasses import dataclass, field
from torch import nn

from strfsolver.utils import executors as _executors
from strfsolver.utils import io
from strfsolver.utils import seeding as _random
from strfsolver.solver._registry import register
from strfsolver.solver.options import refuse_unused
from strfsolver.utils.checks import check_seed, short_repr, to_json
from strfsolver.utils.deprecation import renamed
from strfsolver.solver.seed_runs import (
    SEED_FOLDER,
    MultiSeedResult,
    SeedRun,
    _check_solver_name,
    _pick_best,
    _tables,
    derive_shuffle_seed,
    fit_seed,
    make_task,
)

__all__ = ["MultiSeedSolver", "MultiSeedResult", "SeedRun", "fit_seed", "make_task", "derive_shuffle_seed", "SEED_FOLDER"]

SUMMARY_JSON, SUMMARY_CSV = "summary.json", "summary.csv"


def _own_init_dataclass(cls):
    # the fields document the options; __init__ is written out because it
    # also takes the inner solver's keywords (**solver_kwargs)
    return dataclass(cls, init=False, eq=False)


@register("multi-seed")
@_own_init_dataclass
class MultiSeedSolver:
    """Run another registered solver under several seeds and summarise across them.

    Built with ``strfsolver.solver.init("multi-seed", solver="population",
    model_factory=..., seeds=[0, 1, 2], **solver_kwargs)``; every keyword
    that is not one of the fields below goes to the inner solver (``lr``,
    ``max_epochs``, ``monitor``, ...). Like every solver, :py:meth:`fit`
    returns the solver; the :py:class:`MultiSeedResult` is its fitted
    attribute ``result_``, and :py:meth:`transform`, :py:meth:`validation`
    and :py:attr:`model` serve the best seed's fitted model.

    With ``logdir``, the files are::

        logdir/
            summary.json, summary.csv          one row per split, metric and neuron
            seed_<seed>/
                history.json                   the epoch dicts
                final.json                     best epoch, monitored value, per-split means
                final_neurons.safetensors      "<split>/<metric>": (N,) per-neuron values
                checkpoint_best.safetensors    the inner solver's checkpoints
                checkpoint_last.safetensors

    all written atomically (:py:mod:`strfsolver.utils.io`).

    Args:
        (fields)
    """

    solver: str = field(default="population", doc="Registered name of the solver to repeat.")
    model_factory: Optional[Callable[[int], nn.Module]] = field(
        default=None, doc="``seed -> nn.Module``, called after the seed is set; a lambda or closure is fine."
    )
    seeds: Optional[Sequence[int]] = field(default=None, doc="The seeds (distinct integers >= 0). Default: ``range(n_seeds)``.")
    n_seeds: Optional[int] = field(default=None, doc="Use seeds ``0 .. n_seeds - 1``; not together with ``seeds``. Default 5 (deepSTRF's) when neither is given.")
    executor: Any = field(
        default=None,
        doc="``None`` (seeds run here, one after the other) or any executor with the ``concurrent.futures`` "
        "interface: ``ProcessPoolExecutor``, dask's ``client.get_executor()``, a submitit executor.",
    )
    logdir: Optional[Union[str, os.PathLike]] = field(
        default=None, doc="Folder for the files (see above); ``None`` writes nothing. Its old name ``output_dir`` "
        "is taken for one release (with a ``DeprecationWarning``)."
    )
    threads: Optional[int] = field(
        default=None,
        doc="Torch threads of each seed's fit; ``None``: those of the calling process, which keeps executor "
        "results bit-identical to sequential ones on the CPU.",
    )
    logger_factory: Optional[Callable[[int], Any]] = field(
        default=None, doc="``seed -> list of loggers`` for the inner solver (e.g. one TensorBoard folder per seed)."
    )
    reseed_loaders: bool = field(
        default=True, doc="Give each seed's copy of the training loader its own shuffle seed (:py:func:`derive_shuffle_seed`)."
    )
    set_seed_strict: bool = field(
        default=False,
        doc="Seed each fit with ``set_random_seed(seed, strict=True)``: torch's deterministic algorithms "
        "(slower on a GPU; an operation without a deterministic version raises), for the fit only.",
    )
    solver_kwargs: Dict[str, Any] = field(default_factory=dict, doc="Options of the inner solver (the extra keywords).")

    def __init__(
        self,
        solver: str = "population",
        model_factory: Optional[Callable[[int], nn.Module]] = None,
        seeds: Optional[Sequence[int]] = None,
        n_seeds: Optional[int] = None,
        executor: Any = None,
        logdir: Optional[Union[str, os.PathLike]] = None,
        threads: Optional[int] = None,
        logger_factory: Optional[Callable[[int], Any]] = None,
        reseed_loaders: bool = True,
        set_seed_strict: bool = False,
        *,
        output_dir: Optional[Union[str, os.PathLike]] = None,
        **solver_kwargs: Any,
    ):
        self.solver = solver
        self.model_factory = model_factory
        self.seeds = seeds
        self.n_seeds = n_seeds
        self.executor = executor
        self.logdir = renamed(logdir, output_dir, "logdir", "output_dir", where="the multi-seed solver")
        self.threads = threads
        self.logger_factory = logger_factory
        self.reseed_loaders = reseed_loaders
        self.set_seed_strict = set_seed_strict
        self.solver_kwargs = dict(solver_kwargs)
        self.result_: Optional[MultiSeedResult] = None
        self._check()

    def _resolved_seeds(self) -> List[int]:
        if self.seeds is not None and self.n_seeds is not None:
            raise ValueError(f"give seeds or n_seeds, not both; got seeds={short_repr(self.seeds)} and n_seeds={short_repr(self.n_seeds)}.")
        if self.seeds is None:
            n = 5 if self.n_seeds is None else self.n_seeds
            if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
                raise ValueError(f"n_seeds must be an integer >= 1, got {short_repr(self.n_seeds)}.")
            return list(range(int(n)))
        if isinstance(self.seeds, (str, bytes)) or not hasattr(self.seeds, "__iter__"):
            raise ValueError(f"seeds must be a list of integers >= 0, got {short_repr(self.seeds)}.")
        seeds = list(self.seeds)
        if not seeds:
            raise ValueError("seeds is empty; give at least one seed.")
        seeds = [check_seed(s, f"seeds[{i}]") for i, s in enumerate(seeds)]
        repeated = sorted({s for s in seeds if seeds.count(s) > 1})
        if repeated:
            raise ValueError(f"seeds must be distinct; {repeated} appear(s) more than once in {seeds}.")
        return seeds

    def _check(self) -> None:
        #: the seeds that run, from ``seeds`` or ``n_seeds``
        self.seeds_ = self._resolved_seeds()
        if not callable(self.model_factory):
            raise ValueError(f"model_factory must be a callable seed -> nn.Module, got {type(self.model_factory).__name__}.")
        # options the inner solver does not use are refused now, not in the first worker
        refuse_unused(_check_solver_name(self.solver), self.solver_kwargs)
        _executors.check_executor(self.executor)
        _executors.check_threads(self.threads)
        if not isinstance(self.reseed_loaders, bool):
            raise ValueError(f"reseed_loaders must be True or False, got {short_repr(self.reseed_loaders)}.")
        if not isinstance(self.set_seed_strict, bool):
            raise ValueError(f"set_seed_strict must be True or False, got {short_repr(self.set_seed_strict)}.")

    def fit(
        self,
        train_loader: Any = None,
        valid_loader: Any = None,
        test_loader: Any = None,
        *,
        loader_factory: Optional[Callable[[int], Any]] = None,
        **fit_kwargs: Any,
    ) -> "MultiSeedSolver":
        """Fit every seed (here or on the executor) and summarise.

        Args:
            train_loader: Training loader, shared by every seed (each seed
                uses a copy; see ``reseed_loaders``).
            valid_loader: Validation loader (monitor and per-neuron metrics).
            test_loader: Optional test loader, evaluated on the best state.
            loader_factory: Instead of the loaders: ``seed -> (train, valid)``
                or ``(train, valid, test)``, called in the worker (so large data
                need not travel); it must give every seed the same split.
            **fit_kwargs: Passed to the inner ``Solver.fit`` (``max_epochs``,
                ``valid_frequency``, ``save_frequency``, ``resume``, ...);
                ``logdir`` is set per seed from the solver's ``logdir``.

        Returns:
            The solver; the results are in :py:attr:`result_` (a
            :py:class:`MultiSeedResult`).

        Raises:
            ValueError: for loaders and ``loader_factory`` together (or neither),
                a factory returning the wrong kind of object, and the inner
                solver's own errors.
        """
        self._check()
        given = [x for x in (train_loader, valid_loader, test_loader) if x is not None]
        if given and loader_factory is not None:
            raise ValueError("give either the loaders or loader_factory, not both.")
        if not given and loader_factory is None:
            raise ValueError("fit needs train_loader and valid_loader (and optionally test_loader) or loader_factory=seed -> (train, valid[, test]).")
        loaders = None if loader_factory is not None else (train_loader, valid_loader, test_loader)
        out = None if self.logdir is None else Path(self.logdir)
        tasks = [
            make_task(
                where=f"multi-seed (seed {seed})",
                model_factory=self.model_factory,
                seed=seed,
                solver=self.solver,
                solver_kwargs=self.solver_kwargs,
                loaders=loaders,
                loader_factory=loader_factory,
                fit_kwargs=fit_kwargs,
                logdir=None if out is None else out / SEED_FOLDER.format(seed=seed),
                logger_factory=self.logger_factory,
                reseed_loaders=self.reseed_loaders,
                strict=self.set_seed_strict,
            )
            for seed in self.seeds_
        ]
        if self.executor is None:
            seen: Dict[int, int] = {}  # only a shared process can hand the same module out twice
            runs = _executors.run_calls([(fit_seed, (task, seen), {}) for task in tasks], threads=self.threads)
        else:
            runs = _executors.run_calls([(fit_seed, (task,), {}) for task in tasks], executor=self.executor, threads=self.threads)

        per_seed, summary = _tables(runs)
        best = _pick_best(runs, runs[0].mode)
        result = MultiSeedResult(
            seeds=list(self.seeds_),
            runs=list(runs),
            per_seed=per_seed,
            summary=summary,
            best_seed=best.seed,
            best_score=best.final_score,
            monitor=best.monitor,
            mode=best.mode,
            logdir=out,
        )
        if out is not None:
            self._write_summary(out, result)
        self.result_ = result
        self._best_solver = None
        return self

    @property
    def best_solver_(self) -> Any:
        """The inner solver of the best seed, holding its best state (built on first use).

        Predictions, validation and saving after a multi-seed fit go through
        it, so the multi-seed solver serves the same calls as any other.
        """
        if self.result_ is None:
            raise ValueError("the multi-seed solver is not fitted yet; call fit() first.")
        if getattr(self, "_best_solver", None) is None:
            from strfsolver.solver import _registry as registry_module

            with _random.seeded(self.result_.best_seed):
                model = self.model_factory(self.result_.best_seed)
            options = {k: v for k, v in self.solver_kwargs.items() if k not in ("loggers",)}
            options.pop("tqdm_on", None)
            options["progress"] = False
            inner = registry_module.init(self.solver, model=model, **options)
            inner.model.load_state_dict(self.result_.best_state_dict)
            self._best_solver = inner
        return self._best_solver

    @property
    def model(self) -> nn.Module:
        """The best seed's fitted model (see :py:attr:`best_solver_`)."""
        return self.best_solver_.model

    @property
    def log(self) -> List[Dict[str, Any]]:
        """The best seed's epoch dicts."""
        return self.result_.best_run.history if self.result_ is not None else []

    def transform(self, stims: Any, batch_size: int = 32) -> Any:
        """Predictions of the best seed's model (:py:meth:`Solver.transform`)."""
        return self.best_solver_.transform(stims, batch_size=batch_size)

    def validation(self, loader: Any) -> Dict[str, Any]:
        """Loss and per-neuron metrics of the best seed's model on a loader (:py:meth:`Solver.validation`)."""
        return self.best_solver_.validation(loader)

    def state_dict(self) -> Dict[str, Any]:
        """The fit's outcome, to put into another multi-seed solver of the same inner solver:
        ``{"solver": "MultiSeedSolver", "inner": <inner solver name>, "result": MultiSeedResult or None}``.
        It lives in memory (the result holds tables and per-seed states, not a file format);
        each seed's own checkpoints are the files, in ``logdir``."""
        return {"solver": type(self).__name__, "inner": self.solver, "result": self.result_}

    def load_state_dict(self, state: Dict[str, Any], strict: bool = True) -> None:
        """Restore what :py:meth:`state_dict` returned.

        Raises:
            ValueError: with ``strict``, for a state of another inner solver or without its result.
        """
        if strict and (state.get("inner") != self.solver or "result" not in state):
            raise ValueError(
                f"this is the state of a multi-seed fit of {short_repr(state.get('inner'))} (keys {sorted(state)}); "
                f"this solver fits {short_repr(self.solver)}."
            )
        self.result_ = state.get("result", self.result_)
        self._best_solver = None

    @property
    def output_dir(self) -> Optional[Union[str, os.PathLike]]:
        """Old name of :py:attr:`logdir`, for one release."""
        return renamed(None, self.logdir, "logdir", "output_dir", where="the multi-seed solver")

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state["_best_solver"] = None  # rebuilt on demand, never pickled
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        if "output_dir" in state:  # pickled by strfsolver 0.1
            state["logdir"] = state.pop("output_dir")
        self.__dict__.update(state)

    def _write_summary(self, out: Path, result: MultiSeedResult) -> None:
        io.atomic_write_text(out / SUMMARY_CSV, result.summary.to_csv(index=False))
        io.atomic_write_json(
            out / SUMMARY_JSON,
            to_json(
                {
                    "solver": self.solver,
                    "seeds": result.seeds,
                    "monitor": result.monitor,
                    "mode": result.mode,
                    "best_seed": result.best_seed,
                    "best_score": result.best_score,
                    "scores": {str(seed): score for seed, score in result.scores.items()},
                    "final_scores": {str(seed): score for seed, score in result.final_scores.items()},
                    "seed_folders": {str(seed): SEED_FOLDER.format(seed=seed) for seed in result.seeds},
                    "rows": result.summary.to_dict(orient="records"),
                }
            ),
        )
