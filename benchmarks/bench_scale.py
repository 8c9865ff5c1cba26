"""Benchmark: memory and time of a fit as neurons, repeats and hours of stimulus grow.

Data: per stimulus, a spectrogram-like stimulus (F bands of smoothed noise,
exponentiated) and N neurons whose rates are softplus mixtures of 8 random
smooth STRFs' drives, plus R repeats of Gaussian trial noise (float32). Every
stimulus is drawn from its own seed, one at a time, so a dataset of any size
is built piecewise (``NeuralDataset.concat`` of one-stimulus parts, or a
``FolderWriter``) and the repeats are never all in memory unless the mode
keeps them.

Modes: ``summary`` (``repeats="summary"`` in memory), ``all`` (every repeat
in memory, the float32 parts used in place), ``disk`` (every repeat in a
dataset folder, read per batch) and ``disk-summary`` (a summarised folder).

Each case runs in its own process: an ``"ln"`` model (F bands, L lags), the
``"population"`` solver, a fifth of the stimuli for validation, ``--epochs``
epochs. Figures:

- **data GB**: the repeats' bytes as recorded (N x R x T x 4), what an
  all-repeats dataset would hold;
- **ref MB**: the PSTH + stimuli bytes (N x T x 4 + F x T x 4), the yardstick
  of the issue's targets;
- **held MB**: the bytes of the tensors the dataset keeps in memory;
- **dataset MB** / **x ref**: the rise of the resident set from "a tiny fit
  done" (libraries imported, one-time set-up made) to "dataset built", freed
  heap handed back (``malloc_trim``): what the dataset costs the process;
- **fit peak MB** / **x ref**: the peak resident set during the fit (the peak
  is reset once the dataset is built, ``/proc/self/clear_refs``) minus the
  resident set before the dataset: dataset, loaders, model and every temporary;
- **s/epoch**: median seconds of an epoch (training and validation);
- **val cc_norm**: the mean over neurons after the last epoch.

``--done`` runs the issue's case (400 neurons x 20 repeats x 40 stimuli of
2,000 bins, 64 bands x 20 lags) summarised and with all repeats, the same
seed, split and batch order, and prints the largest per-neuron difference of
validation ``cc_norm``. ``--lab`` runs 1,000 neurons x 20 repeats x 1 hour at
10 ms (60 stimuli of 6,000 bins; 29 GB of repeats) summarised.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _status(key: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(key + ":"))


def _stimulus(seed: int, index: int, freqs: int, bins: int, neurons: int, repeats: int, lags: int):
    """One stimulus and its repeats, drawn from (seed, index) alone."""
    import torch

    rng = np.random.default_rng([seed, index])
    noise = rng.standard_normal((freqs, bins + 8), dtype=np.float32)
    kernel = np.ones(8, dtype=np.float32) / 8  # smooth over time: spectrogram-like envelopes
    smooth = np.stack([np.convolve(band, kernel, mode="valid")[:bins] for band in noise])
    stim = np.exp(0.8 * smooth).astype(np.float32)
    stim = (stim - stim.mean()) / stim.std()
    # 8 smooth STRFs (the same for every stimulus: seeded by `seed` alone); neurons mix their drives
    basis_rng = np.random.default_rng([seed, 10**9])
    strfs = basis_rng.standard_normal((8, freqs, lags)).astype(np.float32)
    strfs *= np.exp(-np.arange(lags) / (lags / 3))[None, None].astype(np.float32)
    mixing = basis_rng.standard_normal((neurons, 8)).astype(np.float32) / np.sqrt(8 * freqs * lags / 3)
    drive = torch.nn.functional.conv1d(torch.nn.functional.pad(torch.from_numpy(stim)[None], (lags - 1, 0)),
                                       torch.from_numpy(strfs[:, :, ::-1].copy()))[0].numpy()
    rate = np.logaddexp(0, mixing @ drive + 0.5).astype(np.float32)  # softplus, (N, T)
    response = rng.standard_normal((neurons, repeats, bins), dtype=np.float32)
    response *= 0.8
    response += rate[:, None]
    return stim, response


def _build(case: dict, folder: str):
    from strfsolver.data import FolderWriter, NeuralDataset, open_folder

    mode = case["mode"]
    draw = lambda i: _stimulus(case["seed"], i, case["freqs"], case["bins"], case["neurons"], case["repeats"], case["lags"])  # noqa: E731
    if mode.startswith("disk"):
        with FolderWriter(folder, dt_ms=10.0, repeats="summary" if mode == "disk-summary" else "all") as writer:
            for i in range(case["stims"]):
                writer.add(*draw(i))
        return open_folder(folder)
    parts = []
    for i in range(case["stims"]):  # one stimulus' repeats at a time: summarised, or kept in place
        stim, response = draw(i)
        parts.append(NeuralDataset([stim], [response], dt_ms=10.0, repeats=mode))
        del stim, response
    return NeuralDataset.concat(parts)


def _release() -> None:
    """Collect garbage and hand freed heap pages back to the system, so the resident set counts live data."""
    import ctypes

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc: the figures then include the allocator's cache
        pass


def _fit(case: dict, dataset, epochs: int):
    import torch

    import strfsolver
    from strfsolver.data import make_loader

    train, valid = dataset.split(0.8, seed=0)
    torch.manual_seed(case["seed"])
    model = strfsolver.models.init("ln", n_neurons=case["neurons"], n_freqs=case["freqs"], n_lags=case["lags"])
    solver = strfsolver.solver.init("population", model=model, max_epochs=epochs, patience=100, progress=False)
    solver.fit(make_loader(train, batch_size=case["batch_size"], shuffle=True, seed=0), make_loader(valid, batch_size=case["batch_size"]))
    return solver


def _held_bytes(dataset) -> int:
    """Bytes of the tensors an in-memory dataset keeps (0 on disk)."""
    if dataset.on_disk:
        return sum(field.numel() * field.element_size() for field in dataset.repeat_statistics) if dataset.repeats == "summary" else 0
    arrays = list(dataset.stims) + (dataset.psths if dataset.repeats == "summary" else list(dataset.responses))
    stats = list(dataset.repeat_statistics) if dataset.repeats == "summary" else []
    return sum(t.numel() * t.element_size() for t in arrays + stats)


def run_case(case: dict) -> dict:
    """One case in this process; returns its figures."""
    import warnings

    import torch

    warnings.simplefilter("ignore")
    torch.set_num_threads(case["threads"])
    with tempfile.TemporaryDirectory() as tmp:
        # a tiny fit first: lazy imports and one-time set-up are not the data's memory or the epochs' time
        _fit(dict(case, neurons=case["neurons"]), _build(dict(case, stims=5, bins=200), os.path.join(tmp, "warm")), 1)
        _release()
        before = _status("VmRSS")
        start = time.perf_counter()
        dataset = _build(case, os.path.join(tmp, "data"))
        build_seconds = time.perf_counter() - start
        _release()
        dataset_bytes = _status("VmRSS") - before
        held = _held_bytes(dataset)
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # the peak from here on: the fit's, not the build's
        start = time.perf_counter()
        solver = _fit(case, dataset, case["epochs"])
        fit_seconds = time.perf_counter() - start
        peak = _status("VmHWM") - before
    bins = case["stims"] * case["bins"]
    return {
        "case": case,
        "data_bytes": case["neurons"] * case["repeats"] * bins * 4,
        "ref_bytes": (case["neurons"] + case["freqs"]) * bins * 4,
        "dataset_bytes": dataset_bytes,
        "held_bytes": held,
        "fit_peak_bytes": peak,
        "build_seconds": build_seconds,
        "fit_seconds": fit_seconds,
        "epoch_seconds": float(np.median([row["seconds"] for row in solver.log])),
        "val_cc_norm": float(solver.log[-1]["val_cc_norm"]),
        "val_cc_norm_neurons": solver.last_validation_["cc_norm"].tolist(),
    }


def _in_subprocess(case: dict) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parent)] + sys.path))
    run = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--case", json.dumps(case)],
                         capture_output=True, text=True, env=env)
    if run.returncode != 0:
        raise RuntimeError(f"case {case} failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


HEADER = ("| N | R | stimuli x bins | mode | data GB | ref MB | held MB | dataset MB | x ref | fit peak MB | x ref | s/epoch | val cc_norm |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def _row(result: dict) -> str:
    case, mb = result["case"], 2.0**20
    ref = result["ref_bytes"]
    return (f"| {case['neurons']} | {case['repeats']} | {case['stims']} x {case['bins']} | {case['mode']} | "
            f"{result['data_bytes'] / 2**30:.2f} | {ref / mb:.0f} | {result['held_bytes'] / mb:.0f} | {result['dataset_bytes'] / mb:.0f} | "
            f"{result['dataset_bytes'] / ref:.2f} | {result['fit_peak_bytes'] / mb:.0f} | {result['fit_peak_bytes'] / ref:.2f} | "
            f"{result['epoch_seconds']:.2f} | {result['val_cc_norm']:.4f} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: on a shared machine, 2 threads spin against each other)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4, help="stimuli per batch (the model's per-step temporaries grow with it)")
    parser.add_argument("--done", action="store_true", help="the issue's 400 x 20 x 40 x 2,000 case, summarised and all repeats")
    parser.add_argument("--lab", action="store_true", help="1,000 neurons x 20 repeats x 1 hour at 10 ms, summarised")
    parser.add_argument("--modes", nargs="+", default=["summary", "all"], choices=["summary", "all", "disk", "disk-summary"],
                        help="the modes of --done (the comparison needs summary and all)")
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return 0
    base = dict(neurons=100, repeats=10, stims=20, bins=1000, freqs=32, lags=10, mode="summary", epochs=args.epochs,
                batch_size=args.batch_size, seed=0, threads=args.threads)
    if args.done:
        cases = [dict(base, neurons=400, repeats=20, stims=40, bins=2000, freqs=64, lags=20, mode=mode) for mode in args.modes]
    elif args.lab:
        cases = [dict(base, neurons=1000, repeats=20, stims=60, bins=6000, freqs=32, lags=20, mode="summary")]
    else:
        cases = ([dict(base, neurons=n) for n in (100, 200, 400)] + [dict(base, repeats=r) for r in (5, 20)]
                 + [dict(base, stims=s) for s in (40, 80)] + [dict(base, mode=m) for m in ("all", "disk", "disk-summary")])
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {args.threads} torch threads, python {platform.python_version()}; "
          f"batches of {args.batch_size} stimuli, {args.epochs} epochs")
    print(HEADER)
    results = []
    for case in cases:
        results.append(_in_subprocess(case))
        print(_row(results[-1]), flush=True)
    if args.done and len(results) == 2:
        summary, full = (np.asarray(r["val_cc_norm_neurons"], dtype=float) for r in results)
        ref = results[0]["ref_bytes"]
        print(f"\nsummary vs all repeats: max |d val cc_norm| over neurons = {np.nanmax(np.abs(summary - full)):.2e} "
              f"(target <= 1e-4); summarised dataset {results[0]['dataset_bytes'] / ref:.2f}x the PSTH + stimuli "
              f"(target <= 1.3x), fit peak {results[0]['fit_peak_bytes'] / ref:.2f}x (target <= 2.5x); all repeats: "
              f"dataset {results[1]['dataset_bytes'] / ref:.2f}x, fit peak {results[1]['fit_peak_bytes'] / ref:.2f}x.")
    if args.lab:
        r = results[0]
        print(f"\nbuilt in {r['build_seconds']:.0f} s, {len(r['val_cc_norm_neurons'])} neurons trained {args.epochs} epochs "
              f"in {r['fit_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
