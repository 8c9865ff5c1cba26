"""Benchmark: vectorized normalized correlation vs a per-neuron, per-stimulus loop.

Times :func:`strfsolver.metrics.normalized_corrcoef` (Schoppe's cc_norm,
one shot) and :class:`strfsolver.metrics.MetricAccumulator` (streaming, in
batches of whole stimuli, each batch trimmed to its own longest stimulus and
largest number of repeats as a loader serves it) against a straightforward
NumPy reference that loops over neurons and stimuli, on a NaN-padded data set
shaped like a real one: N = 494 neurons, B = 20 stimuli of 300 to 500 bins,
up to R = 10 repeats (some stimuli have fewer, some repeats are missing or
cut short for some neurons).

Usage:

    python benchmarks/bench_metrics.py [--device cpu] [--dtype float32 float64] [--repeat 5]

It prints the time of each method, the speed-up over the loop and the largest
absolute difference of each method's values from the loop's (float64 loop).
"""

from __future__ import annotations

import argparse
import math
import platform
import time

import numpy as np
import torch

from strfsolver.metrics import MetricAccumulator, normalized_corrcoef


def make_data(n_neurons=494, n_stims=20, n_repeats=10, n_times=500, seed=0):
    """Poisson responses to smooth rates, NaN-padded, and a noisy prediction.

    Returns:
        pred (B, N, 1, T) and responses (B, N, R, T) float64 tensors.
    """
    g = torch.Generator().manual_seed(seed)
    drive = torch.randn(n_stims * n_neurons, 1, n_times, generator=g, dtype=torch.float64)
    kernel = torch.hann_window(25, dtype=torch.float64).view(1, 1, -1)
    drive = torch.nn.functional.conv1d(drive, kernel / kernel.sum() * 4.0, padding=12)
    drive = drive.view(n_stims, n_neurons, 1, n_times)
    gain = torch.rand(1, n_neurons, 1, 1, generator=g, dtype=torch.float64) * 1.5 + 0.2
    rate = torch.nn.functional.softplus(gain * drive + 0.3)
    responses = torch.poisson(rate.expand(-1, -1, n_repeats, -1).contiguous(), generator=g)
    pred = rate + 0.5 * torch.randn(rate.shape, generator=g, dtype=torch.float64)

    lengths = torch.randint(300, n_times + 1, (n_stims,), generator=g)
    repeats = torch.randint(6, n_repeats + 1, (n_stims,), generator=g)
    for b in range(n_stims):  # padding per stimulus, as a collate function makes it
        responses[b, :, :, int(lengths[b]):] = math.nan
        responses[b, :, int(repeats[b]):, :] = math.nan
    # a few whole repeats missing for some neurons, a few cut short
    missing = torch.rand(n_stims, n_neurons, n_repeats, generator=g) < 0.05
    responses[missing] = math.nan
    cut = torch.rand(n_stims, n_neurons, n_repeats, generator=g) < 0.05
    cut_bins = torch.arange(n_times).view(1, 1, 1, -1) >= 200
    responses[cut.unsqueeze(-1) & cut_bins] = math.nan
    return pred, responses


def reference_cc_norm(pred: np.ndarray, responses: np.ndarray) -> np.ndarray:
    """Schoppe's cc_norm with a Python loop over neurons and stimuli.

    Written from docs/conventions.md §2 independently of strfsolver.metrics: for
    each neuron, for each stimulus, the PSTH over the bins with a valid
    repeat, Sahani & Linden's signal power from the repeats with any valid
    bin, each repeat's variance over its own valid bins.
    """
    n_stims, n_neurons, _, _ = responses.shape
    out = np.full(n_neurons, np.nan)
    for n in range(n_neurons):
        preds, psths = [], []
        sp_sum = weight = 0.0
        any_repeats = False
        for b in range(n_stims):
            x = responses[b, n]
            valid = ~np.isnan(x)
            bins = valid.any(axis=0)
            r_v = int(valid.any(axis=1).sum())
            t_v = int(bins.sum())
            if t_v == 0:
                continue
            xb = x[:, bins]
            vb = valid[:, bins]
            psth = np.where(vb, xb, 0.0).sum(0) / vb.sum(0)
            preds.append(pred[b, n, 0, bins])
            psths.append(psth)
            any_repeats |= r_v >= 2
            counts = valid.sum(axis=1)
            has_var = counts >= 2
            if r_v < 2 or t_v < 2 or not has_var.any():
                continue
            rows = x[has_var]
            rows_valid = valid[has_var]
            means = np.where(rows_valid, rows, 0.0).sum(1) / counts[has_var]
            dev = np.where(rows_valid, rows - means[:, None], 0.0)
            rep_var = (dev**2).sum(1) / (counts[has_var] - 1)
            sp = (r_v * np.var(psth, ddof=1) - rep_var.mean()) / (r_v - 1)
            sp_sum += t_v * sp
            weight += t_v
        if not preds:
            continue
        p = np.concatenate(preds)
        y = np.concatenate(psths)
        if p.size < 2:
            continue
        cov = np.cov(p, y, ddof=1)
        if not any_repeats:
            out[n] = cov[0, 1] / math.sqrt(cov[0, 0] * cov[1, 1])
        elif weight > 0 and sp_sum / weight > 0 and cov[0, 0] > 0:
            out[n] = cov[0, 1] / math.sqrt(cov[0, 0] * sp_sum / weight)
    return out


