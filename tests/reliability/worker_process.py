"""Start :py:mod:`fault_worker` in a child process that the tests may SIGKILL, and read its events with a deadline.

Children come from a ``forkserver`` that has imported strfsolver once: each
is a fresh process (its own torch threads, its own file locks), without the
seconds an interpreter needs to import torch again. A fork of the test
process itself would inherit its thread pools, which is not safe.
"""

import multiprocessing
import signal
import sys
import time
from pathlib import Path

# every wait of these tests is bounded: a hung worker fails the test instead of the suite
DEADLINE_S = 60

_CONTEXT = multiprocessing.get_context("forkserver")
sys.path.insert(0, str(Path(__file__).parent))
_CONTEXT.set_forkserver_preload(["fault_worker"])


class Worker:
    def __init__(self, mode, logdir, epochs=6):
        import fault_worker

        self._events, child_end = _CONTEXT.Pipe(duplex=False)
        self.process = _CONTEXT.Process(target=fault_worker.child, args=(child_end, mode, str(logdir), int(epochs)), daemon=True)
        self.process.start()
        child_end.close()
        self.lines = []

    @property
    def pid(self):
        return self.process.pid

    def wait_for(self, prefix, timeout=DEADLINE_S):
        """The first event starting with ``prefix`` (a string or a tuple); fails after ``timeout`` seconds or at the worker's exit."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not self._events.poll(max(0.0, end - time.monotonic())):
                break
            try:
                line = self._events.recv()
            except EOFError:
                self.process.join(DEADLINE_S)
                raise AssertionError(f"worker exited ({self.process.exitcode}) before {prefix!r}; it said {self.lines}") from None
            self.lines.append(line)
            if line.startswith(prefix):
                return line
        self.kill()
        raise AssertionError(f"no {prefix!r} from the worker within {timeout} s; it said {self.lines}")

    def kill(self):
        if self.process.exitcode is None:
            self.process.kill()  # SIGKILL: no handler, no cleanup, as a crash or the OOM killer
        self.process.join(DEADLINE_S)
        assert self.process.exitcode is not None, "the worker survived SIGKILL"
        self._events.close()

    @property
    def killed(self):
        return self.process.exitcode == -signal.SIGKILL

    def finish(self, timeout=DEADLINE_S):
        """The worker's ``done``/``refused`` event once it ends by itself."""
        try:
            line = self.wait_for(("done", "refused"), timeout)
            self.process.join(timeout)
            return line
        finally:
            self.kill()
