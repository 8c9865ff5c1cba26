"""What the bad-input tables share: small data, a small model, and a fingerprint of a folder.

Each table of ``tests/reliability`` lists one bad input per row with the
exception it must raise and a pattern its message must match (the pattern
names the argument, the config key or the file). File cases also compare
:py:func:`snapshot` before and after: a refused input changes nothing on disk.
"""

import hashlib
import os
from pathlib import Path

import torch

import strfsolver
from strfsolver.data import make_loader, synthetic_population

N_NEURONS, N_FREQS, N_LAGS, N_TIMES = 3, 6, 4, 40


def population(seed=1):
    return synthetic_population(n_neurons=N_NEURONS, n_stims=6, n_repeats=3, n_freqs=N_FREQS, n_lags=N_LAGS, n_times=N_TIMES, seed=seed)


def loaders(seed=1, batch_size=2):
    train, valid = population(seed).dataset.split([4 / 6, 2 / 6], seed=0)
    return make_loader(train, batch_size=batch_size, shuffle=True, seed=3), make_loader(valid, batch_size=batch_size)


def model(name="linear", seed=0, **options):
    torch.manual_seed(seed)
    options = {"n_freqs": N_FREQS, "n_lags": N_LAGS, "n_neurons": N_NEURONS, **options}
    return strfsolver.models.init(name, **options)


def solver(name="population", **options):
    options.setdefault("progress", False)
    return strfsolver.solver.init(name, model=options.pop("model", None) or model(), **options)


def snapshot(folder):
    """``{relative path: (sha256, mode)}`` of every file under ``folder`` (``{}`` when it does not exist)."""
    folder = Path(folder)
    if not folder.exists():
        return {}
    if folder.is_file():
        return {".": (hashlib.sha256(folder.read_bytes()).hexdigest(), os.stat(folder).st_mode)}
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            found[str(path.relative_to(folder))] = (hashlib.sha256(path.read_bytes()).hexdigest(), os.stat(path).st_mode)
    return found


def case_ids(cases):
    """pytest ids for a table whose rows start with a short description."""
    return [row[0] for row in cases]
