"""Dataset folders: written piecewise, read per stimulus, trained from without loading them."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import strfsolver
from strfsolver.data import FolderWriter, NeuralDataset, make_loader, open_folder, save_folder


def _arrays(seed=0, neurons=4, lengths=(30, 45, 25, 40, 35), repeats=(3, 2, 4, 3, 1)):
    rng = np.random.default_rng(seed)
    stims = [rng.standard_normal((5, t)).astype(np.float32) for t in lengths]
    responses = [rng.poisson(1.0, (neurons, r, t)).astype(np.float32) for t, r in zip(lengths, repeats)]
    responses[1][:, 1, 30:] = np.nan
    responses[3][2] = np.nan
    return stims, responses


@pytest.mark.parametrize("repeats", ["all", "summary"])
def test_a_folder_reads_back_what_was_written(tmp_path, repeats):
    stims, responses = _arrays()
    memory = NeuralDataset(stims, responses, dt_ms=2.5, meta=[{"name": f"s{i}"} for i in range(5)],
                           neuron_ids=["a", "b", "c", "d"], repeats=repeats)
    with FolderWriter(tmp_path / "data", dt_ms=2.5, repeats=repeats, neuron_ids=memory.neuron_ids) as writer:
        writer.add_dataset(memory.subset([0, 1]))
        for i in (2, 3, 4):
            writer.add(stims[i], responses[i], meta={"name": f"s{i}"})
    disk = open_folder(tmp_path / "data")
    assert disk.on_disk and not memory.on_disk and disk.repeats == repeats
    assert (disk.lengths, disk.n_repeats, disk.neuron_ids, disk.dt_ms) == (memory.lengths, memory.n_repeats, memory.neuron_ids, 2.5)
    assert [m["name"] for m in disk.meta] == [f"s{i}" for i in range(5)]
    for a, b in zip(disk.stims, memory.stims):
        assert torch.equal(a, b)
    for a, b in zip(disk.psths, memory.psths):
        torch.testing.assert_close(a, b, equal_nan=True)
    for a, b in zip(disk.repeat_statistics, memory.repeat_statistics):
        torch.testing.assert_close(a, b, equal_nan=True)
    assert torch.equal(disk.recorded, memory.recorded)
    # subsets and neuron selections stay on disk and read the right rows
    part = disk.select_neurons([3, 1]).subset([4, 1])
    assert part.on_disk and part.n_neurons == 2 and part.lengths == [35, 45]
    torch.testing.assert_close(part.psths[1], memory.psths[1][[3, 1]], equal_nan=True)
    assert torch.equal(part.recorded, memory.recorded[[4, 1]][:, [3, 1]])


def test_unfinished_or_inconsistent_folders_are_refused(tmp_path):
    stims, responses = _arrays()
    writer = FolderWriter(tmp_path / "open", dt_ms=5)
    writer.add(stims[0], responses[0])
    with pytest.raises(ValueError, match="unfinished dataset folder"):
        open_folder(tmp_path / "open")
    with pytest.raises(ValueError, match="3 neurons.*first part had 4.*every part must match"):
        writer.add(stims[1], responses[1][:3])
    with pytest.raises(ValueError, match="not an empty folder"):
        FolderWriter(tmp_path / "open", dt_ms=5)
    with pytest.raises(ValueError, match="repeats must be one of"):
        FolderWriter(tmp_path / "other", dt_ms=5, repeats="some")
    with pytest.raises(ValueError, match="responses for stimulus 0 have shape"):
        writer.add(stims[1], responses[2])  # validated as a NeuralDataset would be
    writer.close()
    np.save(tmp_path / "open" / "response_000000.npy", np.zeros((4, 3, 29), dtype=np.float32))
    with pytest.raises(ValueError, match=r"response_000000.npy has shape \(4, 3, 29\) but the index says \(4, 3, 30\)"):
        open_folder(tmp_path / "open")


def test_a_fit_from_a_folder_equals_the_in_memory_fit(tmp_path):
    stims, responses = _arrays(seed=2, lengths=(30, 45, 25, 40, 35, 50), repeats=(3, 2, 4, 3, 1, 2))
    memory = NeuralDataset(stims, responses, dt_ms=5)
    disk = open_folder(save_folder(tmp_path / "d", memory))
    logs = []
    for data in (memory, disk):
        train, valid = data.split(0.67, seed=1)
        torch.manual_seed(0)
        model = strfsolver.models.init("ln", n_neurons=4, n_freqs=5, n_lags=3)
        solver = strfsolver.solver.init("population", model=model, max_epochs=2, progress=False)
        solver.fit(make_loader(train, batch_size=2, shuffle=True), make_loader(valid, batch_size=2))
        logs.append([(row["train_loss"], row["val_cc_norm"]) for row in solver.log])
    np.testing.assert_allclose(logs[0], logs[1], rtol=1e-6)


_LIMITED_FIT = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np, torch
    import strfsolver
    from strfsolver.data import make_loader, open_folder

    torch.set_num_threads(1)
    folder, budget = sys.argv[1], int(sys.argv[2])
    data = open_folder(folder)
    train, valid = data.split(0.75, seed=0)

    def solver(epochs):
        torch.manual_seed(0)
        model = strfsolver.models.init("ln", n_neurons=data.n_neurons, n_freqs=data.n_freqs, n_lags=5)
        return strfsolver.solver.init("population", model=model, max_epochs=epochs, progress=False)

    # a fit of one stimulus first: lazy imports and the allocator's pools exist before the limit
    solver(1).fit(make_loader(train.subset([0])), make_loader(valid.subset([0])))
    solver = solver(1)
    with open("/proc/self/status") as status:
        used = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (used + budget, used + budget))
    solver.fit(make_loader(train, batch_size=2, shuffle=True), make_loader(valid, batch_size=2))
    try:  # the control: the same data loaded whole do not fit under the limit
        whole = [np.array(data.responses[i]) for i in range(len(data))]
        loaded = True
    except MemoryError:
        loaded = False
    print(json.dumps({"epochs": len(solver.log), "val_cc": solver.log[-1]["val_cc"], "loaded_whole": loaded}))
    """
)


