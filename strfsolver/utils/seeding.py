"""Reproducibility: one call seeds every random number generator in play."""

from __future__ import annotations

import contextlib
import os
import random
from typing import Iterator

import numpy as np
import torch

from strfsolver.utils.checks import check_seed

__all__ = ["set_random_seed", "get_rng_state", "set_rng_state", "seeded"]


def set_random_seed(seed: int, strict: bool = False) -> None:
    """Seed Python's ``random``, NumPy and torch (CPU and every CUDA device).

    Args:
        seed: A non-negative integer.
        strict: Also ask torch for deterministic algorithms (slower on GPU, and
            some operations then raise instead of running nondeterministically).
    """
    seed = check_seed(seed, "seed")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if strict:
        # cuBLAS needs this set before its first call to be deterministic
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def get_rng_state() -> dict:
    """The state of every generator :py:func:`set_random_seed` seeds, storable with
    :py:func:`strfsolver.utils.io.save_state`."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    # only a CUDA that is in use has a state worth keeping; asking an unused one
    # would initialise it, which breaks a later fork()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict) -> None:
    """Restore a state returned by :py:func:`get_rng_state`."""
    python_state = state["python"]
    # JSON round trips turn the inner tuple into a list; random wants tuples
    random.setstate((python_state[0], tuple(python_state[1]), python_state[2]))
    np_state = state["numpy"]
    np.random.set_state(tuple(np_state))
    torch.set_rng_state(state["torch"].cpu().to(torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu().to(torch.uint8) for s in state["cuda"]])


@contextlib.contextmanager
def restored_determinism() -> Iterator[None]:
    """Run a block and put torch's determinism settings back after it.

    ``set_random_seed(seed, strict=True)`` switches deterministic algorithms
    on for the whole process; a fit that asks for it inside this block
    (``"multi-seed"`` with ``set_seed_strict``) leaves the caller's settings as
    they were.
    """
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
    )
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[2], saved[3]


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block with every generator seeded by ``seed``, and put the caller's states back after.

    What :py:func:`set_random_seed` gives a script, without touching the
    random streams of the program around it (as a scikit-learn estimator
    must): ``with seeded(0): model = build()`` draws the same weights every
    time and leaves ``random``, NumPy and torch as they were.
    """
    saved = get_rng_state()
    set_random_seed(seed)
    try:
        yield
    finally:
        set_rng_state(saved)
