"""Benchmark: do the solvers' defaults fit without a learning-rate sweep?

For each setting (a synthetic LN-Poisson population, below) and each model /
solver pair (``linear``, ``ln``, ``nrf``, ``cnn2d`` with ``"population"``,
``ln`` with ``"single-cell"``) the script runs

- the **default fit**: ``strfsolver.solver.init(solver, model=model,
  progress=False)`` and nothing else (the model's ``default_lr``: 3e-3, 1e-2
  for ``nrf``; AdamW with weight decay 1e-4, ``patience=20``, the plateau
  rule halving the rate after 10 evaluated epochs without improvement,
  ``max_epochs=500``, per-band stimulus standardization);
- a **learning-rate grid**: lr in {3e-4, 1e-3, 3e-3, 1e-2, 3e-2} (3 decades)
  with a more patient budget (``patience=30``, ``max_epochs=500``) and the
  default plateau rule (so the rate halves after ``patience // 2 = 15``
  epochs without improvement); every other option default. The grid point with the
  best validation ``cc_norm`` (``solver.best_score_``, mean over neurons) is
  the reference, reported on the test stimuli.

The same seed (``torch.manual_seed(0)`` before each model is built) gives every
fit of a cell the same initial weights and the same batch order (training
loader ``make_loader(train, batch_size=2, shuffle=True, seed=0)``; validation
loader unshuffled). **test cc_norm** is the median over neurons of
:py:func:`strfsolver.metrics.normalized_corrcoef` of the fitted model's
prediction (``solver.transform``) on the test stimuli, never seen while
fitting; **/truth** divides it by the median ``cc_norm`` of the generating
rates themselves on the same responses (the ceiling a perfect model reaches
with this noise-ceiling estimate). **s** is a fit's wall-clock time,
validation included, **ep** its number of epochs, **e*** the grid point's
best epoch + 1, **h** how often the plateau rule halved the default fit's
rate. A cell PASSes when default minus best-grid test ``cc_norm`` is >= -0.01
(``linear``, ``ln``) or >= -0.02 (``nrf``, ``cnn2d``), and the default fit
runs no more epochs than the best grid point's whole fit. Epochs, not
seconds, decide speed: within a cell every epoch costs the same, and on a
shared machine seconds are noise. Each cell first runs an untimed one-epoch
fit (first-call costs).

Cells run in ``--jobs`` processes (default 2) of ``--threads`` torch threads
(default 1). On the shared 2-core machine this was written on, two OpenMP
threads per process made a ``cnn2d`` forward + backward pass 10-17x slower
than one thread (1.3 s against 0.08 s: threads waiting for each other at
every operation whenever another job holds a core).

The stimuli are deliberately *not* the package's own generator's
(``strfsolver.data.synthetic_population``: harmonic stacks, tones, noise
bands); the script draws its own (all randomness from ``torch.Generator``\\ s
seeded per setting):

- **ripples**: dynamic moving ripples, in dB: ``60 + 15 * sum_k cos(phi_k(t) +
  2 pi Omega_k(t) x_f + theta_k) / sqrt(K / 2)``, K = 8 components, ``x_f`` the
  band's position in octaves (5 octaves), ripple velocity ``dphi_k/dt / 2 pi``
  in [-16, 16] Hz and density ``Omega_k`` in [0, 2] cycles/octave, both
  drifting slowly (smoothed Gaussian noise mapped to the range);
- **power**: Gaussian noise smoothed over frequency and time plus a slow
  envelope shared by all bands (syllable-like), exponentiated and in raw power
  units, ``1000 * exp(0.6 z) + 50`` (most values 200-5,000, a heavy upper tail).

Neurons: a Gabor-like STRF each (a Gaussian patch at a random best frequency
and latency times a spectro-temporal cosine of random spectral and temporal
period and phase: excitatory and inhibitory lobes, often direction
selective), ``drive = causal_strf_conv(stim, strf)`` standardized per neuron
over all of the setting's stimuli, ``rate = peak * dt * softplus(gain * drive +
bias)`` in spikes per bin (gain in [1, 2], bias in [-1.5, 0.5], peak rate
log-uniform in 20-60 Hz), and independent Poisson counts per repeat.

Settings (full run; ``--quick`` shortens the stimuli and the grid budget):

- S1: ripples, 32 bands, 15 lags, dt 10 ms, 32 neurons, 8 + 1 + 2 stimuli of
  1,000 bins, 10 repeats;
- S2: power, 24 bands, 20 lags, dt 5 ms, 48 neurons, 12 + 2 + 2 stimuli of
  500 bins, 10 repeats;
- S3: ripples, 128 bands, 30 lags, dt 5 ms, 16 neurons, 6 + 1 + 2 stimuli of
  500 bins, 10 repeats.

The stimuli are shorter than first planned (1,500 / 800 / 2,000 bins) to keep
the run near 15 minutes on 2 cores: ``cnn2d`` (default size) costs ~3 s per
epoch on 128 bands x 2,000 bins, the single-cell solver 5-10x the population
solver's ``ln``; every model of a setting sees the same data. With the grid
given the defaults' budget (500 epochs) the full run takes about 100 minutes
on a machine whose other jobs keep the load at 2-6; the ``cnn2d`` and
single-cell cells are most of it.

Run (from the repository root)::

    python benchmarks/bench_defaults.py            # full run: about 100 min on 2 shared cores (57 min without cnn2d; cnn2d alone 42 min)
    python benchmarks/bench_defaults.py --quick    # < 1 min: 1/5 of the bins, 3 grid points, 15 epochs (a smoke test)
    python benchmarks/bench_defaults.py --only S1 --models ln nrf
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import sys
import time
import warnings

import torch
import torch.nn.functional as nnf

OCTAVES = 5.0
GRID_LRS = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
GRID_OPTIONS = dict(patience=30, max_epochs=500)
CELLS = (("linear", "population"), ("ln", "population"), ("nrf", "population"), ("cnn2d", "population"), ("ln", "single-cell"))
TOLERANCE = {"linear": 0.01, "ln": 0.01, "nrf": 0.02, "cnn2d": 0.02}
BATCH_SIZE = 2

SETTINGS = {
    "S1": dict(family="ripples", n_freqs=32, n_lags=15, dt_ms=10.0, n_neurons=32, split=(8, 1, 2), n_times=1000, n_repeats=10, seed=1),
    "S2": dict(family="power", n_freqs=24, n_lags=20, dt_ms=5.0, n_neurons=48, split=(12, 2, 2), n_times=500, n_repeats=10, seed=2),
    "S3": dict(family="ripples", n_freqs=128, n_lags=30, dt_ms=5.0, n_neurons=16, split=(6, 1, 2), n_times=500, n_repeats=10, seed=3),
}


# -- stimuli ----------------------------------------------------------------------------------


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    half = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-half, half + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def _smooth_last(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian smoothing of ``(..., T)`` along its last axis (replicate padding)."""
    kernel = _gaussian_kernel(sigma)
    shape = x.shape
    flat = x.reshape(-1, 1, shape[-1])
    half = kernel.numel() // 2
    flat = nnf.pad(flat, (half, half), mode="replicate")
    return nnf.conv1d(flat, kernel.view(1, 1, -1)).reshape(shape)


