"""Benchmark: the "ridge" solver against scikit-learn and himalaya on a speech-sized STRF fit.

The data have the size of a typical speech recording: F = 128 bands, L = 30
lags (D = 3840 coefficients per neuron), 10 stimuli of 4,500-5,500 bins
(ragged), N = 10 and N = 500 neurons (two settings, the same stimuli).
Stimuli are spectrogram-like: white noise smoothed over time and bands by a
2-D Gaussian, standardized and exponentiated (positive, log-normal). Each
neuron has a random smooth STRF (smoothed noise under a Gaussian envelope
over bands and a gamma-like envelope over lags); its response is the causal
STRF convolution of the stimulus (zero history before t = 0), scaled to unit
variance, plus Gaussian noise of unit variance in the PSTH (SNR about 1).
Stimuli 0-7 are the training set, 8-9 the test set.

Methods, each fitting the same 8 training stimuli:

1. ``strfsolver``: ``solver.init("ridge", model=models.init("linear", ...),
   relative_alphas=GRID, cv=4)`` fitted on ``make_loader(train, batch_size=2)``
   (folds: contiguous pairs of stimuli); test predictions with
   ``solver.transform``. ``GRID`` is :data:`strfsolver.ridge.DEFAULT_RELATIVE_ALPHAS`;
   the absolute grid this fit used (``solver.alpha_grid_``) is passed to all
   the other methods.
2. ``sklearn RidgeCV (LOO)``: ``RidgeCV(alphas=grid, alpha_per_target=True)``
   on the explicit lagged design (stimuli concatenated, each with its own zero
   history): scikit-learn's efficient leave-one-*bin*-out, scored by squared
   error, so its alphas differ.
3. ``sklearn Ridge grid search``: for each alpha of the grid and each of the
   same 4 stimulus folds, ``Ridge(alpha)`` fitted on the other 3 folds and
   scored by the held-out Pearson correlation per neuron; each neuron's alpha
   is the best mean over folds (ties to the larger alpha, as strfsolver);
   one refit on all 8 stimuli per distinct chosen alpha. This is the
   apples-to-apples reference of method 1.
4. ``himalaya RidgeCV``: ``himalaya.ridge.RidgeCV`` with the torch backend,
   the same grid, the same 4 folds (bin indices) and correlation scoring
   (``himalaya.scoring.correlation_score``), on the explicit design;
   ``n_alphas_batch=1`` (all 15 alphas at once need about 50 GB). It runs
   under a time limit; when it does not finish, the table says how many of
   its 60 (fold, alpha) scorings it completed in that time.

Each method runs in its own subprocess (``torch.set_num_threads`` and the
BLAS thread variables set to ``--threads``). **fit s** is the wall-clock
time from the training data in memory (tensors) to the fitted model:
building the explicit design for 2-4, the dataset and loader for 1, and the
whole ``solver.fit`` (which also scores the training set). **peak MiB** is
the process's peak resident set (``getrusage(RUSAGE_SELF).ru_maxrss``) at
its end minus that of a process that only imported the same libraries and
generated the data. **test cc** is the median over neurons of the Pearson
correlation of the prediction with the PSTH over the 2 test stimuli;
**max |dcc|** the largest per-neuron difference from method 3, **same alpha**
the share of neurons whose alpha equals method 3's. The design matrix of the
training data in float64 is printed for scale (the memory target: the
solver's peak below it). A second table splits the solver's fit into its
phases (statistics, alpha search, refit, the rest of ``fit``), timed by
wrapping the functions it calls.

Targets: test cc within 0.002 of the grid search; >= 10x faster than both
scikit-learn methods; faster than himalaya; peak memory below one design.

Run (from the repository root)::

    python benchmarks/bench_ridge.py --quick          # small sizes, under a minute
    python benchmarks/bench_ridge.py                  # full size, 2 threads: 50-60 minutes
    python benchmarks/bench_ridge.py --skip himalaya sklearn-loo   # about 35 minutes

Most of a full run is the scikit-learn grid search (60 fits that each form
X^T X anew: 8-17 minutes per N on a shared 2-core machine) and himalaya's
600 s limit at N = 10. Memory is measured against a baseline whose peak is
its resident size: the data are generated with shifted adds rather than a
``conv1d``/``conv2d``, whose unfolded buffers (1-2 GB at this size) would
raise the baseline's peak above every method's and hide up to that much of
their memory.
    python benchmarks/bench_ridge.py --neurons 10 --himalaya-timeout 1200
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

FULL = dict(n_freqs=128, n_lags=30, n_stims=10, min_len=4500, max_len=5500, neurons=[10, 500], himalaya_timeout=600.0, phases=True)
QUICK = dict(n_freqs=16, n_lags=8, n_stims=10, min_len=400, max_len=600, neurons=[10, 50], himalaya_timeout=30.0, phases=False)
N_TEST = 2
CV = 4
BATCH_SIZE = 2
METHODS = ("strfsolver", "sklearn-loo", "sklearn-grid", "himalaya")
LABELS = {
    "strfsolver": "strfsolver ridge (cv=4)",
    "sklearn-loo": "sklearn RidgeCV (LOO)",
    "sklearn-grid": "sklearn Ridge grid (cv=4)",
    "himalaya": "himalaya RidgeCV (cv=4)",
}


# ---------------------------------------------------------------- data


def _gaussian(sigma: float) -> torch.Tensor:
    """A normalized 1-D Gaussian kernel, radius 3 sigma."""
    radius = max(1, int(round(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def _smooth_noise(shape, sigmas, generator) -> torch.Tensor:
    """White noise of ``shape = (B, H, W)`` smoothed by a separable Gaussian (``sigmas`` along H and W).

    One shifted add per tap, so that the temporaries stay the size of the
    output (a ``conv2d`` would unfold the noise into a buffer one kernel size
    larger, and its peak would hide the methods' memory).
    """
    rows, cols = _gaussian(sigmas[0]), _gaussian(sigmas[1])
    noise = torch.randn(shape[0], shape[1] + rows.numel() - 1, shape[2] + cols.numel() - 1, generator=generator, dtype=torch.float64)
    along = torch.zeros(shape[0], shape[1], noise.shape[2], dtype=torch.float64)
    for i, weight in enumerate(rows.tolist()):
        along += weight * noise[:, i : i + shape[1]]
    del noise
    out = torch.zeros(shape, dtype=torch.float64)
    for j, weight in enumerate(cols.tolist()):
        out += weight * along[:, :, j : j + shape[2]]
    return out


def make_data(n_neurons, n_freqs, n_lags, n_stims, min_len, max_len, seed=0):
    """``stims`` (list of ``(F, T_i)`` float32) and ``responses`` (list of ``(N, 1, T_i)`` float32).

    The stimuli depend on ``seed`` only (the same for every N).
    """
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_len, max_len + 1, (n_stims,), generator=g).tolist()
    stims = []
    for length in lengths:
        z = _smooth_noise((1, n_freqs, length), (2.0, 3.0), g)[0]  # sigmas in bands, bins
        stims.append(torch.exp(0.7 * (z - z.mean()) / z.std()).float())

    g = torch.Generator().manual_seed(seed + 1)
    smooth = _smooth_noise((n_neurons, n_freqs, n_lags), (3.0, 1.5), g)
    bands = torch.arange(n_freqs, dtype=torch.float64).view(1, -1, 1)
    lags = torch.arange(1, n_lags + 1, dtype=torch.float64).view(1, 1, -1)
    centre = torch.rand(n_neurons, 1, 1, generator=g, dtype=torch.float64) * n_freqs
    width = n_freqs / 16 + torch.rand(n_neurons, 1, 1, generator=g, dtype=torch.float64) * n_freqs / 8
    tau = n_lags / 10 + torch.rand(n_neurons, 1, 1, generator=g, dtype=torch.float64) * n_lags / 6
    strf = smooth * torch.exp(-0.5 * ((bands - centre) / width) ** 2) * (lags / tau) * torch.exp(1 - lags / tau)  # (N, F, L)

    drives = []
    for s in stims:  # causal convolution, one product per lag (a conv1d's unfolded buffer would dominate the peak memory)
        padded = torch.nn.functional.pad(s.double(), (n_lags - 1, 0))
        drive = torch.zeros(n_neurons, s.shape[1], dtype=torch.float64)
        for lag in range(n_lags):
            drive += strf[:, :, lag] @ padded[:, n_lags - 1 - lag : n_lags - 1 - lag + s.shape[1]]
        drives.append(drive.float())
    total = sum(d.double().sum(1) for d in drives)
    square = sum(d.double().square().sum(1) for d in drives)
    count = sum(lengths)
    mean = total / count
    std = (square / count - mean.square()).sqrt()
    responses = []
    for d in drives:
        signal = (d.double() - mean.unsqueeze(1)) / std.unsqueeze(1)
        noise = torch.randn(d.shape, generator=g, dtype=torch.float64)
        responses.append((0.5 + signal + noise).float().unsqueeze(1))
    return stims, responses


def test_correlations(predictions, targets) -> np.ndarray:
    """Per-neuron Pearson r over all test bins: lists of ``(N, T_i)`` arrays -> ``(N,)``."""
    pred = np.concatenate([np.asarray(p, dtype=np.float64) for p in predictions], axis=1)
    true = np.concatenate([np.asarray(t, dtype=np.float64) for t in targets], axis=1)
    return _pearson_columns(pred.T, true.T)


def _pearson_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of each column pair of ``(T, N)`` arrays."""
    a = a - a.mean(0)
    b = b - b.mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))


