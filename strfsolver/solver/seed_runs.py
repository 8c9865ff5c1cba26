"""One seed's fit, and what the fits of several seeds add up to.

The machinery under the ``"multi-seed"`` solver
(:py:class:`~strfsolver.solver.multi_seed.MultiSeedSolver`) and
:py:func:`strfsolver.run_many`: :py:func:`make_task` checks the arguments of
one seeded fit in the calling process, :py:func:`fit_seed` runs it (here or
in a worker) and returns a :py:class:`SeedRun`, and a
:py:class:`MultiSeedResult` gathers the runs of every seed. Nothing here
imports :py:mod:`strfsolver.workflow.distributed`, which calls into it.

What one seed does (:py:func:`fit_seed`), in this order:

1. build the loaders: copies of the given loaders (a loader with a
   ``state_dict()`` holding a ``"seed"``, such as
   :py:class:`~strfsolver.data.PaddedLoader`, gets the training shuffle seed
   :py:func:`derive_shuffle_seed` ``(loader seed, run seed)``), or
   ``loader_factory(seed)``;
2. :py:func:`strfsolver.set_random_seed` ``(seed)``, then
   ``model_factory(seed)``: the initialisation depends on the seed only;
3. build the inner solver and fit it (with ``logdir`` the seed's folder when
   there is a ``logdir``);
4. evaluate the best state on the validation and test loaders, per neuron.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import math
import os
import time
import weakref
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from torch import Tensor, nn

from strfsolver.utils import io
from strfsolver.utils import seeding as _random
from strfsolver.utils.checks import check_seed, short_repr, to_json
from strfsolver.utils.deprecation import renamed

__all__ = ["MultiSeedResult", "SeedRun", "fit_seed", "make_task", "derive_shuffle_seed", "SEED_FOLDER"]

#: name of a seed's folder inside the multi-seed solver's ``logdir``
SEED_FOLDER = "seed_{seed}"
#: the inner solver's files in a seed's folder; the checkpoints are ``Solver.fit``'s own
HISTORY_FILE, FINAL_FILE, NEURONS_FILE = "history.json", "final.json", "final_neurons.safetensors"
SPLITS = ("valid", "test")
_FIT_KEYS_REFUSED = ("logdir",)


def derive_shuffle_seed(loader_seed: int, seed: int) -> int:
    """The training loader's shuffle seed in the run of ``seed``.

    Mixes both numbers through :py:class:`numpy.random.SeedSequence`, so two
    runs never share a shuffle stream by an arithmetic coincidence, and the
    same pair always gives the same seed (on every machine).

    Args:
        loader_seed: The seed the loader was built with.
        seed: The run's seed.

    Returns:
        A seed in ``[0, 2**32)``.
    """
    return int(np.random.SeedSequence([int(loader_seed), int(seed), 0x5EED]).generate_state(1, dtype=np.uint32)[0])


def _reseeded(loader: Any, seed: Optional[int]) -> Any:
    """A private copy of ``loader``; with ``seed``, its shuffle seed derived from the run's seed.

    Loaders without a ``state_dict`` holding ``"seed"`` (a torch ``DataLoader``)
    are used as they are: their shuffle draws from the global generator,
    which the run's seed already sets.
    """
    if loader is None:
        return None
    state_dict = getattr(loader, "state_dict", None)
    load_state_dict = getattr(loader, "load_state_dict", None)
    if not (callable(state_dict) and callable(load_state_dict)):
        return loader
    state = state_dict()
    if not isinstance(state, dict) or "seed" not in state:
        return loader
    # shallow: the padded data tensors are shared, only the counters are the copy's own
    private = copy.copy(loader)
    if seed is not None:
        private.load_state_dict({**state, "seed": derive_shuffle_seed(state["seed"], seed)})
    return private


def _check_loaders(loaders: Any, where: str) -> Tuple[Any, Any, Any]:
    expected = "a tuple (train_loader, valid_loader) or (train_loader, valid_loader, test_loader)"
    if not isinstance(loaders, (tuple, list)) or len(loaders) not in (2, 3):
        got = f"a {type(loaders).__name__} of length {len(loaders)}" if isinstance(loaders, (tuple, list)) else f"{type(loaders).__name__} ({loaders!r:.60})"
        raise ValueError(f"{where} returned {got}; expected {expected}.")
    loaders = tuple(loaders) + (None,) * (3 - len(loaders))
    for name, loader in zip(("train_loader", "valid_loader", "test_loader"), loaders):
        if loader is None and name == "train_loader":
            raise ValueError(f"{where} gave no train_loader (None); expected {expected}.")
        if loader is not None and (isinstance(loader, (str, bytes, dict)) or not hasattr(loader, "__iter__")):
            raise ValueError(f"{where} gave a {type(loader).__name__} as {name}; expected an iterable of batch dicts (e.g. strfsolver.data.make_loader).")
    return loaders


def _check_solver_name(name: Any) -> type:
    """The class registered as ``name``; the registry's own ValueError for an unknown name."""
    from strfsolver.solver import _registry as registry_module

    if not isinstance(name, str):
        raise ValueError(f"solver must be the registered name of a solver (a string), got {type(name).__name__}.")
    if name == "multi-seed":
        raise ValueError("the multi-seed solver cannot wrap itself; name the solver to repeat, e.g. solver='population'.")
    entry = registry_module._registry_state.entries.get(name)
    if entry is None:
        registry_module.init(name)  # raises the registry's ValueError with the options
    return entry.cls


