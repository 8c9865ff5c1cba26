"""Benchmark: what the epoch dicts' prediction statistics (``pred_mean``, ``pred_min``, ``pred_max``) cost.

The "population" solver fits the ``"linear"`` model to the population of
``bench_population.py`` (N = 128 neurons, 32 training stimuli of T = 500
bins, R = 10 repeats, F = 32 bands, 20 lags, batches of 4) twice per round,
from the same initial weights: once as it is, and once with
:py:class:`strfsolver.solver.activity.PredictionStatistics` replaced by one
that does nothing. Rounds alternate the order. Printed: the median seconds
per epoch (training and validation) of each and their ratio (the values
themselves are checked by ``tests/solver/test_activity.py``).

Run (from the repository root)::

    python benchmarks/bench_prediction_stats.py             # 3 rounds of 3 epochs, one torch thread
    python benchmarks/bench_prediction_stats.py --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import strfsolver
from strfsolver.data import make_loader, synthetic_population
from strfsolver.solver import fit_loop

SIZES = dict(n_neurons=128, n_stims=40, n_repeats=10, n_freqs=32, n_lags=20, n_times=500)


class NoStatistics:
    """Stands in for PredictionStatistics: the fit without the three keys."""

    def update(self, pred, responses):
        pass

    def compute(self):
        return {}


def seconds_per_epoch(train, valid, epochs: int, with_statistics: bool) -> float:
    original = fit_loop.PredictionStatistics
    fit_loop.PredictionStatistics = original if with_statistics else NoStatistics
    try:
        torch.manual_seed(0)
        model = strfsolver.models.init("linear", n_freqs=SIZES["n_freqs"], n_lags=SIZES["n_lags"], n_neurons=SIZES["n_neurons"])
        solver = strfsolver.solver.init("population", model=model, max_epochs=epochs, patience=None, progress=False)
        solver.fit(make_loader(train, batch_size=4, shuffle=True), make_loader(valid, batch_size=4))
    finally:
        fit_loop.PredictionStatistics = original
    assert ("pred_mean" in solver.log[-1]) == with_statistics
    return statistics.median(row["seconds"] for row in solver.log[1:])  # the first epoch warms up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    population = synthetic_population(**SIZES, seed=0)
    train, valid = population.dataset.split([0.8, 0.2], seed=0)
    timed = {True: [], False: []}
    start = time.perf_counter()
    for round_index in range(args.rounds):
        for flag in ((True, False) if round_index % 2 == 0 else (False, True)):
            timed[flag].append(seconds_per_epoch(train, valid, args.epochs, flag))
    with_stats, without = statistics.median(timed[True]), statistics.median(timed[False])
    print(f"s/epoch with pred_mean/min/max: {with_stats:.3f}, without: {without:.3f}, ratio {with_stats / without:.3f} "
          f"({args.rounds} rounds of {args.epochs} epochs, {args.threads} thread(s), {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
