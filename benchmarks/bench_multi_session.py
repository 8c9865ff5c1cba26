"""Benchmark: a core shared by several recording sessions against per-session fits, and readout-only transfer.

The data are :py:func:`strfsolver.data.synthetic_multisession` sessions
(neurons that mix rectified subunits shared by every session, each session
with its own stimuli), drawn on stimuli of **another family than the
generator's default**: dynamic moving ripples in dB (``stimuli="ripples"``,
dense, never silent, around 60 +- 30) instead of the default log
spectrograms of sound events, at another bin width (10 ms) and band count
than the tests use. Every session has ``--train`` training, 2 validation and
4 test stimuli.

**Part 1: the number of sessions.** For S = 1, 2, 4, 8 sessions the script
fits

- **shared**: one ``"nrf"`` model (``n_hidden`` rectified hidden STRF units,
  ``hidden_activation="relu"``) with one readout per session, on all S
  sessions at once (the ``"multi-session"`` solver);
- **per-session nrf / ln**: the same ``"nrf"`` model, and an ``"ln"`` model,
  fitted to each session alone (the ``"population"`` solver), the straightforward
  alternative.

Every fit uses the solvers' defaults (AdamW at the model's ``default_lr``,
patience 20, the plateau rule) with ``max_epochs`` of ``--epochs``, batches of
2 stimuli, and ``torch.manual_seed(0)`` before each model is built. **cc_norm**
is the median over all neurons of the S sessions of the held-out test
stimuli's ``cc_norm``; **truth** is the generating model's own on the same
responses (the ceiling); **s** is wall-clock seconds of the fits
(per-session: the sum over the S sessions' fits).

**Part 2: transfer to a new session.** The shared model of the largest S
gets a readout for a ninth session (``add_session``), fitted alone with
``train="readout"`` on the new session's first k training stimuli, k =
``--train`` down to 1; against it, a fit of the whole ``"nrf"`` model from
scratch, and an ``"ln"`` model, on the same k stimuli (batches of one
stimulus, the same budget). The new session's validation and test stimuli
are the same for every k.

Run (from the repository root)::

    python benchmarks/bench_multi_session.py            # about 3 minutes on 2 shared cores
    python benchmarks/bench_multi_session.py --quick    # about 1 minute: at most 60 epochs, stimuli of 150 bins
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import time
import warnings

import torch

import strfsolver
from strfsolver.data import make_loader, session_loaders, synthetic_multisession

SESSIONS = (1, 2, 4, 8)


def build(args):
    sizes = [12, 16, 20, 14, 18, 12, 16, 20, 16]  # eight sessions to share, a ninth to transfer to
    n_stims = args.train + 2 + 4
    truth = synthetic_multisession(n_neurons={f"s{i}": n for i, n in enumerate(sizes)}, n_stims=n_stims,
                                   n_subunits=args.subunits, n_repeats=8, n_freqs=args.freqs, n_lags=args.lags,
                                   n_times=args.bins, dt_ms=10.0, stimuli="ripples", seed=args.seed)
    cut = lambda start, stop: {s: d.subset(range(start, stop)) for s, d in truth.datasets.items()}  # noqa: E731
    return truth, cut(0, args.train), cut(args.train, args.train + 2), cut(args.train + 2, n_stims)


def nrf(args, n_neurons):
    torch.manual_seed(0)
    return strfsolver.models.init("nrf", n_freqs=args.freqs, n_lags=args.lags, n_hidden=args.hidden,
                                  hidden_activation="relu", n_neurons=n_neurons)


def ln(args, n_neurons):
    torch.manual_seed(0)
    return strfsolver.models.init("ln", n_freqs=args.freqs, n_lags=args.lags, n_neurons=n_neurons)


def fit_alone(model, train, valid, test, args, batch_size=2):
    """``(test cc_norm (N,), seconds)`` of a population fit of one session."""
    solver = strfsolver.solver.init("population", model=model, max_epochs=args.epochs, progress=False)
    start = time.perf_counter()
    solver.fit(make_loader(train, batch_size=batch_size, shuffle=True), make_loader(valid))
    seconds = time.perf_counter() - start
    return solver.validation(make_loader(test))["cc_norm"], seconds


def fit_shared(model, train, valid, test, args, batch_size=2, part="all"):
    """``(test cc_norm over all neurons of the sessions, seconds)`` of a multi-session fit."""
    solver = strfsolver.solver.init("multi-session", model=model, max_epochs=args.epochs, progress=False)
    start = time.perf_counter()
    solver.fit(session_loaders(train, batch_size=batch_size, shuffle=True), session_loaders(valid), train=part)
    seconds = time.perf_counter() - start
    scores = solver.validation(session_loaders(test))
    return torch.cat([scores[s]["cc_norm"] for s in train]), seconds


def median(values) -> float:
    return float(torch.as_tensor(values).nanmedian())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="at most 60 epochs, stimuli of 150 bins (about a minute)")
    parser.add_argument("--epochs", type=int, default=None, help="max_epochs of every fit (default 200, --quick 60)")
    parser.add_argument("--train", type=int, default=6, help="training stimuli per session")
    parser.add_argument("--bins", type=int, default=None, help="bins per stimulus (default 300, --quick 150)")
    parser.add_argument("--freqs", type=int, default=24)
    parser.add_argument("--lags", type=int, default=10)
    parser.add_argument("--subunits", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    args.epochs = args.epochs or (60 if args.quick else 200)
    args.bins = args.bins or (150 if args.quick else 300)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")  # the end-of-fit advice of short budgets
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} torch thread(s), "
          f"torch {torch.__version__}, python {platform.python_version()}")
    print(f"ripples, {args.freqs} bands, {args.lags} lags, dt 10 ms, {args.bins} bins per stimulus, "
          f"{args.train}+2+4 stimuli per session, {args.subunits} shared subunits, nrf n_hidden={args.hidden}, "
          f"max_epochs {args.epochs}, seed {args.seed}")
    truth, train, valid, test = build(args)
    sessions = truth.sessions[:max(SESSIONS)]
    ceiling = {s: truth.truth_cc_norm(s, test[s]) for s in truth.sessions}

    # first-call costs (imports of the optimizer's compiler, allocator warm-up) stay out of the timings
    strfsolver.solver.init("population", model=ln(args, truth.n_neurons["s0"]), max_epochs=1, progress=False).fit(
        make_loader(train["s0"], batch_size=2), make_loader(valid["s0"]))
    # per-session fits once per session: the first S of them are the per-session side of S sessions
    alone = {}
    for s in sessions:
        n = truth.n_neurons[s]
        alone[s] = {"nrf": fit_alone(nrf(args, n), train[s], valid[s], test[s], args),
                    "ln": fit_alone(ln(args, n), train[s], valid[s], test[s], args)}

    print("\nPart 1: median test cc_norm over all neurons of the S sessions (seconds of the fits)")
    print(f"{'S':>3} {'neurons':>8} {'truth':>6} | {'shared nrf':>16} | {'per-session nrf':>16} | {'per-session ln':>16} | "
          f"{'shared - best':>13} {'time ratio':>10}")
    shared_model = None
    for count in SESSIONS:
        names = sessions[:count]
        pick = lambda part: {s: part[s] for s in names}  # noqa: E731
        shared_model = nrf(args, {s: truth.n_neurons[s] for s in names})
        shared, shared_s = fit_shared(shared_model, pick(train), pick(valid), pick(test), args)
        row = {}
        for kind in ("nrf", "ln"):
            row[kind] = (median(torch.cat([alone[s][kind][0] for s in names])), sum(alone[s][kind][1] for s in names))
        best = max(row.values())[0]
        truth_median = median(torch.cat([ceiling[s] for s in names]))
        print(f"{count:>3} {int(shared.numel()):>8} {truth_median:>6.3f} | {median(shared):>6.3f} ({shared_s:>6.1f} s) | "
              f"{row['nrf'][0]:>6.3f} ({row['nrf'][1]:>6.1f} s) | {row['ln'][0]:>6.3f} ({row['ln'][1]:>6.1f} s) | "
              f"{median(shared) - best:>+13.3f} {shared_s / row['nrf'][1]:>9.2f}x", flush=True)

    new = truth.sessions[max(SESSIONS)]
    n_new = truth.n_neurons[new]
    print(f"\nPart 2: a new session ({n_new} neurons), median test cc_norm as its training stimuli shrink "
          f"(truth {median(ceiling[new]):.3f})")
    print(f"{'stimuli':>7} | {'transfer (readout)':>18} | {'scratch nrf':>11} | {'scratch ln':>10} | {'transfer - best scratch':>23}")
    for k in sorted({args.train, max(1, args.train // 2), 2, 1}, reverse=True):
        few = {new: train[new].subset(range(k))}
        model = copy.deepcopy(shared_model)  # the same pretrained core for every k
        torch.manual_seed(1)
        model.add_session(new, n_neurons=n_new)
        transfer, _ = fit_shared(model, few, {new: valid[new]}, {new: test[new]}, args, batch_size=1, part="readout")
        scratch_nrf, _ = fit_alone(nrf(args, n_new), few[new], valid[new], test[new], args, batch_size=1)
        scratch_ln, _ = fit_alone(ln(args, n_new), few[new], valid[new], test[new], args, batch_size=1)
        best = max(median(scratch_nrf), median(scratch_ln))
        print(f"{k:>7} | {median(transfer):>18.3f} | {median(scratch_nrf):>11.3f} | {median(scratch_ln):>10.3f} | "
              f"{median(transfer) - best:>+23.3f}", flush=True)


if __name__ == "__main__":
    main()