def design(stims, n_lags) -> np.ndarray:
    """The explicit float64 lagged design of several stimuli, rows concatenated: ``(sum T_i, F L)``."""
    from strfsolver.ridge import lagged_design

    rows = sum(s.shape[1] for s in stims)
    out = np.empty((rows, stims[0].shape[0] * n_lags))
    start = 0
    for s in stims:
        out[start : start + s.shape[1]] = lagged_design(s.double(), n_lags).numpy()
        start += s.shape[1]
    return out


def fold_bins(train_stims, n_folds):
    """Bin indices of each fold: contiguous groups of stimuli, as strfsolver's ``cv=K``."""
    bounds = np.concatenate([[0], np.cumsum([s.shape[1] for s in train_stims])])
    groups = np.array_split(np.arange(len(train_stims)), n_folds)
    return [np.concatenate([np.arange(bounds[i], bounds[i + 1]) for i in group]) for group in groups]


# ---------------------------------------------------------------- methods


def run_strfsolver(train, test, n_lags, grid):
    import strfsolver
    from strfsolver.data import NeuralDataset, make_loader

    (stims, responses), (test_stims, _) = train, test
    start, cpu = time.perf_counter(), time.process_time()
    dataset = NeuralDataset(stims, responses, dt_ms=10.0)
    loader = make_loader(dataset, batch_size=BATCH_SIZE)
    model = strfsolver.models.init("linear", n_freqs=stims[0].shape[0], n_lags=n_lags, n_neurons=responses[0].shape[0])
    solver = strfsolver.solver.init("ridge", model=model, relative_alphas=list(strfsolver.ridge.DEFAULT_RELATIVE_ALPHAS), cv=CV, progress=False)
    solver.fit(loader)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    predictions = [p[:, 0].detach().cpu().numpy() for p in solver.transform(test_stims)]
    return seconds, predictions, solver.alphas_.numpy(), {"grid": solver.alpha_grid_.tolist(), "cpu": cpu}