def _has_field(cls: type, name: str) -> bool:
    return dataclasses.is_dataclass(cls) and any(f.name == name for f in dataclasses.fields(cls))


@dataclasses.dataclass
class _Task:
    """Everything one seed's fit needs; shipped to a worker with cloudpickle."""

    seed: int
    solver: str
    solver_kwargs: Dict[str, Any]
    model_factory: Callable[[int], nn.Module]
    loaders: Optional[Tuple[Any, Any, Any]]
    loader_factory: Optional[Callable[[int], Any]]
    fit_kwargs: Dict[str, Any]
    seed_dir: Optional[str]
    logger_factory: Optional[Callable[[int], Any]]
    reseed_loaders: bool = True
    strict: bool = False


def make_task(
    *,
    model_factory: Any,
    seed: Any = 0,
    solver: str = "population",
    solver_kwargs: Optional[Dict[str, Any]] = None,
    loaders: Any = None,
    loader_factory: Any = None,
    fit_kwargs: Optional[Dict[str, Any]] = None,
    logdir: Optional[Union[str, os.PathLike]] = None,
    logger_factory: Any = None,
    reseed_loaders: bool = True,
    where: str = "the fit",
    strict: bool = False,
    output_dir: Optional[Union[str, os.PathLike]] = None,
) -> _Task:
    """Check the arguments of one seeded fit and bundle them for :py:func:`fit_seed`.

    ``logdir`` is the fit's own folder (``output_dir``: its old name, for one
    release). ``strict`` seeds with
    ``set_random_seed(seed, strict=True)`` (deterministic algorithms, for the
    fit only). Checks run here, in the calling process, so that a mistake
    fails before any work is shipped.

    Raises:
        ValueError: naming the bad argument and what came.
    """
    logdir = renamed(logdir, output_dir, "logdir", "output_dir", where=where, stacklevel=4)
    if not callable(model_factory):
        raise ValueError(f"{where}: model_factory must be a callable seed -> nn.Module, got {type(model_factory).__name__}.")
    check_seed(seed, "seed", where=f"{where}: ")
    cls = _check_solver_name(solver)
    solver_kwargs = dict(solver_kwargs or {})
    if "model" in solver_kwargs:
        raise ValueError(f"{where}: pass model_factory (seed -> model), not model=: each seed builds its own model.")
    if "loggers" in solver_kwargs:
        raise ValueError(f"{where}: pass logger_factory (seed -> list of loggers), not loggers=: each seed needs its own loggers.")
    if _has_field(cls, "progress") and "tqdm_on" not in solver_kwargs:
        # one progress bar per seed, interleaved across workers, helps nobody
        solver_kwargs.setdefault("progress", False)
    fit_kwargs = dict(fit_kwargs or {})
    refused = [k for k in _FIT_KEYS_REFUSED if k in fit_kwargs]
    if refused:
        raise ValueError(f"{where}: {refused[0]}= is set per seed; pass logdir, not in fit_kwargs, to write each seed's files to its own folder.")
    if (loaders is None) == (loader_factory is None):
        raise ValueError(
            f"{where}: give either loaders (train_loader, valid_loader[, test_loader]) or loader_factory "
            f"(seed -> (train, valid[, test])), not {'both' if loaders is not None else 'neither'}."
        )
    if loaders is not None:
        loaders = _check_loaders(loaders, f"{where}: loaders")
    elif not callable(loader_factory):
        raise ValueError(f"{where}: loader_factory must be a callable seed -> (train, valid[, test]), got {type(loader_factory).__name__}.")
    if not isinstance(strict, bool):
        raise ValueError(f"{where}: set_seed_strict must be True or False, got {short_repr(strict)}.")
    if logger_factory is not None and not callable(logger_factory):
        raise ValueError(f"{where}: logger_factory must be a callable seed -> list of loggers, got {type(logger_factory).__name__}.")
    return _Task(
        seed=int(seed),
        solver=solver,
        solver_kwargs=solver_kwargs,
        model_factory=model_factory,
        loaders=loaders,
        loader_factory=loader_factory,
        fit_kwargs=fit_kwargs,
        seed_dir=None if logdir is None else os.fspath(logdir),
        logger_factory=logger_factory,
        reseed_loaders=reseed_loaders,
        strict=strict,
    )


