"""Benchmark: one ``"population"`` epoch of an ``"ln"`` model against the bare convolution it trains.

At lab scale (default: N = 400 neurons, F = 64 bands, L = 20 lags, 40
stimuli of 2,000 bins split 32 training / 8 validation, R = 10 repeats,
batches of 4) it times, alternately in the same process:

* **bare**: the model's forward and backward passes over the epoch's training
  batches, on tensors made ready beforehand (a plain mean squared error on
  the PSTH, no masking, no metric, no optimizer): the floor of an epoch;
* **epoch**: one epoch of ``solver.init("population", model=...).fit(train,
  valid)``: training steps, validation with the streamed metrics, early
  stopping bookkeeping (``solver.log[e]["seconds"]``).

Rounds alternate (epoch, bare, epoch, bare, ...): a logger called at the end
of every epoch runs the bare pass on a copy of the model, so both see the
same load of a shared machine. The table gives the median and the range over
rounds and the ratio epoch / bare (target: at most 2). ``--profile`` then
runs one more epoch under ``cProfile`` and splits its time into the model's
forward and backward, the loss, the optimizer, batch preparation, the
loader, validation (and within it the model and the metrics) and the rest.

Run (from the repository root)::

    python benchmarks/bench_epoch.py                      # lab scale, about 2 minutes on 2 cores
    python benchmarks/bench_epoch.py --quick              # N = 64, 16 stimuli of 500 bins: seconds
    python benchmarks/bench_epoch.py --profile --rounds 3
    python benchmarks/bench_epoch.py --device cuda        # on a GPU (benchmarks/gpu_check.py runs it too)
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import platform
import pstats
import statistics
import time
from typing import Dict, List

import torch

FULL = dict(neurons=400, bands=64, lags=20, stimuli=40, bins=2000, repeats=10)
QUICK = dict(neurons=64, bands=32, lags=15, stimuli=16, bins=500, repeats=5)


def make_data(neurons: int, bands: int, lags: int, stimuli: int, bins: int, repeats: int, seed: int = 0):
    """``NeuralDataset`` of smooth positive stimuli and Poisson repeats of an LN population."""
    from strfsolver.data import NeuralDataset

    g = torch.Generator().manual_seed(seed)
    smooth = torch.hann_window(9, periodic=False).view(1, 1, 1, -1)
    stims = torch.randn(stimuli, 1, bands, bins + 8, generator=g)
    stims = torch.nn.functional.conv2d(stims, smooth / smooth.sum())[:, 0].exp()  # (S, F, T), log-normal
    strf = torch.randn(neurons, bands, lags, generator=g) * torch.exp(-torch.arange(lags) / 4.0) / (bands * lags) ** 0.5
    responses = []
    for s in range(stimuli):
        drive = torch.nn.functional.conv1d(torch.nn.functional.pad(stims[s : s + 1], (lags - 1, 0)), strf.flip(-1))[0]
        rate = torch.nn.functional.softplus(drive / drive.std() - 1.0)
        responses.append(torch.poisson(rate.unsqueeze(1).expand(-1, repeats, -1).contiguous(), generator=g))
    return NeuralDataset(list(stims), responses, dt_ms=10.0)


def bare_pass(model: torch.nn.Module, batches: List[tuple]) -> float:
    """Seconds of forward + backward of ``model`` over ready ``(stims, psth)`` batches."""
    start = time.perf_counter()
    for stims, target in batches:
        model.zero_grad(set_to_none=True)
        loss = (model(stims) - target).square().mean()
        loss.backward()
    if stims.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def ready_batches(loader, device) -> List[tuple]:
    """The training loader's batches of one epoch as ``(stims, psth)`` with NaN bins set to 0."""
    out = []
    for batch in loader.psth_view():
        out.append((batch["stims"].to(device), torch.nan_to_num(batch["responses"]).to(device)))
    return out


#: the phases of the profile: (label, function, calling function or None, file of the function);
#: the time is the function's cumulative time, counted only under that caller when one is named
PHASES = [
    ("training (all)", "__call__", None, "solver/fit_loop.py"),
    ("  loader: PSTH batches", "batch", None, "data/loader.py"),
    ("  batch preparation (device, NaN mask)", "prepare_batch", None, "solver/batches.py"),
    ("  model forward", "_inference", "forward", "solver/population.py"),
    ("  loss", "_loss", None, "solver/base.py"),
    ("  backward", "backward", None, "torch/_tensor.py"),
    ("  optimizer step", "_overflow", None, "solver/update.py"),
    ("  finite checks", "all_finite", None, "utils/checks.py"),
    ("validation (all)", "evaluate", None, "solver/evaluation.py"),
    ("  model forward ", "_inference", "evaluate", "solver/population.py"),
    ("  per-neuron loss", "neuron_losses", "evaluate", "solver/neurons.py"),
    ("  metrics (streamed statistics)", "update", None, "metrics/accumulator.py"),
    ("best-state copy", "copy_state", None, "solver/loop.py"),
]


