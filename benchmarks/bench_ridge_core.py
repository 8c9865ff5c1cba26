"""Benchmark: the numerical core of the closed-form ridge STRF fit (strfsolver.ridge).

At the size of a typical STRF fit (P = 128 features, L = 30 lags, D = 3840
coefficients per neuron; 10 stimuli of about 5,000 bins; spectrogram-like
features: noise smoothed along time and bands), it times

1. one stimulus' Gram from the lag structure (:func:`lagged_gram`) against the
   explicit chunked ``X^T X`` of the lagged design, and their difference;
2. one ``eigh`` against one Cholesky of the 3840 x 3840 Gram;
3. accumulating :class:`RidgeStatistics` over the 10 stimuli;
4. the full 5-fold x 8-alpha search of :func:`fit_ridge` (with the final
   refit) with one eigh per fold against one Cholesky per alpha, for N = 10
   and N = 500 neurons, and whether both choose the same alphas.

Usage:

    python benchmarks/bench_ridge_core.py [--threads 2] [--neurons 10 500] [--gcv]

``--gcv`` also times ``cv="gcv"`` (exact leave-one-bin-out) for the smallest N.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from strfsolver.ridge import RidgeStatistics, fit_ridge, lagged_design, lagged_gram
from strfsolver.ridge.lagged import CHUNK_ELEMENTS


def smoothed_noise(n_bands, n_times, generator):
    """Noise smoothed along time (about 10 bins) and bands (about 5), standardized per band: ``(F, T)``."""
    x = torch.randn(1, 1, n_bands, n_times, generator=generator, dtype=torch.float64)
    kernel = torch.outer(torch.hann_window(9, dtype=torch.float64), torch.hann_window(21, dtype=torch.float64))
    x = torch.nn.functional.conv2d(x, (kernel / kernel.sum()).view(1, 1, 9, 21), padding=(4, 10))[0, 0]
    return (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True)


def make_data(n_neurons, n_bands=128, n_lags=30, n_stimuli=10, seed=0):
    """Features ``(P, T_s)`` and targets ``(N, T_s)`` per stimulus: smooth random STRFs plus noise."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(4500, 5501, (n_stimuli,), generator=g).tolist()
    bands = torch.arange(n_bands, dtype=torch.float64)
    lags = torch.arange(n_lags, dtype=torch.float64)
    centre = torch.rand(n_neurons, 1, 1, generator=g, dtype=torch.float64) * n_bands
    latency = 3 + torch.rand(n_neurons, 1, 1, generator=g, dtype=torch.float64) * 10
    strf = torch.exp(-((bands.view(1, -1, 1) - centre) ** 2) / 50) * torch.sin(lags.view(1, 1, -1) / latency) * torch.exp(-lags.view(1, 1, -1) / 8)
    data = []
    for length in lengths:
        x = smoothed_noise(n_bands, length, g)
        drive = torch.nn.functional.conv1d(torch.nn.functional.pad(x, (n_lags - 1, 0)).unsqueeze(0), strf.flip(-1))[0]
        y = drive / drive.std() + 2.0 * torch.randn(n_neurons, length, generator=g, dtype=torch.float64)
        data.append((x, y))
    return data


def timed(fn, repeat=1):
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def explicit_gram(x, n_lags):
    """``X^T X`` of the lagged design, built and multiplied in chunks of bins."""
    design = lagged_design(x, n_lags)
    step = max(1, CHUNK_ELEMENTS // design.shape[1])
    gram = torch.zeros(design.shape[1], design.shape[1], dtype=x.dtype)
    for start in range(0, design.shape[0], step):
        rows = design[start : start + step]
        gram += rows.T @ rows
    return gram


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--neurons", type=int, nargs="+", default=[10, 500])
    parser.add_argument("--gcv", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    n_lags = 30
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, python {platform.python_version()}")

    data = make_data(max(args.neurons), n_lags=n_lags)
    x = data[0][0]
    t_lag, g_lag = timed(lambda: lagged_gram(x, n_lags), repeat=3)
    t_exp, g_exp = timed(lambda: explicit_gram(x, n_lags))
    diff = float((g_lag - g_exp).abs().max() / g_exp.abs().max())
    print(f"\n1. Gram of one stimulus (P=128, L={n_lags}, D={g_lag.shape[0]}, T={x.shape[1]}), float64")
    print(f"   lag-structured {t_lag:.3f} s | explicit chunked X^T X {t_exp:.3f} s | speed-up {t_exp / t_lag:.1f}x | max rel. difference {diff:.1e}")

    gram = g_lag + 1e-3 * torch.eye(g_lag.shape[0], dtype=g_lag.dtype) * g_lag.diagonal().mean()
    t_eigh, _ = timed(lambda: torch.linalg.eigh(gram))
    t_chol, _ = timed(lambda: torch.linalg.cholesky(gram), repeat=3)
    print(f"\n2. factorizations of the {gram.shape[0]} x {gram.shape[0]} Gram: eigh {t_eigh:.2f} s | cholesky {t_chol:.3f} s | ratio {t_eigh / t_chol:.1f}")

    for n_neurons in sorted(args.neurons):
        stats = RidgeStatistics(n_lags, keep_data=args.gcv and n_neurons == min(args.neurons))
        t_add, _ = timed(lambda: [stats.add(xs, ys[:n_neurons]) for xs, ys in data])
        print(f"\n3./4. N={n_neurons}: accumulating 10 stimuli ({sum(xs.shape[1] for xs, _ in data)} bins) {t_add:.2f} s")
        fits = {}
        for method in ("cholesky", "eigh"):
            t_fit, fits[method] = timed(lambda: fit_ridge(stats, cv=5, method=method))
            print(f"   5 folds x 8 alphas + refit, {method:8s} {t_fit:7.2f} s")
        same = float((fits["cholesky"].alphas == fits["eigh"].alphas).double().mean())
        coef_diff = float((fits["cholesky"].coef - fits["eigh"].coef).abs().max() / fits["eigh"].coef.abs().max())
        scores = fits["cholesky"].cv_scores.max(0).values
        print(f"   same alphas chosen {same:.0%} | max rel. coef difference {coef_diff:.1e} | best cv corr median {float(scores.median()):.3f}")
        if stats.keep_data:
            t_gcv, _ = timed(lambda: fit_ridge(stats, cv="gcv"))
            print(f"   cv='gcv' (leave-one-bin-out, 8 alphas) {t_gcv:.2f} s")


if __name__ == "__main__":
    main()