def make_batches(pred, responses, batch_size):
    """Batches of whole stimuli, each trimmed to its longest stimulus and its
    largest number of repeats, as a loader serves them (not timed)."""
    batches = []
    for start in range(0, responses.shape[0], batch_size):
        resp = responses[start : start + batch_size]
        valid = ~torch.isnan(resp)
        bins = int(valid.any(0).any(0).any(0).nonzero().max()) + 1
        reps = int(valid.any(0).any(0).any(-1).nonzero().max()) + 1
        batches.append(
            (
                pred[start : start + batch_size, :, :, :bins].contiguous(),
                resp[:, :, :reps, :bins].contiguous(),
            )
        )
    return batches


def streaming_cc_norm(batches):
    acc = MetricAccumulator(("cc_norm",))
    for pred, responses in batches:
        acc.update(pred, responses)
    return acc.compute()["cc_norm"]


def timed(fn, repeat, sync):
    times = []
    for _ in range(repeat):
        sync()
        start = time.perf_counter()
        value = fn()
        sync()
        times.append(time.perf_counter() - start)
    return value, float(np.median(times))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument(
        "--dtype", nargs="+", default=["float64", "float32"], choices=["float64", "float32"]
    )
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per method (median)")
    parser.add_argument("--batch-size", type=int, default=4, help="stimuli per streaming batch")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)

    pred64, responses64 = make_data()
    shape = tuple(responses64.shape)
    print(f"responses (B, N, R, T) = {shape}, {float(torch.isnan(responses64).float().mean()):.1%} NaN")
    print(
        f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
        f"{platform.processor() or platform.machine()}"
    )

    start = time.perf_counter()
    reference = reference_cc_norm(pred64.numpy(), responses64.numpy())
    loop_time = time.perf_counter() - start
    print(f"reference loop (NumPy, float64, over {shape[1]} neurons x {shape[0]} stimuli): {loop_time:.3f} s")
    print(f"reference median cc_norm {np.nanmedian(reference):.4f}, {np.isnan(reference).sum()} NaN")

    tolerance = {"float64": 1e-5, "float32": 1e-4}
    for name in args.dtype:
        dtype = getattr(torch, name)
        pred = pred64.to(device=device, dtype=dtype)
        responses = responses64.to(device=device, dtype=dtype)
        one_shot, t_one = timed(lambda: normalized_corrcoef(pred, responses), args.repeat, sync)
        batches = make_batches(pred, responses, args.batch_size)
        stream, t_stream = timed(lambda: streaming_cc_norm(batches), args.repeat, sync)
        for label, value, seconds in (
            ("normalized_corrcoef (one shot)", one_shot, t_one),
            (f"MetricAccumulator (batches of {args.batch_size})", stream, t_stream),
        ):
            value = value.double().cpu().numpy()
            same_nan = bool((np.isnan(value) == np.isnan(reference)).all())
            diff = float(np.nanmax(np.abs(value - reference)))
            verdict = "ok" if same_nan and diff <= tolerance[name] else "MISMATCH"
            print(
                f"{name:8s} {label:38s} {seconds * 1e3:8.1f} ms  {loop_time / seconds:6.1f}x faster  "
                f"max |diff| {diff:.2e} (tolerance {tolerance[name]:.0e}, NaNs agree: {same_nan}) {verdict}"
            )


if __name__ == "__main__":
    main()
