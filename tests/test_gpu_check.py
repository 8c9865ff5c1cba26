"""benchmarks/gpu_check.py runs on the CPU at its quick sizes and prints sound figures."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def test_gpu_check_runs_on_the_cpu_with_quick_sizes():
    if not SCRIPT.is_file():
        pytest.skip("no benchmarks/ folder beside the tests (an installed package)")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-W", "ignore", str(SCRIPT), "--device", "cpu", "--quick", "--threads", "1"],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    epoch = re.search(r"1\. population epoch.*?([\d.]+) s / epoch, bare forward\+backward ([\d.]+) s.*val cc_norm ([-\d.]+)", out)
    ridge = re.search(r"2\. ridge.*fit ([\d.]+) s; median test cc ([-\d.]+)", out)
    deep = re.search(r"4\. deep model cnn2d, N=\d+, float32: ([\d.]+) s / epoch", out)
    assert epoch and ridge and deep, out
    assert float(epoch.group(1)) > 0 and float(epoch.group(2)) > 0
    # the quick data are learnable: a broken fit or a wrong figure would not reach these
    assert float(epoch.group(3)) > 0.5
    assert float(ridge.group(2)) > 0.5
    sessions = re.search(r"3\. multi-session, nrf core, 2 sessions.*?([\d.]+) s / epoch, median test cc_norm ([-\d.]+|nan);"
                         r".*readout alone on that core: median test cc_norm ([-\d.]+|nan)", out)
    assert sessions and float(sessions.group(1)) > 0, out
