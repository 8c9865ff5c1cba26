"""Benchmark: the "population" solver against a plain reference training loop.

Both fit the same ``"linear"`` STRF model (same initial weights, AdamW with the
same settings, MSE loss, the same batches of 4 stimuli in the same shuffled
order) to the same synthetic
population (N = 128 neurons, 40 stimuli split 32 / 8, R = 10 repeats, T = 500
bins, F = 32 bands, 20 lags) for the same number of epochs, validating every
epoch and keeping the best state by validation ``cc_norm``.

The reference loop does what training scripts commonly do: a
``DataLoader(..., collate_fn=neural_collate)`` that pads every batch anew,
and, each epoch, every batch's predictions and responses collected on the
CPU, padded to a common length, concatenated, and the metrics recomputed on
the whole training and validation sets with the one-shot functions of
:py:mod:`strfsolver.metrics`; the best state is a ``copy.deepcopy`` of the
``state_dict``. The solver serves batches from a :py:class:`PaddedLoader`
(padded once), streams validation metrics through per-neuron sufficient
statistics (:py:class:`MetricAccumulator`) and keeps no prediction. A third
row runs the solver with ``track_train_metrics=True``, so that it computes
the same train metrics as the reference.

Each variant runs in its own subprocess, so that its peak memory is its own:
**peak memory** is the increase of the process's peak resident set size
(``resource.getrusage(...).ru_maxrss``) from the moment the dataset and the
model exist to the end of training. It therefore includes building the
loaders (the PaddedLoader's padded copy of the dataset counts against the
solver), every collected prediction and response, the metric temporaries and
the autograd buffers; ``tracemalloc`` would miss all of these, because torch
allocates tensor memory outside Python's allocator. **s/epoch** is the mean
wall-clock time of the epochs after the first (warm-up excluded), training
and validation included. **final val cc_norm** is the mean over neurons of
the validation ``cc_norm`` of the best state.

Run (from the repository root)::

    python benchmarks/bench_population.py                # 20 epochs, CPU
    python benchmarks/bench_population.py --threads 1    # one torch thread
    python benchmarks/bench_population.py --epochs 5 --device cuda

On a machine whose cores are shared with other jobs, ``--threads 1`` gives
stable figures: OpenMP threads that wait for each other at every operation
stall whenever another process holds one of the cores.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

SIZES = dict(n_neurons=128, n_stims=40, n_repeats=10, n_freqs=32, n_lags=20, n_times=500)
BATCH_SIZE = 4
LR = 3e-3
WEIGHT_DECAY = 1e-4


def _peak_rss_bytes() -> int:
    # ru_maxrss is in kilobytes on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _setup(device):
    import strfsolver
    from strfsolver.data import synthetic_population

    population = synthetic_population(**SIZES, seed=0)
    train, valid = population.dataset.split([0.8, 0.2], seed=0)
    strfsolver.set_random_seed(0)
    model = strfsolver.models.init("linear", n_freqs=SIZES["n_freqs"], n_lags=SIZES["n_lags"], n_neurons=SIZES["n_neurons"]).to(device)
    return train, valid, model


def _pad_cat(tensors, value):
    """Pad a list of (B, N, R, T_b) tensors in R and T and concatenate them along B."""
    repeats = max(t.shape[2] for t in tensors)
    bins = max(t.shape[3] for t in tensors)
    return torch.cat([torch.nn.functional.pad(t, (0, bins - t.shape[3], 0, repeats - t.shape[2]), value=value) for t in tensors])


class SameOrder:
    """Batches of stimulus indices in the order the solver's PaddedLoader draws them.

    Both runs then see the same batches, so their final scores must agree;
    only the bookkeeping around the gradient steps differs. The order comes
    from a one-neuron PaddedLoader with the solver's seed (public API; its
    padded copy is 1/128 of the data).
    """

    def __init__(self, dataset):
        from strfsolver.data import make_loader

        self.source = make_loader(dataset.select_neurons([0]), batch_size=BATCH_SIZE, shuffle=True, seed=0)
        self.epoch = 0

    def __len__(self):
        return len(self.source)

    def __iter__(self):
        order = self.source.order(self.epoch).tolist()
        self.epoch += 1
        return iter([order[i : i + BATCH_SIZE] for i in range(0, len(order), BATCH_SIZE)])


def run_reference(epochs, device):
    """Common practice: collect on the CPU, pad, concatenate, recompute."""
    from torch.utils.data import DataLoader

    from strfsolver import losses, metrics
    from strfsolver.data import neural_collate

    train, valid, model = _setup(device)
    baseline = _peak_rss_bytes()
    train_loader = DataLoader(train, batch_sampler=SameOrder(train), collate_fn=neural_collate)
    valid_loader = DataLoader(valid, batch_size=BATCH_SIZE, collate_fn=neural_collate)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    best_score, best_state, times, history = -float("inf"), None, [], []
    for epoch in range(epochs):
        start = time.perf_counter()
        model.train()
        preds, targets = [], []
        for batch in train_loader:
            stims, responses = batch["stims"].to(device), batch["responses"].to(device)
            optimizer.zero_grad()
            pred = model(stims)
            loss = losses.mse(pred, responses)
            loss.backward()
            optimizer.step()
            preds.append(pred.detach().cpu())
            targets.append(responses.cpu())
        pred_all, resp_all = _pad_cat(preds, 0.0), _pad_cat(targets, float("nan"))
        row = {
            "train_loss": float(losses.mse(pred_all, resp_all)),
            "train_cc": float(metrics.corrcoef(pred_all, resp_all, reduction="mean")),
            "train_cc_norm": float(metrics.normalized_corrcoef(pred_all, resp_all, reduction="mean")),
        }
        model.eval()
        preds, targets = [], []
        with torch.no_grad():
            for batch in valid_loader:
                preds.append(model(batch["stims"].to(device)).cpu())
                targets.append(batch["responses"].cpu())
        pred_all, resp_all = _pad_cat(preds, 0.0), _pad_cat(targets, float("nan"))
        row["val_loss"] = float(losses.mse(pred_all, resp_all))
        row["val_cc"] = float(metrics.corrcoef(pred_all, resp_all, reduction="mean"))
        row["val_cc_norm"] = float(metrics.normalized_corrcoef(pred_all, resp_all, reduction="mean"))
        if row["val_cc_norm"] > best_score:
            best_score, best_state = row["val_cc_norm"], copy.deepcopy(model.state_dict())
        times.append(time.perf_counter() - start)
        history.append(row)
    model.load_state_dict(best_state)
    return {"times": times, "final_val_cc_norm": best_score, "peak_bytes": _peak_rss_bytes() - baseline, "history": history}


def run_solver(epochs, device, track_train_metrics=False):
    """The "population" solver with a PaddedLoader and streamed metrics."""
    import strfsolver
    from strfsolver.data import make_loader

    train, valid, model = _setup(device)
    baseline = _peak_rss_bytes()
    train_loader = make_loader(train, batch_size=BATCH_SIZE, shuffle=True, seed=0, device=device)
    valid_loader = make_loader(valid, batch_size=BATCH_SIZE, device=device)
    solver = strfsolver.solver.init(
        "population",
        model=model,
        lr=LR,
        weight_decay=WEIGHT_DECAY,
        patience=None,
        max_epochs=epochs,
        progress=False,
        track_train_metrics=track_train_metrics,
    )
    history = solver.fit(train_loader, valid_loader).log
    return {
        "times": [row["seconds"] for row in history],
        "final_val_cc_norm": solver.best_score_,
        "peak_bytes": _peak_rss_bytes() - baseline,
        "history": history,
    }


def _cuda_peak(device):
    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return None


def worker(variant, epochs, device):
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    runner = {"reference": run_reference, "solver": run_solver, "solver+train-metrics": lambda e, d: run_solver(e, d, True)}[variant]
    result = runner(epochs, device)
    result["cuda_peak_bytes"] = _cuda_peak(device)
    result["threads"] = torch.get_num_threads()
    json.dump(result, sys.stdout)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.worker:
        worker(args.worker, args.epochs, args.device)
        return 0
    results = {}
    for variant in ("reference", "solver", "solver+train-metrics"):
        done = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--worker", variant, "--epochs", str(args.epochs), "--device", args.device]
            + ([] if args.threads is None else ["--threads", str(args.threads)]),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            raise SystemExit(f"the {variant} run failed")
        results[variant] = json.loads(done.stdout)
    ref = results["reference"]
    print(
        f"N={SIZES['n_neurons']} neurons, {SIZES['n_stims']} stimuli (32 train / 8 validation), R={SIZES['n_repeats']}, "
        f"T={SIZES['n_times']}, F={SIZES['n_freqs']}, {SIZES['n_lags']} lags; batch {BATCH_SIZE}, {args.epochs} epochs, "
        f"device {args.device}, {ref['threads']} torch threads"
    )
    header = f"{'variant':<22}{'s/epoch':>10}{'speed-up':>10}{'peak MiB':>10}{'mem ratio':>10}{'val cc_norm':>13}"
    cuda = args.device.startswith("cuda")
    if cuda:
        header += f"{'GPU peak MiB':>14}"
    print(header)
    ref_time = statistics.mean(ref["times"][1:]) if len(ref["times"]) > 1 else ref["times"][0]
    for variant, result in results.items():
        seconds = statistics.mean(result["times"][1:]) if len(result["times"]) > 1 else result["times"][0]
        line = (
            f"{variant:<22}{seconds:>10.4f}{ref_time / seconds:>9.1f}x{result['peak_bytes'] / 2**20:>10.1f}"
            f"{result['peak_bytes'] / max(ref['peak_bytes'], 1):>10.2f}{result['final_val_cc_norm']:>13.4f}"
        )
        if cuda:
            line += f"{result['cuda_peak_bytes'] / 2**20:>14.1f}"
        print(line)
    print(
        "peak MiB: increase of the process's peak RSS (getrusage ru_maxrss) from data+model ready to the end of "
        "training, loaders included; s/epoch: mean over epochs 2..E, validation included."
    )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"sizes": SIZES, "epochs": args.epochs, "device": args.device, "results": results}, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
