"""Runs on executors (process pool, dask) equal sequential runs; run_many; bad executors."""

import pickle

import pytest
import torch

import strfsolver
from strfsolver.workflow import distributed
from strfsolver.data import make_loader, synthetic_population
from strfsolver.solver.multi_seed import SeedRun

SIZES = dict(n_neurons=5, n_stims=8, n_repeats=6, n_freqs=6, n_lags=4, n_times=80)
FAST = dict(max_epochs=3, lr=1e-2)


@pytest.fixture(scope="module")
def loaders():
    data = synthetic_population(**SIZES, seed=5).dataset
    train, valid = data.split([0.75, 0.25], seed=0)
    return make_loader(train, batch_size=2, shuffle=True, seed=3), make_loader(valid, batch_size=2)


@pytest.fixture(scope="module")
def pool(spawn_pool):
    # the suite's shared spawned pool (tests/conftest.py)
    return spawn_pool


def model_factory():
    # a closure over sizes: not picklable by plain pickle, which is the point
    n_freqs, n_lags, n_neurons = SIZES["n_freqs"], SIZES["n_lags"], SIZES["n_neurons"]
    return lambda seed: strfsolver.models.init("ln", n_freqs=n_freqs, n_lags=n_lags, n_neurons=n_neurons)


def assert_same_runs(runs, expected):
    assert [r.seed for r in runs] == [r.seed for r in expected]
    for run, ref in zip(runs, expected):
        assert run.state_dict.keys() == ref.state_dict.keys()
        for key, value in ref.state_dict.items():
            assert torch.equal(run.state_dict[key], value), (run.seed, key)
        drop = lambda rows: [{k: v for k, v in row.items() if k != "seconds"} for row in rows]  # noqa: E731
        assert drop(run.history) == drop(ref.history)
        for split, metrics in ref.neurons.items():
            for name, values in metrics.items():
                torch.testing.assert_close(run.neurons[split][name], values, rtol=0, atol=0, equal_nan=True)


@pytest.fixture(scope="module")
def sequential(loaders):
    torch.set_num_threads(1)
    ms = strfsolver.solver.init("multi-seed", model_factory=model_factory(), n_seeds=2, **FAST)
    return ms.fit(*loaders).result_


def test_lambdas_do_not_pickle_plainly():
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        pickle.dumps(model_factory())


def test_process_pool_equals_sequential(loaders, pool, sequential, tmp_path):
    ms = strfsolver.solver.init("multi-seed", model_factory=model_factory(), n_seeds=2, executor=pool, logdir=tmp_path, **FAST)
    result = ms.fit(*loaders).result_
    assert_same_runs(result.runs, sequential.runs)
    assert result.best_seed == sequential.best_seed
    assert result.summary.equals(sequential.summary)
    # the workers wrote the per-seed files
    assert (tmp_path / "seed_1" / "final_neurons.safetensors").is_file() and (tmp_path / "summary.csv").is_file()


def test_dask_equals_sequential(loaders, sequential):
    dask_distributed = pytest.importorskip("distributed")
    # in-process workers, no network beyond inproc/loopback, no dashboard
    cluster = dask_distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None)
    with cluster, dask_distributed.Client(cluster) as client:
        ms = strfsolver.solver.init("multi-seed", model_factory=model_factory(), n_seeds=2, executor=client.get_executor(), **FAST)
        result = ms.fit(*loaders).result_
    assert_same_runs(result.runs, sequential.runs)
    assert result.summary.equals(sequential.summary)


def grid_configs(loaders):
    factory = model_factory()
    return [
        {"model_factory": factory, "loaders": loaders, "seed": 0, "solver_kwargs": {"lr": lr, "max_epochs": 2}}
        for lr in (1e-2, 3e-2)
    ]


def test_run_many_grid_on_a_pool_equals_sequential(loaders, pool):
    configs = grid_configs(loaders)
    here = strfsolver.workflow.distributed.run_many(configs)
    there = strfsolver.workflow.distributed.run_many(configs, executor=pool)
    assert all(isinstance(r, SeedRun) for r in here + there)
    assert_same_runs(there, here)
    # the two learning rates did give two different fits
    assert not all(torch.equal(here[0].state_dict[k], here[1].state_dict[k]) for k in here[0].state_dict)


def test_run_many_callables_keep_their_order(pool):
    offset = 10
    configs = [(lambda i=i: (i, offset + i * i)) for i in range(5)]
    assert distributed.run_many(configs, executor=pool) == [(i, 10 + i * i) for i in range(5)]
    assert distributed.run_many(configs) == [(i, 10 + i * i) for i in range(5)]


def test_a_failing_config_raises_its_error(pool):
    def broken():
        raise ValueError("config 1 is broken")

    with pytest.raises(ValueError, match="config 1 is broken"):
        distributed.run_many([lambda: 1, broken], executor=pool)


def test_sequential_runs_leave_the_random_state_and_threads_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    # the config draws from and reseeds the global generator, and changes the thread count
    out = distributed.run_many([lambda: (torch.manual_seed(9), torch.rand(1), torch.get_num_threads())[1:]], threads=2)
    assert out[0][1] == 2  # it ran with the requested threads
    assert torch.get_num_threads() == 1
    assert torch.equal(torch.rand(3), expected)


def test_bad_arguments(loaders):
    with pytest.raises(ValueError, match="executor must have the concurrent.futures interface.*got object"):
        distributed.run_many([lambda: 1], executor=object())
    with pytest.raises(ValueError, match=r"configs\[1\] must be a callable taking no argument or a dict.*got int"):
        distributed.run_many([lambda: 1, 3])
    with pytest.raises(ValueError, match=r"configs\[0\] has unknown key\(s\) \['modle_factory'\]"):
        distributed.run_many([{"modle_factory": model_factory(), "loaders": loaders}])
    with pytest.raises(ValueError, match="got a single function; wrap it in a list"):
        distributed.run_many(lambda: 1)
    with pytest.raises(ValueError, match="Unknown name 'single'"):
        distributed.run_many([{"model_factory": model_factory(), "loaders": loaders, "solver": "single"}])
    with pytest.raises(ValueError, match="either loaders .* or loader_factory .*, not neither"):
        distributed.run_many([{"model_factory": model_factory()}])
    with pytest.raises(ValueError, match="threads must be an integer >= 1"):
        distributed.run_many([lambda: 1], threads=0)
