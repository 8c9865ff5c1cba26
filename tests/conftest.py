"""Fixtures shared by the whole test suite."""

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Run each test on one intra-op thread, restored afterwards.

    The tests use tiny tensors: on a 2-core machine shared with other jobs,
    OpenMP barriers cost more than the threads save (up to 10x on small fits).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA device; reported as skipped where there is none")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (run these on a GPU machine: pytest -m cuda)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def spawn_pool():
    """One 2-worker process pool for every test that needs one: starting workers (torch imports) is the cost.

    Spawned, not forked: a forked child of a process whose torch thread pool already ran can hang.
    """
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as executor:
        yield executor
