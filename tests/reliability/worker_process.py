"""Start :py:mod:`fault_worker` in a subprocess and read its event lines with a deadline."""

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

WORKER = Path(__file__).with_name("fault_worker.py")
# every wait of these tests is bounded: a hung worker fails the test instead of the suite
DEADLINE_S = 60


class Worker:
    def __init__(self, mode, logdir, epochs=6):
        env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), mode, str(logdir), str(epochs)],
            # unbuffered bytes: a buffered reader would swallow lines that select() then never reports
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0, env=env,
        )
        self.lines = []
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.process.stdout, selectors.EVENT_READ)

    def wait_for(self, prefix, timeout=DEADLINE_S):
        """The first line starting with ``prefix`` (a string or a tuple); fails after ``timeout`` seconds or at the worker's exit."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not self._selector.select(timeout=max(0.0, end - time.monotonic())):
                break
            line = self.process.stdout.readline().decode()
            if not line:
                raise AssertionError(f"worker exited ({self.process.wait()}) before {prefix!r}; it said {self.lines}")
            self.lines.append(line.strip())
            if line.startswith(prefix):
                return line.strip()
        self.kill()
        raise AssertionError(f"no {prefix!r} from the worker within {timeout} s; it said {self.lines}")

    def kill(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=DEADLINE_S)
        self.process.stdout.close()
        self._selector.close()

    def finish(self, timeout=DEADLINE_S):
        """The worker's ``done``/``refused`` line once it ends by itself."""
        try:
            line = self.wait_for(("done", "refused"), timeout)
            self.process.wait(timeout=timeout)
            return line
        finally:
            self.kill()