def test_training_from_a_folder_larger_than_the_memory_limit(tmp_path):
    rng = np.random.default_rng(0)
    neurons, repeats, bins, n_stims, freqs = 40, 8, 1000, 64, 8
    with FolderWriter(tmp_path / "big", dt_ms=5) as writer:
        for _ in range(n_stims):  # one stimulus in memory at a time
            stim = rng.standard_normal((freqs, bins)).astype(np.float32)
            rate = np.exp(0.3 * stim[:1] - 1.0)
            writer.add(stim, rng.poisson(np.broadcast_to(rate, (neurons, repeats, bins))).astype(np.float32))
    dataset_bytes = n_stims * (neurons * repeats + freqs) * bins * 4
    budget = 56 << 20
    assert dataset_bytes > 1.4 * budget
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(strfsolver.__file__))] + sys.path))
    run = subprocess.run([sys.executable, "-c", _LIMITED_FIT, str(tmp_path / "big"), str(budget)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["epochs"] == 1 and result["val_cc"] > 0.1
    assert not result["loaded_whole"]


def test_ridge_statistics_stream_from_a_folder(tmp_path):
    stims, responses = _arrays(seed=4, lengths=(40, 35, 50, 45, 30, 55), repeats=(3, 2, 4, 3, 2, 3))
    memory = NeuralDataset(stims, responses, dt_ms=5)
    disk = open_folder(save_folder(tmp_path / "d", memory))
    fits = []
    for data in (memory, disk):
        train, valid = data.split(0.67, seed=2)
        solver = strfsolver.solver.init("ridge", model=strfsolver.models.init("linear", n_neurons=4, n_freqs=5, n_lags=3), cv=2, progress=False)
        solver.fit(make_loader(train, batch_size=2), make_loader(valid, batch_size=2))
        fits.append((solver.alphas_.numpy(), solver.model.strf().detach().numpy(), solver.log[-1]["val_cc"]))
    np.testing.assert_array_equal(fits[0][0], fits[1][0])
    np.testing.assert_allclose(fits[0][1], fits[1][1], rtol=1e-5, atol=1e-7)
    assert fits[0][2] == pytest.approx(fits[1][2], abs=1e-6)


def test_a_part_with_its_neurons_in_another_order_is_refused_not_mislabelled(tmp_path):
    rng = np.random.default_rng(3)
    stims = [rng.standard_normal((4, 20)) for _ in range(2)]
    responses = [rng.poisson(2.0, (3, 2, 20)).astype(float) for _ in range(2)]
    part = NeuralDataset(stims, responses, dt_ms=5, neuron_ids=["c", "b", "a"])
    with pytest.raises(ValueError, match=r"position 0: 'c' against 'a'.*select_neurons"):
        FolderWriter(tmp_path / "labelled", dt_ms=5, neuron_ids=["a", "b", "c"]).add_dataset(part)
    # two parts in different orders: the second is refused, the first labels the folder
    writer = FolderWriter(tmp_path / "parts", dt_ms=5)
    writer.add_dataset(part)
    with pytest.raises(ValueError, match="folder's order"):
        writer.add_dataset(NeuralDataset(stims, responses, dt_ms=5, neuron_ids=["a", "b", "c"]))
    # the same part reordered to the folder's labels is accepted, and every label keeps its neuron
    writer.add_dataset(NeuralDataset(stims, [r[::-1] for r in responses], dt_ms=5, neuron_ids=["a", "b", "c"]).select_neurons([2, 1, 0]))
    folder = open_folder(writer.close())
    assert folder.neuron_ids == ["c", "b", "a"]
    assert np.array_equal(folder.responses[2].numpy(), folder.responses[0].numpy())
    # add() labels each stimulus with the writer's ids
    with FolderWriter(tmp_path / "single", dt_ms=5, neuron_ids=["x", "y", "z"]) as single:
        single.add(stims[0], responses[0])
    assert open_folder(tmp_path / "single").neuron_ids == ["x", "y", "z"]