@dataclasses.dataclass
class SeedRun:
    """The outcome of one seed's fit (what :py:func:`fit_seed` returns).

    Attributes:
        seed: The seed.
        history: The inner solver's epoch dicts.
        final: JSON-friendly summary (also ``final.json``): ``seed``, ``solver``,
            ``monitor``, ``mode``, ``best_epoch``, ``best_score``, ``epochs``,
            ``seconds``, ``best_epoch_row`` (the best epoch's dict) and per split
            (``valid``, ``test``) the loss and the nanmean of each metric over neurons.
        neurons: ``{split: {metric: (N,) float64 tensor}}``, the best state's
            per-neuron metrics on the validation and test loaders.
        state_dict: The best model state (CPU tensors).
        best_score: The monitored value of the best epoch, during training (NaN if none).
        monitor: The monitored key actually used.
        mode: ``"max"`` or ``"min"``.
        final_score: The monitored value of a validation of the final (best)
            state after the fit, what picks the best seed; for a ``train_``
            monitor (no validation loader) the training-time ``best_score``.
    """

    seed: int
    history: List[Dict[str, Any]]
    final: Dict[str, Any]
    neurons: Dict[str, Dict[str, Tensor]]
    state_dict: Dict[str, Tensor]
    best_score: float
    monitor: str
    mode: str
    final_score: float = math.nan


def _float(value: Any) -> float:
    return float("nan") if value is None else float(value)


def fit_seed(task: _Task, _seen_models: Optional[Dict[int, Any]] = None) -> SeedRun:
    """Fit the inner solver for one seed (see the module's docstring for the steps).

    Args:
        task: From :py:func:`make_task`.

    Returns:
        A :py:class:`SeedRun`; with a ``seed_dir``, its files are written there.

    Raises:
        ValueError: if a factory returns the wrong kind of object (named).
    """
    seed = task.seed
    start = time.perf_counter()
    if task.loaders is not None:
        train, valid, test = task.loaders
        train = _reseeded(train, seed if task.reseed_loaders else None)
        valid, test = _reseeded(valid, None), _reseeded(test, None)
    else:
        train, valid, test = _check_loaders(task.loader_factory(seed), f"loader_factory(seed={seed})")

    with _random.restored_determinism():
        return _fit_seed(task, seed, train, valid, test, start, _seen_models)


