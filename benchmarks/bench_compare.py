"""Benchmark: a 5-fold comparison of ridge, ``ln`` and ``nrf`` on a synthetic population.

Three measurements of the same :py:func:`strfsolver.model_selection.compare`:

1. the sum of its fits done by hand: every (model, fold) fitted with
   ``build_experiment(...).fit()`` on the fold's training stimuli (the
   gradient models with the same early-stopping stimuli ``compare`` draws),
   and its held-out stimuli predicted, one torch thread;
2. ``compare`` sequentially, one torch thread: its overhead over (1)
   (splitting, scoring, the paired statistics, the tables; target < 5 %);
   (1) and (2) run ``--repeats`` times, interleaved, after a warm-up, and
   the fastest of each is kept;
3. ``compare`` on a ``ProcessPoolExecutor`` with ``--workers`` spawned
   workers, one torch thread each (the pool's start-up counted), and whether
   its tables equal the sequential ones.

The gradient models run a fixed number of epochs (no early stopping), so
every run does the same work.

Usage:

    python benchmarks/bench_compare.py [--neurons 64] [--folds 5] [--epochs 20] [--workers 2]
    python benchmarks/bench_compare.py --quick     # 16 neurons, 3 folds, 5 epochs: about a minute on 2 cores
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch

import strfsolver
from strfsolver.workflow.experiment import build_experiment
from strfsolver.model_selection import StimulusKFold, compare
from strfsolver.model_selection.folds import as_spec, is_closed_form


def specs(args):
    trained = {"lr": 3e-3, "max_epochs": args.epochs, "patience": None}
    lags = {"n_lags": args.lags}
    return {
        "ridge": {"model": "linear", "model_options": lags},
        "ln": {"model": "ln", "model_options": lags, "solver_options": trained, "batch_size": 4},
        "nrf": {"model": "nrf", "model_options": lags, "solver_options": trained, "batch_size": 4},
    }


def fits_by_hand(models, dataset, cv, valid_fraction=0.2, seed=0) -> float:
    """Seconds of every (model, fold) fit and its held-out prediction, nothing else."""
    total = 0.0
    for spec in models.values():
        spec = as_spec(spec)
        for train_idx, test_idx in cv.split(dataset):
            start = time.perf_counter()
            train = dataset.subset(train_idx.tolist())
            experiment = build_experiment(spec, train, None, seed=seed)
            if not is_closed_form(experiment):
                n_valid = min(len(train) - 1, max(1, int(round(valid_fraction * len(train)))))
                order = np.random.default_rng(seed).permutation(len(train))
                experiment = build_experiment(spec, train.subset(sorted(order[n_valid:].tolist())), train.subset(sorted(order[:n_valid].tolist())), seed=seed)
            experiment.fit()
            experiment.solver.transform([dataset.stims[i] for i in test_idx])
            total += time.perf_counter() - start
    return total


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=64)
    parser.add_argument("--stims", type=int, default=20)
    parser.add_argument("--times", type=int, default=300)
    parser.add_argument("--freqs", type=int, default=16)
    parser.add_argument("--lags", type=int, default=12)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="runs of (1) and (2), the fastest kept")
    parser.add_argument("--quick", action="store_true", help="16 neurons, 12 stimuli of 200 bins, 3 folds, 5 epochs")
    args = parser.parse_args(argv)
    if args.quick:
        args.neurons, args.stims, args.times, args.folds, args.epochs = 16, 12, 200, 3, 5
    torch.set_num_threads(1)
    print(f"machine: {platform.machine()} {platform.processor() or ''}, torch {torch.__version__}, python {platform.python_version()}")
    population = strfsolver.data.synthetic_population(
        n_neurons=args.neurons, n_stims=args.stims, n_repeats=5, n_freqs=args.freqs, n_lags=args.lags, n_times=args.times, seed=0
    )
    dataset, models, cv = population.dataset, specs(args), StimulusKFold(args.folds, shuffle=True, seed=0)
    print(f"{args.neurons} neurons, {args.stims} stimuli x {args.times} bins, {args.folds} folds, models {list(models)}, {args.epochs} epochs")

    # one-time costs (imports, first calls) land in a warm-up, not in either measurement
    fits_by_hand(models, dataset.subset(list(range(4))), StimulusKFold(2))
    # the two runs interleaved, the fastest of each kept: the shared machine's load drifts
    by_hand, seconds_sequential = float("inf"), float("inf")
    for _ in range(args.repeats):
        by_hand = min(by_hand, fits_by_hand(models, dataset, cv))
        start = time.perf_counter()
        sequential = compare(models, dataset, cv=cv, threads=1)
        seconds_sequential = min(seconds_sequential, time.perf_counter() - start)
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pooled = compare(models, dataset, cv=cv, executor=pool, threads=1)
    seconds_pool = time.perf_counter() - start

    same = (
        pooled.scores.drop(columns="seconds").equals(sequential.scores.drop(columns="seconds"))
        and pooled.summary.equals(sequential.summary)
        and pooled.pairs.equals(sequential.pairs)
    )
    print(f"\n{'run':<38}{'seconds':>10}{'ratio':>10}")
    print(f"{'sum of the fits, by hand':<38}{by_hand:>10.1f}{1.0:>10.2f}")
    print(f"{'compare, sequential':<38}{seconds_sequential:>10.1f}{seconds_sequential / by_hand:>10.2f}")
    print(f"{f'compare, {args.workers}-worker process pool':<38}{seconds_pool:>10.1f}{seconds_pool / by_hand:>10.2f}")
    print(f"\noverhead of compare over its fits: {100 * (seconds_sequential / by_hand - 1):+.1f} % (target < 5 %)")
    print(f"process pool speed-up over sequential: {seconds_sequential / seconds_pool:.2f}x; tables identical: {same}")
    print("\nmedian cc_norm:", ", ".join(f"{r.model} {r.median_cc_norm:.3f}" for r in sequential.models.itertuples()))
    print(sequential.pairs[["model_a", "model_b", "median_diff", "ci_low", "ci_high", "p_value", "wins"]].to_string(index=False))


if __name__ == "__main__":
    main()