def _slow_uniform(gen, n: int, n_times: int, sigma_bins: float) -> torch.Tensor:
    """``(n, T)`` slowly drifting values in [0, 1] (smoothed noise through the normal CDF)."""
    z = _smooth_last(torch.randn(n, n_times, generator=gen, dtype=torch.float64), sigma_bins)
    z = z / z.std(dim=-1, keepdim=True).clamp(min=1e-12)
    return torch.special.ndtr(z)


def ripple_stimulus(gen, n_freqs: int, n_times: int, dt_ms: float, n_ripples: int = 8) -> torch.Tensor:
    """Dynamic moving ripples in dB, ``(F, T)``."""
    x = torch.linspace(0.0, OCTAVES, n_freqs, dtype=torch.float64)
    drift = 500.0 / dt_ms  # parameters drift on a ~0.5 s scale
    velocity = 32.0 * _slow_uniform(gen, n_ripples, n_times, drift) - 16.0  # Hz
    density = 2.0 * _slow_uniform(gen, n_ripples, n_times, drift)  # cycles / octave
    phase = 2 * math.pi * torch.cumsum(velocity, dim=-1) * dt_ms / 1000.0
    theta = 2 * math.pi * torch.rand(n_ripples, 1, 1, generator=gen, dtype=torch.float64)
    parts = torch.cos(phase[:, None, :] + 2 * math.pi * density[:, None, :] * x[None, :, None] + theta)
    return (60.0 + 15.0 * parts.sum(0) / math.sqrt(n_ripples / 2)).float()