def _fit_seed(task: _Task, seed: int, train: Any, valid: Any, test: Any, start: float, _seen_models: Optional[Dict[int, Any]]) -> SeedRun:
    _random.set_random_seed(seed, strict=task.strict)
    model = task.model_factory(seed)
    if not isinstance(model, nn.Module):
        raise ValueError(f"model_factory(seed={seed}) returned {type(model).__name__} ({model!r:.80}); expected a torch.nn.Module.")
    if _seen_models is not None:
        # ids of freed models are reused: compare with the live object, held weakly
        seen = _seen_models.get(id(model))
        if seen is not None and seen[1]() is model:
            raise ValueError(
                f"model_factory returned the same module for seeds {seen[0]} and {seed}; it must build "
                "a new model on every call (seeds would otherwise continue each other's training)."
            )
        _seen_models[id(model)] = (seed, weakref.ref(model))

    loggers = []
    if task.logger_factory is not None:
        made = task.logger_factory(seed)
        loggers = [made] if callable(made) else list(made)
    from strfsolver.solver import _registry as registry_module

    solver = registry_module.init(task.solver, model=model, loggers=loggers, **task.solver_kwargs)
    seed_dir = None if task.seed_dir is None else Path(task.seed_dir)
    fit_kwargs = dict(task.fit_kwargs)
    if test is not None and "test_loader" in inspect.signature(solver.fit).parameters:
        # the fit evaluates its best state on both splits itself, for its loggers' finalize
        fit_kwargs["test_loader"] = test
    history = solver.fit(train, valid, logdir=seed_dir, **fit_kwargs).log

    neurons: Dict[str, Dict[str, Tensor]] = {}
    split_means: Dict[str, Dict[str, float]] = {}
    evaluated = getattr(solver, "final_validation_", None) or {}
    for split, loader in zip(SPLITS, (valid, test)):
        if loader is None:
            continue
        result = evaluated.get(split) or solver.validation(loader)
        neurons[split] = {k: v.detach().double().cpu() for k, v in result.items() if isinstance(v, Tensor)}
        split_means[split] = {"loss": float(result["loss"])}
        for name, values in neurons[split].items():
            split_means[split][name] = float(values.nanmean())  # NaN when every neuron is NaN

    best_epoch = getattr(solver, "best_epoch_", None)
    monitor, mode = getattr(solver, "monitor_", "val_cc_norm"), getattr(solver, "mode_", "max")
    best_score = _float(getattr(solver, "best_score_", None))
    # deepSTRF's rule: seeds compete on a validation of their final state, not on the
    # training-time score (per-neuron solvers assemble a state no epoch validated)
    final_score = best_score
    if monitor.startswith("val_") and "valid" in split_means:
        final_score = _float(split_means["valid"].get(monitor[len("val_") :]))
    history = [dict(row) for row in history]
    final = {
        "seed": seed,
        "solver": task.solver,
        "monitor": monitor,
        "mode": mode,
        "best_epoch": best_epoch,
        "best_score": best_score,
        "final_score": final_score,
        "epochs": len(history),
        "seconds": time.perf_counter() - start,
        "best_epoch_row": dict(history[best_epoch]) if best_epoch is not None and best_epoch < len(history) else {},
        **split_means,
    }
    state = {k: v.detach().cpu().clone() for k, v in solver.model.state_dict().items()}
    run = SeedRun(
        seed=seed, history=history, final=final, neurons=neurons, state_dict=state, best_score=best_score, monitor=monitor, mode=mode, final_score=final_score
    )
    if seed_dir is not None:
        _write_seed_files(seed_dir, run)
    return run


def _write_seed_files(folder: Path, run: SeedRun) -> None:
    io.atomic_write_json(folder / HISTORY_FILE, to_json(run.history))
    io.atomic_write_json(folder / FINAL_FILE, to_json(run.final))
    tensors = {f"{split}/{metric}": values for split, metrics in run.neurons.items() for metric, values in metrics.items()}
    io.save_tensors(folder / NEURONS_FILE, tensors, metadata={"seed": str(run.seed), "format": "strfsolver-multi-seed-neurons"})