def run_strfsolver_phases(train, test, n_lags, grid):
    """The solver's fit with its phases timed by wrapping the functions it calls."""
    import strfsolver.ridge.crossval as crossval
    import strfsolver.ridge.solve as solve
    import strfsolver.solver.ridge as solver_ridge

    times = {}

    def timing(name, fn):
        def wrapped(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                times[name] = times.get(name, 0.0) + time.perf_counter() - start

        return wrapped

    patches = [
        (solver_ridge, "ridge_features", "statistics"),
        (solver_ridge, "fit_ridge", "fit_ridge"),
        (solve, "_refit", "refit"),
        (torch.linalg, "cholesky_ex", "cholesky"),
        (torch, "cholesky_solve", "cholesky_solve"),
        (torch.linalg, "solve_triangular", "triangular solves"),
        (torch.linalg, "eigh", "eigh"),
        (crossval, "heldout_moments", "heldout scoring"),
    ]
    originals = [(owner, attr, getattr(owner, attr)) for owner, attr, _ in patches]
    for owner, attr, name in patches:
        setattr(owner, attr, timing(name, getattr(owner, attr)))
    try:
        seconds, predictions, alphas, _ = run_strfsolver(train, test, n_lags, grid)
    finally:
        for owner, attr, fn in originals:
            setattr(owner, attr, fn)
    times["total"] = seconds
    return seconds, predictions, alphas, {"phases": times}


def run_sklearn_loo(train, test, n_lags, grid):
    from sklearn.linear_model import RidgeCV

    (stims, responses), (test_stims, _) = train, test
    start, cpu = time.perf_counter(), time.process_time()
    x = design(stims, n_lags)
    y = np.concatenate([r[:, 0].double().numpy() for r in responses], axis=1).T
    model = RidgeCV(alphas=np.asarray(grid), alpha_per_target=True, fit_intercept=True).fit(x, y)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    del x
    predictions = [model.predict(design([s], n_lags)).T for s in test_stims]
    return seconds, predictions, np.atleast_1d(model.alpha_), {"cpu": cpu}


def run_sklearn_grid(train, test, n_lags, grid):
    from sklearn.linear_model import Ridge

    (stims, responses), (test_stims, _) = train, test
    grid = np.asarray(grid)
    start, cpu = time.perf_counter(), time.process_time()
    x = design(stims, n_lags)
    y = np.concatenate([r[:, 0].double().numpy() for r in responses], axis=1).T
    folds = fold_bins(stims, CV)
    scores = np.full((len(folds), grid.size, y.shape[1]), np.nan)
    for k, held in enumerate(folds):
        rest = np.concatenate([f for j, f in enumerate(folds) if j != k])
        x_train, y_train, x_held = x[rest], y[rest], x[held]
        for a, alpha in enumerate(grid):
            model = Ridge(alpha=alpha, fit_intercept=True, solver="cholesky").fit(x_train, y_train)
            scores[k, a] = _pearson_columns(model.predict(x_held), y[held])
        del x_train, y_train, x_held
    mean = np.nan_to_num(np.nanmean(scores, 0), nan=-np.inf)  # (A, N)
    best = grid.size - 1 - np.argmax(mean[::-1], axis=0)  # ties go to the larger alpha
    coef = np.empty((y.shape[1], x.shape[1]))
    intercept = np.empty(y.shape[1])
    for a in np.unique(best):
        columns = np.flatnonzero(best == a)
        model = Ridge(alpha=grid[a], fit_intercept=True, solver="cholesky").fit(x, y[:, columns])
        coef[columns] = model.coef_.reshape(columns.size, -1)
        intercept[columns] = model.intercept_
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    del x
    predictions = [(design([s], n_lags) @ coef.T + intercept).T for s in test_stims]
    return seconds, predictions, grid[best], {"cpu": cpu}


def run_himalaya(train, test, n_lags, grid, progress=None):
    from himalaya.backend import set_backend
    from himalaya.ridge import RidgeCV
    from himalaya.scoring import correlation_score

    backend = set_backend("torch")
    (stims, responses), (test_stims, _) = train, test

    def score(y_true, y_pred):
        value = correlation_score(y_true, y_pred)
        if progress is not None:
            with open(progress, "a") as handle:
                handle.write(f"{time.perf_counter()}\n")
        return value

    if progress is not None:
        with open(progress, "w") as handle:
            handle.write(f"{time.perf_counter()}\n")
    start, cpu = time.perf_counter(), time.process_time()
    x = design(stims, n_lags)
    y = np.concatenate([r[:, 0].double().numpy() for r in responses], axis=1).T
    folds = fold_bins(stims, CV)
    cv = [(np.concatenate([f for j, f in enumerate(folds) if j != k]), held) for k, held in enumerate(folds)]
    model = RidgeCV(alphas=np.asarray(grid), fit_intercept=True, cv=cv, solver_params=dict(score_func=score, n_alphas_batch=1))
    model.fit(x, y)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    del x
    predictions = [backend.to_numpy(model.predict(design([s], n_lags))).T for s in test_stims]
    return seconds, predictions, backend.to_numpy(model.best_alphas_), {"cpu": cpu}


RUNNERS = {
    "strfsolver": run_strfsolver,
    "strfsolver-phases": run_strfsolver_phases,
    "sklearn-loo": run_sklearn_loo,
    "sklearn-grid": run_sklearn_grid,
    "himalaya": run_himalaya,
}


# ---------------------------------------------------------------- worker and driver


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def _resident_bytes() -> int:
    """The current resident set (VmRSS), bytes."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def worker(args):
    """One method (or ``baseline``) in this process; the result goes to ``args.result`` as JSON."""
    import importlib.util

    import sklearn.linear_model  # noqa: F401  every worker imports the same libraries

    if importlib.util.find_spec("himalaya") is not None:  # optional: only its own method needs it
        import himalaya.backend  # noqa: F401

    import strfsolver  # noqa: F401

    sizes = json.loads(args.sizes)
    stims, responses = make_data(args.n_neurons, sizes["n_freqs"], sizes["n_lags"], sizes["n_stims"], sizes["min_len"], sizes["max_len"])
    n_train = len(stims) - N_TEST
    train, test = (stims[:n_train], responses[:n_train]), (stims[n_train:], responses[n_train:])
    result = {"threads": torch.get_num_threads(), "rss_before": _resident_bytes()}
    if args.worker != "baseline":
        grid = json.loads(args.grid) if args.grid else None
        options = {"progress": args.progress} if args.worker == "himalaya" else {}
        seconds, predictions, alphas, extra = RUNNERS[args.worker](train, test, sizes["n_lags"], grid, **options)
        cc = test_correlations(predictions, [r[:, 0].numpy() for r in test[1]])
        result.update(seconds=seconds, cc=cc.tolist(), alphas=np.asarray(alphas, dtype=float).tolist(), **extra)
    result["peak_bytes"] = _peak_rss_bytes()
    result["train_bins"] = sum(s.shape[1] for s in train[0])
    with open(args.result, "w") as handle:
        json.dump(result, handle)


def _spawn(method, n_neurons, sizes, threads, grid=None, timeout=None, progress=None):
    """Run one worker; its result dict, or ``{"failed": reason}``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        command = [sys.executable, os.path.abspath(__file__), "--worker", method, "--n-neurons", str(n_neurons), "--sizes", json.dumps(sizes),
                   "--threads", str(threads), "--result", out]
        if grid is not None:
            command += ["--grid", json.dumps(grid)]
        if progress is not None:
            command += ["--progress", progress]
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        start = time.perf_counter()
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False)
        except subprocess.TimeoutExpired:
            return {"failed": f"did not finish in {timeout:.0f} s", "timeout": True, "wall": time.perf_counter() - start}
        if done.returncode != 0:
            sys.stderr.write(done.stderr[-3000:])
            return {"failed": f"exit status {done.returncode}"}
        with open(out) as handle:
            return json.load(handle)