def power_stimulus(gen, n_freqs: int, n_times: int, dt_ms: float) -> torch.Tensor:
    """Smoothed Gaussian noise, exponentiated, in raw power units, ``(F, T)``."""
    z = torch.randn(n_freqs, n_times, generator=gen, dtype=torch.float64)
    z = _smooth_last(z, 20.0 / dt_ms)  # 20 ms along time
    z = _smooth_last(z.T.contiguous(), max(1.0, n_freqs / 12)).T  # ~5 % of the bands along frequency
    z = z / z.std()
    envelope = _smooth_last(torch.randn(1, n_times, generator=gen, dtype=torch.float64), 60.0 / dt_ms)
    envelope = envelope / envelope.std()
    z = 0.8 * z + 0.6 * envelope
    return (1000.0 * torch.exp(0.6 * z) + 50.0).float()


# -- neurons ----------------------------------------------------------------------------------


def gabor_strfs(gen, n_neurons: int, n_freqs: int, n_lags: int) -> torch.Tensor:
    """``(N, 1, F, L)`` Gabor-like STRFs, peak magnitude 1."""

    def uniform(low, high):
        return low + (high - low) * torch.rand(n_neurons, 1, 1, generator=gen, dtype=torch.float64)

    f = torch.arange(n_freqs, dtype=torch.float64).view(1, -1, 1)
    lag = torch.arange(n_lags, dtype=torch.float64).view(1, 1, -1)
    best_freq, freq_width = uniform(0.15, 0.85) * n_freqs, uniform(0.04, 0.1) * n_freqs
    latency, lag_width = uniform(0.15, 0.4) * n_lags, uniform(0.08, 0.18) * n_lags
    freq_period = uniform(2.5, 5.0) * freq_width
    lag_period = uniform(2.5, 5.0) * lag_width * torch.where(torch.rand(n_neurons, 1, 1, generator=gen) < 0.5, -1.0, 1.0).double()
    phase = uniform(0.0, 2 * math.pi)
    envelope = torch.exp(-0.5 * ((f - best_freq) / freq_width) ** 2 - 0.5 * ((lag - latency) / lag_width) ** 2)
    strf = envelope * torch.cos(2 * math.pi * ((f - best_freq) / freq_period + (lag - latency) / lag_period) + phase)
    strf = strf / strf.abs().amax(dim=(1, 2), keepdim=True)
    return strf.unsqueeze(1).float()


def make_setting(family, n_freqs, n_lags, dt_ms, n_neurons, split, n_times, n_repeats, seed):
    """Stimuli, rates and counts of one setting: train / valid / test NeuralDatasets and the truth."""
    from strfsolver.data import NeuralDataset
    from strfsolver.models import causal_strf_conv

    gen = torch.Generator().manual_seed(seed)
    draw = ripple_stimulus if family == "ripples" else power_stimulus
    stims = [draw(gen, n_freqs, n_times, dt_ms) for _ in range(sum(split))]
    strf = gabor_strfs(gen, n_neurons, n_freqs, n_lags)
    with torch.no_grad():
        drives = torch.cat([causal_strf_conv(s[None, None], strf) for s in stims])[:, :, 0]  # (S, N, T)
    mean = drives.mean(dim=(0, 2), keepdim=True)
    std = drives.std(dim=(0, 2), keepdim=True)
    drive = (drives - mean) / std
    gain = 1.0 + torch.rand(1, n_neurons, 1, generator=gen)
    bias = -1.5 + 2.0 * torch.rand(1, n_neurons, 1, generator=gen)
    peak_hz = torch.exp(math.log(20.0) + math.log(3.0) * torch.rand(1, n_neurons, 1, generator=gen))
    rates = peak_hz * dt_ms / 1000.0 * nnf.softplus(gain * drive + bias)  # (S, N, T) spikes / bin
    counts = torch.poisson(rates.unsqueeze(2).expand(-1, -1, n_repeats, -1).contiguous(), generator=gen)  # (S, N, R, T)
    bounds = [0, split[0], split[0] + split[1], sum(split)]
    parts = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        parts.append(NeuralDataset(stims[a:b], [counts[i] for i in range(a, b)], dt_ms=dt_ms))
    test_rates = rates[bounds[2] :].unsqueeze(2)  # (B, N, 1, T)
    return dict(train=parts[0], valid=parts[1], test=parts[2], test_stims=stims[bounds[2] :],
                test_counts=counts[bounds[2] :], test_rates=test_rates,
                mean_rate_hz=float(rates.mean()) * 1000.0 / dt_ms,
                stim_range=(float(min(s.min() for s in stims)), float(max(s.max() for s in stims))))


