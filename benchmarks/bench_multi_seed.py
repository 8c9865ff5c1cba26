"""Benchmark: a 4-seed multi-seed fit, sequential vs a 2-worker process pool.

The same ``"multi-seed"`` fit (``"ln"`` model, population solver, fixed
number of epochs, no early stopping) runs three ways:

1. sequentially, one torch thread;
2. sequentially, with ``--threads`` torch threads (torch's own intra-op
   parallelism: what a user gets without an executor);
3. on a ``ProcessPoolExecutor`` with ``--workers`` spawned workers, one
   torch thread each (the pool's start-up, imports included, is counted).

It prints the seconds of each, the speed-up of the pool over (1) and (2),
and whether the pool's parameters equal run (1)'s bit for bit.

Usage:

    python benchmarks/bench_multi_seed.py [--seeds 4] [--workers 2] [--threads 2] [--epochs 20]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor

import torch

import strfsolver
from strfsolver.data import make_loader, synthetic_population
from strfsolver.workflow.distributed import run_calls


def build(args):
    population = synthetic_population(
        n_neurons=args.neurons, n_stims=20, n_repeats=5, n_freqs=16, n_lags=12, n_times=300, seed=0
    )
    train, valid = population.dataset.split([0.8, 0.2], seed=0)
    loaders = make_loader(train, batch_size=4, shuffle=True, seed=0), make_loader(valid, batch_size=4)
    n_neurons = args.neurons
    factory = lambda seed: strfsolver.models.init("ln", n_freqs=16, n_lags=12, n_neurons=n_neurons)  # noqa: E731
    return loaders, factory


def fit(loaders, factory, args, executor=None, threads=1):
    ms = strfsolver.solver.init(
        "multi-seed", model_factory=factory, n_seeds=args.seeds, executor=executor, threads=threads,
        lr=1e-2, max_epochs=args.epochs, patience=None,
    )
    start = time.perf_counter()
    result = ms.fit(*loaders).result_
    return time.perf_counter() - start, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--neurons", type=int, default=32)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}")
    print(f"{args.seeds} seeds x {args.epochs} epochs, 'ln' model, {args.neurons} neurons")

    loaders, factory = build(args)
    one, reference = fit(loaders, factory, args, threads=1)
    print(f"sequential, 1 thread:            {one:7.2f} s")
    many, _ = fit(loaders, factory, args, threads=args.threads)
    print(f"sequential, {args.threads} threads:           {many:7.2f} s")
    context = multiprocessing.get_context("spawn")
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=context) as pool:
        # start every worker and import strfsolver there: the start-up, timed apart
        run_calls([(time.sleep, (1.0,), {})] * args.workers, executor=pool)
        startup = time.perf_counter() - start
        warm, pooled = fit(loaders, factory, args, executor=pool, threads=1)
    cold = startup + warm
    print(f"process pool, {args.workers} workers x 1 thread: {warm:7.2f} s warm, {cold:.2f} s with the pool's start-up")
    print(f"speed-up of the warm pool: {one / warm:.2f}x over 1 thread, {many / warm:.2f}x over {args.threads} threads "
          f"(with start-up: {one / cold:.2f}x, {many / cold:.2f}x)")
    same = all(
        torch.equal(a.state_dict[k], b.state_dict[k]) for a, b in zip(reference.runs, pooled.runs) for k in a.state_dict
    )
    print(f"pool parameters identical to the sequential 1-thread run: {same}")
    print(f"best seed {pooled.best_seed}, val_cc_norm per seed: " + ", ".join(f"{s}: {v:.4f}" for s, v in pooled.scores.items()))


if __name__ == "__main__":
    main()