def _himalaya_progress(path, n_scores):
    """What a killed himalaya run got through: a phrase for the table."""
    try:
        with open(path) as handle:
            stamps = [float(line) for line in handle if line.strip()]
    except OSError:
        return ""
    done = len(stamps) - 1
    if done <= 0:
        return "; no (fold, alpha) scored"
    per = (stamps[-1] - stamps[0]) / done
    return f"; {done}/{n_scores} (fold, alpha) scored, projected >= {per * n_scores:.0f} s"


def run_setting(n_neurons, sizes, args):
    results = {"baseline": _spawn("baseline", n_neurons, sizes, args.threads)}
    results["strfsolver"] = _spawn("strfsolver", n_neurons, sizes, args.threads)
    if "failed" in results["strfsolver"] or "failed" in results["baseline"]:
        raise SystemExit(f"N={n_neurons}: the strfsolver or baseline run failed")
    grid = results["strfsolver"]["grid"]
    if args.phases:
        results["strfsolver-phases"] = _spawn("strfsolver-phases", n_neurons, sizes, args.threads, grid)
    for method in ("sklearn-loo", "sklearn-grid"):
        if method not in args.skip:
            results[method] = _spawn(method, n_neurons, sizes, args.threads, grid)
    if "himalaya" not in args.skip:
        import importlib.util

        if importlib.util.find_spec("himalaya") is None:
            results["himalaya"] = {"failed": "skipped: himalaya is not installed"}
        elif args.himalaya_skip:
            results["himalaya"] = {"failed": args.himalaya_skip}
        else:
            with tempfile.TemporaryDirectory() as tmp:
                progress = os.path.join(tmp, "progress.txt")
                res = _spawn("himalaya", n_neurons, sizes, args.threads, grid, timeout=args.himalaya_timeout, progress=progress)
                if res.get("timeout"):
                    res["failed"] += _himalaya_progress(progress, CV * len(grid))
                    args.himalaya_skip = f"skipped: did not finish in {args.himalaya_timeout:.0f} s at a smaller N"
                results["himalaya"] = res
    return results