def _median_cc_norm(pred: torch.Tensor, counts: torch.Tensor) -> float:
    from strfsolver.metrics import normalized_corrcoef

    return float(normalized_corrcoef(pred, counts).nanmedian())


# -- fits ---------------------------------------------------------------------------------------


def fit_once(data, spec, model_name, solver_name, **options):
    import strfsolver
    from strfsolver.data import make_loader

    torch.manual_seed(0)
    model = strfsolver.models.init(model_name, n_freqs=spec["n_freqs"], n_lags=spec["n_lags"], n_neurons=spec["n_neurons"])
    train_loader = make_loader(data["train"], batch_size=BATCH_SIZE, shuffle=True, seed=0)
    valid_loader = make_loader(data["valid"], batch_size=BATCH_SIZE)
    solver = strfsolver.solver.init(solver_name, model=model, progress=False, **options)
    start = time.perf_counter()
    log = solver.fit(train_loader, valid_loader).log
    wall = time.perf_counter() - start
    with torch.no_grad():
        pred = torch.stack(list(solver.transform(data["test_stims"])))
    best = solver.best_epoch_
    return dict(
        test=_median_cc_norm(pred.cpu(), data["test_counts"]),
        val=float(solver.best_score_),
        seconds=wall,
        to_best=sum(row["seconds"] for row in log[: best + 1]) if best is not None else wall,
        epochs=len(log),
        best_epoch=best,
        stop=solver.stop_reason_,
        first_lr=float(log[0]["lr"]),
        last_lr=float(log[-1]["lr"]),
    )


_DATA = {}  # setting name -> (data, truth), per worker process


def _setting_data(name, spec):
    if name not in _DATA:
        data = make_setting(**spec)
        _DATA[name] = (data, _median_cc_norm(data["test_rates"], data["test_counts"]))
    return _DATA[name]


def run_cell(task):
    """One (setting, model, solver) cell: an untimed warm-up fit, the default fit and the grid."""
    name, spec, model_name, solver_name, lrs, grid_options, default_options, threads = task
    torch.set_num_threads(threads)
    warnings.simplefilter("ignore", UserWarning)  # fit advice: the table reports what the fits did
    data, truth = _setting_data(name, spec)
    fit_once(data, spec, model_name, solver_name, max_epochs=1)  # first-call costs out of the timings
    default = fit_once(data, spec, model_name, solver_name, **default_options)
    grid = {lr: fit_once(data, spec, model_name, solver_name, lr=lr, **grid_options) for lr in lrs}
    best_lr = max(grid, key=lambda lr: grid[lr]["val"])
    info = dict(stim_range=data["stim_range"], mean_rate_hz=data["mean_rate_hz"])
    return dict(setting=name, model=model_name, solver=solver_name, truth=truth, info=info, default=default, grid=grid, best_lr=best_lr)


def _row(cell):
    d, g, truth = cell["default"], cell["grid"][cell["best_lr"]], cell["truth"]
    diff = d["test"] - g["test"]
    ok = diff >= -TOLERANCE[cell["model"]] and d["epochs"] <= g["epochs"]
    stop = {"patience": "pat", "max_epochs": "max", "all neurons stopped": "all"}.get(d["stop"], str(d["stop"]))
    halvings = round(math.log2(d["first_lr"] / d["last_lr"]))
    return (f"{cell['setting']:<4}{cell['model']:<7}{cell['solver']:<12}{truth:>6.3f}{d['test']:>8.3f}{d['test'] / truth:>7.2f}"
            f"{d['seconds']:>7.1f}{d['epochs']:>4}{stop:>5}{halvings:>3}{cell['best_lr']:>8.0e}{g['test']:>7.3f}{g['test'] / truth:>7.2f}"
            f"{g['seconds']:>7.1f}{g['epochs']:>5}{g['best_epoch'] + 1:>5}{diff:>+8.3f}{'PASS' if ok else 'MISS':>6}")


