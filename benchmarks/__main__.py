"""Run every benchmark, one after the other: ``python -m benchmarks``.

Each benchmark runs in its own process (peak-memory figures stay separate) with
its default settings; extra arguments are passed to every script, e.g.
``python -m benchmarks --threads 1``. Pass ``--only metrics population`` to pick
some. The whole set takes a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
BENCHMARKS = {
    "metrics": ["bench_metrics.py"],
    "population": ["bench_population.py"],
    "epoch": ["bench_epoch.py", "--quick"],
    "single_cell": ["bench_single_cell.py"],
    "multi_seed": ["bench_multi_seed.py"],
    "solvers": ["bench_solvers.py"],
    # the full size takes half an hour on 2 cores: python benchmarks/bench_ridge.py
    "ridge": ["bench_ridge.py", "--quick"],
    "compare": ["bench_compare.py", "--quick"],
    "prediction_stats": ["bench_prediction_stats.py"],
    "multi_session": ["bench_multi_session.py", "--quick"],
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these benchmarks")
    args, extra = parser.parse_known_args(argv)
    names = args.only or list(BENCHMARKS)
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, python {platform.python_version()}")
    failures = []
    for name in names:
        command = [sys.executable, str(HERE / BENCHMARKS[name][0]), *BENCHMARKS[name][1:], *extra]
        print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
        start = time.perf_counter()
        status = subprocess.call(command, cwd=HERE.parent)
        print(f"=== {name}: {'ok' if status == 0 else f'FAILED ({status})'} in {time.perf_counter() - start:.0f} s", flush=True)
        if status:
            failures.append(name)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
