"""Single-cell fits: the "single-cell" solver against a loop of one-neuron population fits.

The loop is what users write without the solver: for every neuron, select
its responses, build a one-neuron model and fit it with the "population"
solver. Both sides use the same data, the same loaders (same shuffle
order), the same options (epochs, patience, learning rate) and the same
initial values per neuron, so their results must agree; the figure of merit
is the wall-clock time.

Run:  python benchmarks/bench_single_cell.py            (under a minute on a 2-core CPU)
      python benchmarks/bench_single_cell.py --neurons 16 --epochs 5   (a quick look)
"""

from __future__ import annotations

import argparse
import time

import torch

import strfsolver
from strfsolver.data import make_loader, synthetic_population


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=64)
    parser.add_argument("--stims", type=int, default=20)
    parser.add_argument("--freqs", type=int, default=16)
    parser.add_argument("--lags", type=int, default=10)
    parser.add_argument("--times", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2e-2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default); both sides use the same")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    pop = synthetic_population(n_neurons=args.neurons, n_stims=args.stims, n_repeats=args.repeats, n_freqs=args.freqs,
                               n_lags=args.lags, n_times=args.times, seed=0)
    train, valid = pop.dataset.split([0.75, 0.25], seed=0)
    options = dict(lr=args.lr, max_epochs=args.epochs, patience=args.patience, metrics=("cc_norm",), progress=False,
                   device=args.device)
    print(f"data: {args.neurons} neurons, {len(train)} train / {len(valid)} valid stimuli of {args.times} bins, "
          f"{args.freqs} bands, {args.repeats} repeats; model 'ln' with {args.lags} lags; "
          f"{args.epochs} epochs max, patience {args.patience}, batch size {args.batch_size}, "
          f"{torch.get_num_threads()} threads, device {args.device}")

    def loaders(train_set, valid_set):
        return (make_loader(train_set, batch_size=args.batch_size, shuffle=True, seed=1, device=args.device),
                make_loader(valid_set, batch_size=8, device=args.device))

    # warm-up, not timed: first calls of the convolution kernels and allocators
    for name in ("single-cell", "population"):
        warm = strfsolver.models.init("ln", n_freqs=args.freqs, n_lags=args.lags, n_neurons=args.neurons if name == "single-cell" else 1)
        strfsolver.solver.init(name, model=warm, **dict(options, max_epochs=1)).fit(
            *loaders(train if name == "single-cell" else train.select_neurons([0]), valid if name == "single-cell" else valid.select_neurons([0])))

    torch.manual_seed(0)
    model = strfsolver.models.init("ln", n_freqs=args.freqs, n_lags=args.lags, n_neurons=args.neurons)
    # each neuron's exact initial values, for the loop (not timed)
    stack = strfsolver.solver.NeuronStack(model)
    initial = [stack.neuron_model(n) for n in range(args.neurons)]

    start = time.perf_counter()
    solver = strfsolver.solver.init("single-cell", model=model, **options)
    solver.fit(*loaders(train, valid))
    stacked_seconds = time.perf_counter() - start
    stacked_cc = solver.validation(loaders(train, valid)[1])["cc_norm"]

    start = time.perf_counter()
    loop_cc, loop_epochs = [], []
    for n in range(args.neurons):
        one = strfsolver.solver.init("population", model=initial[n], **options)
        train_n, valid_n = train.select_neurons([n]), valid.select_neurons([n])
        log = one.fit(*loaders(train_n, valid_n)).log
        loop_cc.append(one.validation(loaders(train_n, valid_n)[1])["cc_norm"][0])
        loop_epochs.append(len(log))
    loop_seconds = time.perf_counter() - start
    loop_cc = torch.stack(loop_cc)

    stopped = solver.stopped_epochs_ + 1
    agree = (stacked_cc - loop_cc).abs()
    print(f"single-cell solver : {stacked_seconds:8.2f} s  ({len(solver.log)} epochs; per-neuron epochs "
          f"{int(stopped.min())}-{int(stopped.max())})")
    print(f"loop of {args.neurons} fits   : {loop_seconds:8.2f} s  (per-neuron epochs {min(loop_epochs)}-{max(loop_epochs)})")
    print(f"speed-up           : {loop_seconds / stacked_seconds:8.1f} x")
    print(f"cc_norm agreement  : max |diff| {float(agree.max()):.2e}  (median cc_norm {float(stacked_cc.median()):.3f}); "
          f"same stopping epoch for {int((stopped == torch.tensor(loop_epochs)).sum())}/{args.neurons} neurons")


if __name__ == "__main__":
    main()
