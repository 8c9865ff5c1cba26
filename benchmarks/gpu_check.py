"""GPU check: the population epoch, the ridge fit and a deep model on one device, with times and quality.

One script to run once whenever a GPU machine is at hand (never in CI)::

    python benchmarks/gpu_check.py                   # CUDA, lab-scale sizes
    python benchmarks/gpu_check.py --bf16            # also the deep model under bf16 autocast
    python benchmarks/gpu_check.py --device cpu --quick   # the same checks, small, on the CPU: seconds

It prints, for the chosen device:

1. **population epoch**: ``"ln"`` on N = 400 neurons, 64 bands, 20 lags, 40
   stimuli of 2,000 bins, 10 repeats (``benchmarks/bench_epoch.py``'s data):
   seconds per epoch, the bare forward + backward of the same batches, their
   ratio, and the validation ``cc_norm`` and training loss after the epochs;
2. **ridge**: ``solver.init("ridge")`` on ``benchmarks/bench_ridge.py``'s
   speech-sized data (128 bands x 30 lags, 8 training stimuli, N = 500):
   fit seconds and the median held-out correlation on its 2 test stimuli;
3. **multi-session**: an ``"nrf"`` core shared by 8 sessions of 50 neurons
   (``synthetic_multisession`` on moving ripples, 20 stimuli of 1,000 bins
   each), seconds per epoch and median test ``cc_norm``, then a ninth
   session's readout alone on that core (``train="readout"``) and its
   median test ``cc_norm``;
4. **deep model**: ``"cnn2d"`` on the epoch data (fewer neurons), seconds per
   epoch and validation ``cc_norm``, in float32 and, with ``--bf16``, under
   ``torch.autocast(dtype=torch.bfloat16)``.

The quality figures are the ones the CPU benchmarks print for the same data,
so a device run can be set beside a CPU run (``--device cpu``).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the sibling benchmark scripts

import bench_epoch  # noqa: E402
import bench_ridge  # noqa: E402

EPOCH = dict(bench_epoch.FULL)
EPOCH_QUICK = dict(neurons=32, bands=16, lags=10, stimuli=10, bins=200, repeats=4)
RIDGE = dict(n_freqs=128, n_lags=30, n_stims=10, min_len=4500, max_len=5500, neurons=500)
RIDGE_QUICK = dict(n_freqs=12, n_lags=6, n_stims=10, min_len=200, max_len=300, neurons=10)
# the shared nrf core needs tens of epochs (4 leave it near cc_norm 0 on CPU and GPU alike)
MULTI = dict(sessions=8, neurons=50, stimuli=20, bins=1000, bands=32, lags=15, epochs=40)
MULTI_QUICK = dict(sessions=2, neurons=6, stimuli=6, bins=120, bands=8, lags=6, epochs=15)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def split(data, n_stimuli):
    n_valid = max(1, n_stimuli // 5)
    return data.subset(range(n_stimuli - n_valid)), data.subset(range(n_stimuli - n_valid, n_stimuli))


def gradient_fit(model_name, data, sizes, device, epochs, autocast=None, **model_options):
    """Fit ``model_name`` with the population solver: ``(seconds per epoch (after the first), solver)``."""
    import strfsolver
    from strfsolver.data import make_loader

    train_set, valid_set = split(data, sizes["stimuli"])
    train = make_loader(train_set, batch_size=4, shuffle=True, seed=0, device=device)
    valid = make_loader(valid_set, batch_size=4, device=device)
    strfsolver.set_random_seed(0)
    model = strfsolver.models.init(model_name, n_freqs=sizes["bands"], n_lags=sizes["lags"], n_neurons=sizes["neurons"], **model_options).to(device)
    solver = strfsolver.solver.init("population", model=model, patience=None, progress=False)
    with autocast if autocast is not None else contextlib.nullcontext():
        solver.fit(train, valid, max_epochs=epochs)
    seconds = [row["seconds"] for row in solver.log[1:]] or [solver.log[0]["seconds"]]
    return statistics.median(seconds), solver, train_set


def profile_epochs(train_set, valid_set, sizes, device, epochs=3, rows=15):
    """Where an epoch's time goes beyond the model's passes: ``torch.profiler`` over a whole fit of
    ``epochs`` epochs (validation included), the top operators by self CPU time (on a GPU, the
    host's launch and sync overhead shows there) and the number of host syncs (``.item()`` and such)."""
    import strfsolver
    from strfsolver.data import make_loader
    from torch.profiler import ProfilerActivity, profile

    strfsolver.set_random_seed(0)
    model = strfsolver.models.init("ln", n_freqs=sizes["bands"], n_lags=sizes["lags"], n_neurons=sizes["neurons"]).to(device)
    solver = strfsolver.solver.init("population", model=model, patience=None, progress=False)
    train = make_loader(train_set, batch_size=4, shuffle=True, seed=0, device=device)
    valid = make_loader(valid_set, batch_size=4, device=device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        solver.fit(train, valid, max_epochs=epochs)
        synchronize(device)
    averages = prof.key_averages()
    syncs = sum(e.count for e in averages if e.key in ("aten::_local_scalar_dense", "cudaStreamSynchronize", "cudaDeviceSynchronize"))
    print(f"   profile of a {epochs}-epoch fit ({len(train)} training and {len(valid)} validation batches per epoch): "
          f"{syncs} host syncs\n{averages.table(sort_by='self_cpu_time_total', row_limit=rows)}", flush=True)


def check_epoch(device, quick, epochs, profile=False):
    sizes = EPOCH_QUICK if quick else EPOCH
    data = bench_epoch.make_data(**sizes)
    per_epoch, solver, train_set = gradient_fit("ln", data, sizes, device, epochs)
    from strfsolver.data import make_loader

    batches = bench_epoch.ready_batches(make_loader(train_set, batch_size=4, device=device), device)
    twin = copy.deepcopy(solver.model)
    bench_epoch.bare_pass(twin, batches)  # warm-up (kernel selection on a GPU)
    bare = statistics.median(bench_epoch.bare_pass(twin, batches) for _ in range(3))
    last = solver.log[-1]
    if profile:
        profile_epochs(train_set, split(data, sizes["stimuli"])[1], sizes, device)
    print(f"1. population epoch, ln, N={sizes['neurons']}, F={sizes['bands']}, L={sizes['lags']}, {sizes['stimuli']} x {sizes['bins']} bins, "
          f"R={sizes['repeats']}: {per_epoch:.3f} s / epoch, bare forward+backward {bare:.3f} s, ratio {per_epoch / bare:.2f}; "
          f"after {len(solver.log)} epochs val cc_norm {last['val_cc_norm']:.4f}, train loss {last['train_loss']:.5f}", flush=True)


def check_ridge(device, quick):
    import strfsolver
    from strfsolver.data import NeuralDataset, make_loader

    sizes = dict(RIDGE_QUICK if quick else RIDGE)
    n_neurons = sizes.pop("neurons")
    stims, responses = bench_ridge.make_data(n_neurons, **sizes)
    n_train = len(stims) - bench_ridge.N_TEST
    loader = make_loader(NeuralDataset(stims[:n_train], responses[:n_train], dt_ms=10.0), batch_size=2, device=device)
    model = strfsolver.models.init("linear", n_freqs=sizes["n_freqs"], n_lags=sizes["n_lags"], n_neurons=n_neurons).to(device)
    solver = strfsolver.solver.init("ridge", model=model, cv=bench_ridge.CV, progress=False)
    synchronize(device)
    start = time.perf_counter()
    solver.fit(loader)
    synchronize(device)
    seconds = time.perf_counter() - start
    predictions = [p[:, 0].detach().cpu().numpy() for p in solver.transform(stims[n_train:])]
    cc = bench_ridge.test_correlations(predictions, [r[:, 0].numpy() for r in responses[n_train:]])
    print(f"2. ridge, N={n_neurons}, D={sizes['n_freqs'] * sizes['n_lags']}, {n_train} training stimuli, cv={bench_ridge.CV}, "
          f"{len(solver.alpha_grid_)} alphas: fit {seconds:.2f} s; median test cc {float(np.nanmedian(cc)):.4f}, "
          f"median relative alpha {float(solver.relative_alphas_.median()):.3g}", flush=True)


def check_multi_session(device, quick):
    """A shared ``"nrf"`` core over several sessions (``synthetic_multisession`` on moving ripples), then
    one new session's readout alone on that core; seconds per epoch and median test ``cc_norm``."""
    import strfsolver
    from strfsolver.data import session_loaders, split_sessions, synthetic_multisession

    sizes = MULTI_QUICK if quick else MULTI
    epochs = sizes["epochs"]
    names = [f"s{i}" for i in range(sizes["sessions"] + 1)]
    truth = synthetic_multisession(n_neurons={name: sizes["neurons"] for name in names}, n_stims=sizes["stimuli"],
                                   n_subunits=4, n_freqs=sizes["bands"], n_lags=sizes["lags"], n_times=sizes["bins"],
                                   dt_ms=10.0, stimuli="ripples", seed=0)
    fitted, new = {name: truth.datasets[name] for name in names[:-1]}, names[-1]
    train, valid, test = split_sessions(fitted, [0.6, 0.2, 0.2], seed=0)
    strfsolver.set_random_seed(0)
    model = strfsolver.models.init("nrf", n_freqs=sizes["bands"], n_lags=sizes["lags"], n_hidden=4, hidden_activation="relu",
                                   n_neurons={name: data.n_neurons for name, data in fitted.items()}).to(device)
    solver = strfsolver.solver.init("multi-session", model=model, patience=None, progress=False)
    loaders = lambda part, **options: session_loaders(part, batch_size=2, device=device, **options)  # noqa: E731
    solver.fit(loaders(train, shuffle=True), loaders(valid), max_epochs=epochs)
    shared_epochs = len(solver.log)
    seconds = statistics.median(row["seconds"] for row in solver.log[1:]) if len(solver.log) > 1 else solver.log[0]["seconds"]
    scores = solver.validation(loaders(test))
    shared = float(torch.cat([values["cc_norm"] for values in scores.values()]).nanmedian())
    new_train, new_valid, new_test = split_sessions({new: truth.datasets[new]}, [0.6, 0.2, 0.2], seed=0)
    model.add_session(new, n_neurons=truth.datasets[new].n_neurons)
    model.to(device)
    solver.fit(loaders(new_train, shuffle=True), loaders(new_valid), train="readout", max_epochs=epochs)
    transfer = float(solver.validation(loaders(new_test))[new]["cc_norm"].nanmedian())
    print(f"3. multi-session, nrf core, {sizes['sessions']} sessions x {sizes['neurons']} neurons, {sizes['stimuli']} ripple stimuli "
          f"of {sizes['bins']} bins each, {shared_epochs} epochs (of {epochs} at most): {seconds:.3f} s / epoch, median test cc_norm {shared:.4f}; a new session's readout alone "
          f"on that core: median test cc_norm {transfer:.4f}", flush=True)


def check_deep(device, quick, epochs, bf16):
    sizes = dict(EPOCH_QUICK if quick else EPOCH, neurons=16 if quick else 100)
    data = bench_epoch.make_data(**sizes)
    runs = [("float32", None)]
    if bf16:
        runs.append(("bf16 autocast", torch.autocast(device_type=device.type, dtype=torch.bfloat16)))
    for label, autocast in runs:
        per_epoch, solver, _ = gradient_fit("cnn2d", data, sizes, device, epochs, autocast=autocast)
        print(f"4. deep model cnn2d, N={sizes['neurons']}, {label}: {per_epoch:.3f} s / epoch; after {len(solver.log)} epochs "
              f"val cc_norm {solver.log[-1]['val_cc_norm']:.4f}", flush=True)
    if not bf16:
        print("4. (bf16 autocast: add --bf16)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds on a CPU)")
    parser.add_argument("--bf16", action="store_true", help="also run the deep model under bf16 autocast")
    parser.add_argument("--epochs", type=int, default=None, help="epochs of the population and deep-model fits (default 4; quick 2); the multi-session check runs its own (40; quick 15)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--profile", action="store_true", help="also profile the population epoch's training steps (torch.profiler)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["epoch", "ridge", "multi-session", "deep"])
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"--device {args.device}: CUDA is not available on this machine (torch {torch.__version__}); "
              "run with --device cpu to check the script here", file=sys.stderr)
        return 2
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    epochs = args.epochs or (2 if args.quick else 4)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"device {device} ({name}), torch {torch.__version__}, python {platform.python_version()}, "
          f"{torch.get_num_threads()} CPU threads, {'quick' if args.quick else 'full'} sizes", flush=True)
    if "epoch" not in args.skip:
        check_epoch(device, args.quick, epochs, profile=args.profile)
    if "ridge" not in args.skip:
        check_ridge(device, args.quick)
    if "multi-session" not in args.skip:
        check_multi_session(device, args.quick)
    if "deep" not in args.skip:
        check_deep(device, args.quick, epochs, args.bf16)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