@dataclasses.dataclass
class MultiSeedResult:
    """Everything a multi-seed fit produced.

    Attributes:
        seeds: The seeds, in order.
        runs: One :py:class:`SeedRun` per seed.
        per_seed: Long table with columns ``seed``, ``neuron``, ``split``
            (``"valid"``, ``"test"``), ``metric``, ``value``: every per-neuron
            metric of every seed's best state.
        summary: One row per ``split``, ``metric`` and ``neuron``, columns
            ``mean``, ``std`` (the population standard deviation across seeds,
            ``ddof=0``, as deepSTRF reports it; 0 with one seed), ``min``,
            ``max`` and ``n_seeds`` (seeds with a finite value), across seeds.
        best_seed: The seed whose final state has the best monitored value on
            a validation after its fit (:py:attr:`SeedRun.final_score`).
        best_score: That value.
        monitor: The monitored key, e.g. ``"val_cc_norm"``.
        mode: ``"max"`` or ``"min"``.
        logdir: Where the files went (or ``None``); ``output_dir`` is its old
            name, for one release.
    """

    seeds: List[int]
    runs: List[SeedRun]
    per_seed: Any
    summary: Any
    best_seed: int
    best_score: float
    monitor: str
    mode: str
    logdir: Optional[Path] = None

    @property
    def output_dir(self) -> Optional[Path]:
        """Old name of :py:attr:`logdir`, for one release."""
        return renamed(None, self.logdir, "logdir", "output_dir", where="MultiSeedResult")

    def __setstate__(self, state: Dict[str, Any]) -> None:
        if "output_dir" in state:  # pickled by strfsolver 0.1
            state["logdir"] = state.pop("output_dir")
        self.__dict__.update(state)

    @property
    def best_run(self) -> SeedRun:
        """The :py:class:`SeedRun` of :py:attr:`best_seed`."""
        return self.runs[self.seeds.index(self.best_seed)]

    @property
    def best_state_dict(self) -> Dict[str, Tensor]:
        """The best seed's best model state (CPU tensors): ``model_factory(seed).load_state_dict(...)``."""
        return self.best_run.state_dict

    @property
    def histories(self) -> Dict[int, List[Dict[str, Any]]]:
        """Each seed's epoch dicts."""
        return {run.seed: run.history for run in self.runs}

    @property
    def finals(self) -> Dict[int, Dict[str, Any]]:
        """Each seed's final summary (the content of its ``final.json``)."""
        return {run.seed: run.final for run in self.runs}

    @property
    def scores(self) -> Dict[int, float]:
        """Each seed's best monitored value during training."""
        return {run.seed: run.best_score for run in self.runs}

    @property
    def final_scores(self) -> Dict[int, float]:
        """Each seed's monitored value on the validation of its final state, what :py:attr:`best_seed` is chosen by."""
        return {run.seed: run.final_score for run in self.runs}


def _pick_best(runs: Sequence[SeedRun], mode: str) -> SeedRun:
    finite = [run for run in runs if math.isfinite(run.final_score)]
    if not finite:
        warnings.warn(f"no seed has a finite {short_repr(runs[0].monitor)}; best_seed is the first seed, {runs[0].seed}.", UserWarning, stacklevel=3)
        return runs[0]
    pick = max if mode == "max" else min
    # max/min keep the first of equal values: ties go to the earlier seed
    return pick(finite, key=lambda run: run.final_score)


def _tables(runs: Sequence[SeedRun]):
    import pandas as pd  # only the caller needs pandas, not the workers

    frames = []
    for run in runs:
        for split, metrics in run.neurons.items():
            for metric, values in metrics.items():
                n = values.numel()
                frames.append(
                    pd.DataFrame(
                        {"seed": np.full(n, run.seed, dtype=np.int64), "neuron": np.arange(n, dtype=np.int64), "split": split, "metric": metric, "value": values.numpy()}
                    )
                )
    columns = ["seed", "neuron", "split", "metric", "value"]
    per_seed = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    grouped = per_seed.groupby(["split", "metric", "neuron"], sort=True)["value"]
    summary = grouped.agg(mean="mean", std=lambda values: values.std(ddof=0), min="min", max="max", n_seeds="count").reset_index()
    return per_seed[columns], summary