def profile_epoch(solver, train, valid) -> Dict[str, float]:
    """Epoch 1 of a 2-epoch fit under cProfile, split into :data:`PHASES`: ``{label: seconds}``.

    A logger switches the profiler on at the end of epoch 0 (after the
    padding and the caches are built) and off at the end of epoch 1.
    """
    profiler = cProfile.Profile(time.process_time)  # CPU time: other jobs on a shared machine do not count

    def switch(row):
        (profiler.enable if row["epoch"] == 0 else profiler.disable)()

    solver.loggers = [switch]
    solver.fit(train, valid, max_epochs=2)
    stats = pstats.Stats(profiler).stats  # {(file, line, name): (cc, nc, tt, ct, callers)}

    def seconds(name, caller, file):
        total = 0.0
        for (path, _, function), (_, _, _, ct, callers) in stats.items():
            if function != name or not path.endswith(file):
                continue
            if caller is None:
                total += ct
            else:
                total += sum(entry[3] for key, entry in callers.items() if key[2] == caller)
        return total

    out = {label: seconds(*spec) for label, *spec in PHASES}
    out["epoch (all, CPU)"] = sum(entry[2] for entry in stats.values())
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: seconds")
    for key in FULL:
        parser.add_argument(f"--{key}", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5, help="epochs timed, each followed by a bare pass")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--profile", action="store_true", help="profile one more epoch")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    import strfsolver
    from strfsolver.data import make_loader

    sizes = dict(QUICK if args.quick else FULL)
    sizes.update({k: getattr(args, k) for k in FULL if getattr(args, k) is not None})
    device = torch.device(args.device)
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
          f"python {platform.python_version()}, device {device}")
    print("sizes: " + ", ".join(f"{k}={v}" for k, v in sizes.items()) + f", batch_size={args.batch_size}", flush=True)
    data = make_data(**sizes)
    n_valid = max(1, sizes["stimuli"] // 5)
    train_set, valid_set = data.subset(range(sizes["stimuli"] - n_valid)), data.subset(range(sizes["stimuli"] - n_valid, sizes["stimuli"]))
    train = make_loader(train_set, batch_size=args.batch_size, shuffle=True, seed=0, device=device)
    valid = make_loader(valid_set, batch_size=args.batch_size, device=device)
    strfsolver.set_random_seed(0)
    model = strfsolver.models.init("ln", n_freqs=sizes["bands"], n_lags=sizes["lags"], n_neurons=sizes["neurons"]).to(device)
    solver = strfsolver.solver.init("population", model=model, patience=None, progress=False)
    batches = ready_batches(make_loader(train_set, batch_size=args.batch_size, device=device), device)
    twin = copy.deepcopy(model)  # the bare pass trains nothing: it must not touch the solver's model
    rounds: List[Dict[str, float]] = []
    clock = {"cpu": time.process_time()}

    def bare_round(row):
        """Called at the end of every epoch: the epoch's CPU time so far, then one bare pass."""
        cpu = time.process_time()
        epoch_cpu = cpu - clock["cpu"]
        wall = bare_pass(twin, batches)
        rounds.append({"epoch": row["seconds"], "epoch_cpu": epoch_cpu, "bare": wall, "bare_cpu": time.process_time() - cpu})
        clock["cpu"] = time.process_time()

    solver.loggers = [bare_round]
    start = time.perf_counter()
    torch.optim.AdamW([torch.zeros(1, requires_grad=True)])  # a process's first optimizer imports torch._dynamo: once, not per fit
    print(f"first optimizer of the process (imports torch._dynamo): {time.perf_counter() - start:.2f} s", flush=True)
    start = time.perf_counter()
    solver.fit(train, valid, max_epochs=args.rounds + 1)  # epoch 0 warms up (pads the loaders, builds the caches)
    outside = time.perf_counter() - start - sum(row["seconds"] for row in solver.log) - sum(r["bare"] for r in rounds)
    first, rounds = rounds[0], rounds[1:]
    column = lambda key: [r[key] for r in rounds]  # noqa: E731
    fmt = lambda xs: f"{statistics.median(xs):.3f} ({min(xs):.3f}-{max(xs):.3f})"  # noqa: E731
    print(f"\n{len(rounds)} rounds, median (min-max); wall-clock seconds, and CPU seconds of this process (less "
          "sensitive to other jobs on a shared machine):")
    print(f"  population epoch (train + validation)  wall {fmt(column('epoch'))} s   CPU {fmt(column('epoch_cpu'))} s")
    print(f"  bare forward + backward (training)     wall {fmt(column('bare'))} s   CPU {fmt(column('bare_cpu'))} s")
    print(f"  ratio epoch / bare                     wall {fmt([r['epoch'] / r['bare'] for r in rounds])}     "
          f"CPU {fmt([r['epoch_cpu'] / r['bare_cpu'] for r in rounds])}   target <= 2")
    print(f"  final val cc_norm {solver.log[-1]['val_cc_norm']:.6f}, train loss {solver.log[-1]['train_loss']:.6f}")
    print(f"  once per fit: first epoch {first['epoch']:.3f} s (PSTHs of the training set, validation summaries); outside the "
          f"epochs {outside:.3f} s (data checks, standardization, the end-of-fit diagnosis on the training set's repeats)")
    if args.profile:
        phases = profile_epoch(solver, train, valid)
        print("\nprofile of one epoch (cProfile, cumulative CPU seconds of this process; profiling slows it down):")
        for name, seconds in phases.items():
            print(f"  {name:<44}{seconds:8.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