def report(n_neurons, sizes, results, args):
    base = results["baseline"]["peak_bytes"]
    dim = sizes["n_freqs"] * sizes["n_lags"]
    bins = results["baseline"]["train_bins"]
    design_mib = bins * dim * 8 / 2**20
    ref = results.get("sklearn-grid", {})
    ref_cc = np.asarray(ref["cc"]) if "cc" in ref else None
    ref_alpha = np.asarray(ref["alphas"]) if "alphas" in ref else None
    strf = results["strfsolver"]
    print(
        f"\nN={n_neurons} neurons, F={sizes['n_freqs']}, L={sizes['n_lags']} (D={dim}), {sizes['n_stims'] - N_TEST} training stimuli "
        f"({bins} bins) / {N_TEST} test, {CV} folds, {len(strf['grid'])} alphas, {strf['threads']} threads; "
        f"one float64 training design: {design_mib:.0f} MiB; baseline process peak {base / 2**20:.0f} MiB "
        f"(resident {results['baseline']['rss_before'] / 2**20:.0f} MiB with the data loaded)"
    )
    print(f"{'method':<27}{'fit s':>9}{'x strfsolver':>14}{'CPU s':>9}{'x strfsolver':>14}{'peak MiB':>10}{'test cc':>9}{'max |dcc|':>11}{'same alpha':>12}")
    for method in METHODS:
        res = results.get(method)
        if res is None:
            continue
        if "failed" in res:
            print(f"{LABELS[method]:<27}  {res['failed']}")
            continue
        cc = np.asarray(res["cc"])
        dcc = f"{np.nanmax(np.abs(cc - ref_cc)):.1e}" if ref_cc is not None else "-"
        same = f"{np.mean(np.isclose(res['alphas'], ref_alpha, rtol=1e-6)):.0%}" if ref_alpha is not None else "-"
        print(
            f"{LABELS[method]:<27}{res['seconds']:>9.2f}{res['seconds'] / strf['seconds']:>13.1f}x"
            f"{res.get('cpu', math.nan):>9.2f}{res.get('cpu', math.nan) / strf.get('cpu', math.nan):>13.1f}x{(res['peak_bytes'] - base) / 2**20:>10.0f}"
            f"{np.nanmedian(cc):>9.4f}{dcc:>11}{same:>12}"
        )
    phases = results.get("strfsolver-phases", {}).get("phases")
    if phases:
        total, stats, fit = phases["total"], phases.get("statistics", 0.0), phases.get("fit_ridge", 0.0)
        refit = phases.get("refit", 0.0)
        parts = [("statistics (stream, lag-structured Grams)", stats), ("alpha search (4 folds x grid)", fit - refit), ("refit (chosen alphas)", refit),
                 ("rest of fit (training-set scoring, state)", total - stats - fit)]
        print(f"strfsolver phases (separate run, {total:.2f} s in all): " + "; ".join(f"{name} {sec:.2f} s" for name, sec in parts))
        print("  of which " + "; ".join(f"{name} {phases[name]:.2f} s" for name in ("cholesky", "cholesky_solve", "triangular solves", "eigh", "heldout scoring") if name in phases))
    checks = []
    if ref_cc is not None:
        gap = abs(float(np.nanmedian(strf["cc"])) - float(np.nanmedian(ref_cc)))
        checks.append(f"test cc within 0.002 of grid search: {'met' if gap <= 0.002 else 'MISSED'} (|d median| {gap:.1e})")
    for method in ("sklearn-loo", "sklearn-grid"):
        res = results.get(method, {})
        if "seconds" in res:
            ratio = res["seconds"] / strf["seconds"]
            cpu_ratio = res.get("cpu", math.nan) / strf.get("cpu", math.nan)
            checks.append(f">= 10x faster than {LABELS[method]}: {'met' if ratio >= 10 else 'MISSED'} ({ratio:.1f}x wall-clock, "
                          f"{cpu_ratio:.1f}x CPU time)")
    him = results.get("himalaya", {})
    if "seconds" in him:
        ratio = him["seconds"] / strf["seconds"]
        checks.append(f"faster than himalaya: {'met' if ratio > 1 else 'MISSED'} ({ratio:.1f}x)")
    elif "failed" in him and not him["failed"].startswith("skipped: himalaya is not"):
        checks.append(f"faster than himalaya: met (himalaya {him['failed'].split(';')[0]})")
    peak = (strf["peak_bytes"] - base) / 2**20
    checks.append(f"peak below one design: {'met' if peak < design_mib else 'MISSED'} ({peak:.0f} / {design_mib:.0f} MiB)")
    for line in checks:
        print("  target " + line)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (F=16, L=8, T about 500, N = 10 and 50, no phases): under a minute")
    parser.add_argument("--neurons", type=int, nargs="+", default=None, help="neuron counts, one setting each (default 10 500; quick 10 100)")
    parser.add_argument("--n-freqs", type=int, default=None)
    parser.add_argument("--n-lags", type=int, default=None)
    parser.add_argument("--min-len", type=int, default=None, help="shortest stimulus, bins")
    parser.add_argument("--max-len", type=int, default=None, help="longest stimulus, bins")
    parser.add_argument("--threads", type=int, default=None, help="torch and BLAS threads of every method (default 2; quick 1)")
    parser.add_argument("--himalaya-timeout", type=float, default=None, help="seconds (default 600; quick 60); a larger N is skipped after a timeout")
    parser.add_argument("--skip", nargs="*", default=[], choices=["sklearn-loo", "sklearn-grid", "himalaya"], help="methods to leave out")
    parser.add_argument("--phases", action=argparse.BooleanOptionalAction, default=None, help="time the solver's phases: one more fit per N (default: on, off with --quick)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--n-neurons", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--grid", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--result", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--progress", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads is None:
        args.threads = 1 if args.quick else 2
    torch.set_num_threads(args.threads)
    if args.worker:
        worker(args)
        return 0
    sizes = dict(QUICK if args.quick else FULL)
    for key in ("n_freqs", "n_lags", "min_len", "max_len", "neurons", "himalaya_timeout"):
        if getattr(args, key) is not None:
            sizes[key] = getattr(args, key)
    neurons = sizes.pop("neurons")
    args.himalaya_timeout = sizes.pop("himalaya_timeout")
    args.phases = sizes.pop("phases") if args.phases is None else args.phases
    args.himalaya_skip = None
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, python {platform.python_version()}", flush=True)
    everything = {}
    for n_neurons in sorted(neurons):
        start = time.perf_counter()
        results = run_setting(n_neurons, sizes, args)
        report(n_neurons, sizes, results, args)
        print(f"(N={n_neurons}: {time.perf_counter() - start:.0f} s wall)", flush=True)
        everything[n_neurons] = results
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"sizes": sizes, "results": everything}, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
