"""Benchmark: the solvers of two checkouts of strfsolver, side by side, in alternating rounds.

Runs ``benchmarks/bench_solvers.py`` (this checkout's copy, which works with
both APIs) once per round for each version, alternating the order of the two
within a round, each in a fresh interpreter with ``PYTHONPATH`` set to that
checkout, and prints for every solver the median seconds per epoch of each
version, their ratio (other / this, > 1: this checkout is faster), and
whether the final validation ``cc_norm`` is identical in every round::

    git worktree add /tmp/before <commit>
    python benchmarks/bench_solvers_versions.py /tmp/before --rounds 10

Machines shared with other jobs drift; alternating rounds and medians keep
the drift out of the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def run_once(checkout: Path, extra: list) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        env = dict(os.environ, PYTHONPATH=str(checkout))
        subprocess.run([sys.executable, "-W", "ignore", str(HERE / "bench_solvers.py"), "--json", str(out), *extra],
                       env=env, check=True, capture_output=True, text=True)
        result = json.loads(out.read_text())
    if not result["strfsolver"].startswith(str(checkout)):
        raise RuntimeError(f"the run for {checkout} imported strfsolver from {result['strfsolver']}")
    return result["results"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", help="the other checkout (e.g. a git worktree of the commit before a change)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--solvers", nargs="+", default=None, help="only these solvers (default: all four)")
    args = parser.parse_args(argv)
    versions = {"this": ROOT, "other": Path(args.other).resolve()}
    extra = ["--threads", str(args.threads), "--epochs", str(args.epochs)] + (["--solvers", *args.solvers] if args.solvers else [])
    rounds = {name: [] for name in versions}
    for index in range(args.rounds):
        order = list(versions) if index % 2 == 0 else list(reversed(list(versions)))
        for name in order:
            rounds[name].append(run_once(versions[name], extra))
        print(f"round {index + 1}/{args.rounds} done", flush=True)
    print(f"this: {versions['this']}; other: {versions['other']}; {args.rounds} alternating rounds, "
          f"{args.threads} thread(s), {args.epochs} epochs, {os.cpu_count()} cores")
    print(f"{'solver':<16}{'this s/ep':>11}{'other s/ep':>12}{'other/this':>12}  final val cc_norm")
    for solver in rounds["this"][0]:
        this = statistics.median(r[solver]["s_per_epoch"] for r in rounds["this"])
        other = statistics.median(r[solver]["s_per_epoch"] for r in rounds["other"])
        scores = {r[solver]["val_cc_norm"] for name in versions for r in rounds[name]}
        same = "identical" if len(scores) == 1 else f"DIFFERENT: {sorted(scores)}"
        print(f"{solver:<16}{this:>11.4f}{other:>12.4f}{other / this:>12.3f}  {same} ({next(iter(scores)):.6f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