HEADER = (f"{'set':<4}{'model':<7}{'solver':<12}{'truth':>6}{'default':>8}{'/truth':>7}{'s':>7}{'ep':>4}{'stop':>5}{'h':>3}"
          f"{'best lr':>8}{'grid':>7}{'/truth':>7}{'s':>7}{'ep':>5}{'e*':>5}{'diff':>8}{'':>6}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short stimuli, 3 grid points, small budget (~1 min)")
    parser.add_argument("--only", nargs="+", choices=sorted(SETTINGS), help="run only these settings")
    parser.add_argument("--models", nargs="+", choices=sorted({m for m, _ in CELLS}), help="run only these models")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per worker (default 1; see the docstring)")
    parser.add_argument("--jobs", type=int, default=2, help="cells fitted at once, each in its own process (default 2)")
    parser.add_argument("--json", default=None, help="also write every fit's figures to this JSON file")
    args = parser.parse_args(argv)
    lrs, grid_options, default_options = GRID_LRS, dict(GRID_OPTIONS), {}
    settings = {name: dict(spec) for name, spec in SETTINGS.items() if not args.only or name in args.only}
    if args.quick:
        lrs = (1e-3, 3e-3, 1e-2)
        grid_options = dict(patience=10, max_epochs=15)
        default_options = dict(max_epochs=15)
        for spec in settings.values():
            spec["n_times"] = max(100, spec["n_times"] // 5)
    print(f"{args.jobs} workers x {args.threads} torch thread(s); grid lr {list(lrs)} with {grid_options} and the default plateau rule"
          + ("; QUICK: stimuli 1/5 as long, default max_epochs=15" if args.quick else ""), flush=True)
    tasks = [(name, spec, m, s, lrs, grid_options, default_options, args.threads)
             for name, spec in settings.items() for m, s in CELLS if not args.models or m in args.models]
    start_all = time.perf_counter()
    results, current = {}, None
    context = multiprocessing.get_context("spawn")
    with context.Pool(args.jobs) as pool:
        for cell in pool.imap(run_cell, tasks):
            name, spec = cell["setting"], settings[cell["setting"]]
            if name != current:
                current, info = name, cell["info"]
                print(f"\n{name}: {spec['family']}, F={spec['n_freqs']}, L={spec['n_lags']}, dt={spec['dt_ms']:g} ms, N={spec['n_neurons']}, "
                      f"stimuli {'+'.join(map(str, spec['split']))} x {spec['n_times']} bins, R={spec['n_repeats']}; stimulus range "
                      f"{info['stim_range'][0]:.1f}..{info['stim_range'][1]:.1f}, mean rate {info['mean_rate_hz']:.1f} Hz", flush=True)
                print(HEADER, flush=True)
            print(_row(cell), flush=True)
            print("      grid lr: test/val/epochs  " + "  ".join(
                f"{lr:.0e}: {r['test']:.3f}/{r['val']:.3f}/{r['epochs']}" for lr, r in cell["grid"].items()), flush=True)
            results[f"{name}/{cell['model']}/{cell['solver']}"] = dict(cell, grid={str(k): v for k, v in cell["grid"].items()})
    print(f"\ntotal {time.perf_counter() - start_all:.0f} s. truth: median test cc_norm of the generating rates; default, grid: "
          "median test cc_norm of the default fit and of the best grid point (by validation); /truth: as a fraction of truth; "
          "s: fit wall time; ep: epochs run; stop: why the default fit ended; h: lr halvings of the default fit; "
          "e*: best epoch + 1 of the grid point; diff: default - grid; PASS: diff >= -0.01 (linear, ln) or -0.02 (nrf, cnn2d) "
          "and default epochs <= grid epochs (same cost per epoch within a cell).")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
