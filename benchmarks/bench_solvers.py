"""Benchmark: seconds per epoch of the four registered solvers on one synthetic population.

Each solver -- ``"population"``, ``"single-cell"``, ``"per-cell-best"`` and
``"multi-seed"`` (inner ``"population"``, 2 seeds, run one after the other in
this process) -- fits an ``"ln"`` model to the same synthetic population
(default: N = 64 neurons, 24 stimuli of T = 400 bins split 18 train / 6
validation, R = 10 repeats, F = 32 bands, 15 lags) with the same options
(AdamW at ``--lr``, batch size 4, a fixed number of epochs, default 20, with
``patience=None``, so no early stopping). The training loader is shuffled
with a fixed seed, the validation loader serves the 6 validation stimuli in a
fixed order. Every solver starts from the same initial weights
(``torch.manual_seed(0)`` before the model is built; multi-seed builds its
own per seed).

Before each timed fit, one warm-up fit of 1 epoch (a fresh model, not timed)
runs the same solver, so that first calls of the kernels and allocators are
not counted. **s/epoch** is the wall-clock time of the whole timed ``fit``
(training, validation, bookkeeping) divided by the number of epochs; for
multi-seed it covers both seeds. **val cc_norm** is the mean validation
``cc_norm`` of the last epoch (``solver.log[-1]["val_cc_norm"]``; for
multi-seed, the last epoch of the best seed).

The script uses only API common to the solver core before and after its
redesign (``solver.init``, ``fit``, ``log``, ``synthetic_population``,
``make_loader``, ``models.init``) and reads the multi-seed result from
``result_`` when the solver has it, else from what ``fit`` returned (before
the redesign, ``fit`` returned the result; now it returns the solver), so
the same file benchmarks both versions::

    PYTHONPATH=. python benchmarks/bench_solvers.py --threads 1
    PYTHONPATH=/path/to/other/checkout python benchmarks/bench_solvers.py --threads 1 --json old.json

On a machine whose cores are shared with other jobs, ``--threads 1`` gives
the steadiest figures; alternate runs of the versions and compare medians.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import torch

SOLVERS = ("population", "single-cell", "per-cell-best", "multi-seed")


def _final_cc_norm(solver) -> float:
    """Mean validation cc_norm of the last epoch (multi-seed: of the best seed)."""
    result = getattr(solver, "result_", None)
    if result is None:
        result = getattr(solver, "_bench_result", None)
    if result is not None:
        return float(result.best_run.history[-1]["val_cc_norm"])
    return float(solver.log[-1]["val_cc_norm"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=64)
    parser.add_argument("--stims", type=int, default=24, help="stimuli in all; a quarter are for validation")
    parser.add_argument("--times", type=int, default=400, help="bins per stimulus")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--freqs", type=int, default=32)
    parser.add_argument("--lags", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=20, help="timed epochs per solver (patience=None)")
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seeds", type=int, default=2, help="seeds of the multi-seed solver")
    parser.add_argument("--solvers", nargs="+", default=list(SOLVERS), choices=SOLVERS)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    import strfsolver
    from strfsolver.data import make_loader, synthetic_population

    population = synthetic_population(n_neurons=args.neurons, n_stims=args.stims, n_repeats=args.repeats, n_freqs=args.freqs,
                                      n_lags=args.lags, n_times=args.times, seed=0)
    train, valid = population.dataset.split([0.75, 0.25], seed=0)

    def loaders():
        return (make_loader(train, batch_size=args.batch_size, shuffle=True, seed=0),
                make_loader(valid, batch_size=args.batch_size))

    def new_model(seed=0):
        torch.manual_seed(seed)
        return strfsolver.models.init("ln", n_freqs=args.freqs, n_lags=args.lags, n_neurons=args.neurons)

    import dataclasses

    # the progress option was called tqdm_on before the solver-core redesign
    quiet = "progress" if "progress" in {f.name for f in dataclasses.fields(strfsolver.solver.PopulationSolver)} else "tqdm_on"

    def build(name, epochs):
        options = dict(lr=args.lr, max_epochs=epochs, patience=None, **{quiet: False})
        if name == "multi-seed":
            return strfsolver.solver.init(name, solver="population", model_factory=new_model, n_seeds=args.seeds, **options)
        return strfsolver.solver.init(name, model=new_model(0), **options)

    def run(name, epochs):
        solver = build(name, epochs)
        start = time.perf_counter()
        returned = solver.fit(*loaders())
        seconds = time.perf_counter() - start
        if name == "multi-seed" and getattr(solver, "result_", None) is None:
            solver._bench_result = returned  # before the redesign, fit returned the MultiSeedResult
        return solver, seconds

    print(f"strfsolver from {os.path.dirname(strfsolver.__file__)}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} cores ({platform.machine()})")
    print(f"data: {args.neurons} neurons, {len(train)} train / {len(valid)} valid stimuli of {args.times} bins, "
          f"{args.repeats} repeats, {args.freqs} bands; model 'ln', {args.lags} lags; batch {args.batch_size}, "
          f"{args.epochs} epochs, lr {args.lr}; multi-seed: population x {args.seeds} seeds, sequential")
    print(f"{'solver':<16}{'s/epoch':>10}{'fit s':>10}{'val cc_norm':>13}")
    results = {}
    for name in args.solvers:
        run(name, 1)  # warm-up, not timed
        solver, seconds = run(name, args.epochs)
        results[name] = {"seconds": seconds, "s_per_epoch": seconds / args.epochs, "val_cc_norm": _final_cc_norm(solver)}
        row = results[name]
        print(f"{name:<16}{row['s_per_epoch']:>10.4f}{seconds:>10.2f}{row['val_cc_norm']:>13.4f}", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"strfsolver": strfsolver.__file__, "torch": torch.__version__, "threads": torch.get_num_threads(),
                       "args": vars(args), "results": results}, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
