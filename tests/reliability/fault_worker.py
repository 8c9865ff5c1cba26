"""A fit run in its own process by the fault and concurrency tests, so that they can kill it.

:py:func:`child` (what :py:class:`worker_process.Worker` starts) or
``python fault_worker.py MODE LOGDIR [EPOCHS]`` fits the small problem of
:py:mod:`reliability_cases` on one thread (bit-exact comparisons across
processes) and reports one line per event (sent on a pipe, or printed):

- ``saved <epoch>`` after every write of the last checkpoint;
- ``locked <pid>`` after the first checkpoint, the logdir held (``hold`` mode then waits to be killed);
- ``renaming`` when a checkpoint's temporary file is complete and about to be
  renamed (``stall-write`` mode then waits there to be killed);
- ``done <sha256 of the final parameters>`` at the end;
- ``refused <message>`` when the fit is refused (the logdir is in use).

Modes: ``fit`` (fresh), ``resume``, ``hold``, ``stall-write``. The tests
call :py:func:`run` in their own process for the fits nobody kills.
"""

import hashlib
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from reliability_cases import loaders, solver  # noqa: E402
from strfsolver.solver import LogdirInUseError  # noqa: E402


def parameters_digest(model):
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def say(line):
    print(line, flush=True)


def run(mode, logdir, epochs=6, on_event=say):
    """Fit as ``mode`` says on one thread; returns the digest of the final parameters."""
    fitting = solver(lr=1e-2, patience=None)

    def hook(epoch, _solver):
        on_event(f"saved {epoch}")
        if mode == "hold":
            on_event(f"locked {os.getpid()}")
            time.sleep(600)

    if mode == "stall-write":
        real_replace = os.replace

        def stalled_replace(source, target):
            if "checkpoint_last" in str(target) and Path(logdir, "checkpoint_last.safetensors").exists():
                on_event("renaming")
                time.sleep(600)
            return real_replace(source, target)

        os.replace = stalled_replace
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fitting.fit(*loaders(), max_epochs=int(epochs), logdir=logdir, resume=mode == "resume", save_hook=hook)
    finally:
        torch.set_num_threads(threads)
    return parameters_digest(fitting.model)


def child(events, mode, logdir, epochs):
    """The body of a :py:class:`worker_process.Worker`: :py:func:`run`, its events sent on ``events``."""
    import warnings

    warnings.simplefilter("ignore")
    try:
        digest = run(mode, logdir, epochs, on_event=events.send)
    except LogdirInUseError as error:
        events.send(f"refused {error}")
        return
    events.send(f"done {digest}")


def main(mode, logdir, epochs=6):
    try:
        digest = run(mode, logdir, epochs)
    except LogdirInUseError as error:
        say(f"refused {error}")
        return 3
    say(f"done {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
