"""The .npz data file schema: round trips, the rectangular layout, bad files."""

import numpy as np
import pytest
import torch

from strfsolver.data.dataset import NeuralDataset
from strfsolver.data.files import load_npz, save_npz


def ragged_dataset():
    gen = torch.Generator().manual_seed(0)
    stims = [torch.rand(6, t, generator=gen) for t in (30, 25, 40)]
    responses = [torch.poisson(torch.full((4, r, t), 2.0), generator=gen) for r, t in zip((3, 5, 2), (30, 25, 40))]
    responses[1][2, 4, 10:] = float("nan")
    return NeuralDataset(stims, responses, dt_ms=5.0, meta=[{"name": n} for n in ("a", "b", "c")])


def test_round_trip_keeps_every_value(tmp_path):
    dataset = ragged_dataset()
    save_npz(tmp_path / "d.npz", dataset, neuron_ids=["n1", "n2", "n7", "n9"])
    back = load_npz(tmp_path / "d.npz")
    assert back.dt_ms == 5.0
    assert back.n_stims == 3 and back.lengths == [30, 25, 40] and back.n_repeats == [3, 5, 2]
    for ours, theirs in zip(dataset.stims + dataset.responses, back.stims + back.responses):
        assert torch.equal(ours.isnan(), theirs.isnan())
        assert torch.equal(ours.nan_to_num(-1), theirs.nan_to_num(-1))
    assert [m["name"] for m in back.meta] == ["a", "b", "c"]
    assert back.neuron_ids == ["n1", "n2", "n7", "n9"]


def test_file_loads_without_pickle(tmp_path):
    save_npz(tmp_path / "d.npz", ragged_dataset())
    with np.load(tmp_path / "d.npz", allow_pickle=False) as archive:
        assert str(archive["format"]) == "strfsolver-npz"
        assert archive["response_1"].shape == (4, 5, 25)
        assert archive["stim_names"].tolist() == ["a", "b", "c"]


def test_rectangular_layout(tmp_path):
    stims = np.random.rand(2, 5, 20)
    responses = np.random.poisson(1.0, size=(2, 3, 4, 20)).astype(float)
    np.savez(tmp_path / "r.npz", stims=stims, responses=responses, dt_ms=10.0)
    back = load_npz(tmp_path / "r.npz")
    assert back.n_stims == 2 and back.n_neurons == 3 and back.dt_ms == 10.0
    np.testing.assert_allclose(back.responses[1].numpy(), responses[1])
    assert back.neuron_ids == ["0", "1", "2"]


def test_bad_files_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="No data file"):
        load_npz(tmp_path / "missing.npz")
    np.savez(tmp_path / "nodt.npz", stims=np.zeros((1, 2, 3)))
    with pytest.raises(ValueError, match="no 'dt_ms'"):
        load_npz(tmp_path / "nodt.npz")
    np.savez(tmp_path / "short.npz", dt_ms=5.0, n_stims=2, stim_0=np.zeros((2, 3)), response_0=np.zeros((1, 1, 3)))
    with pytest.raises(ValueError, match=r"n_stims=2 but lacks \['stim_1', 'response_1'\]"):
        load_npz(tmp_path / "short.npz")
    np.savez(tmp_path / "mismatch.npz", dt_ms=5.0, n_stims=1, stim_0=np.zeros((2, 30)), response_0=np.zeros((1, 1, 29)))
    with pytest.raises(ValueError, match="stimulus 0"):
        load_npz(tmp_path / "mismatch.npz")
    np.savez(tmp_path / "obj.npz", dt_ms=5.0, stims=np.array([np.zeros(2), np.zeros(3)], dtype=object), responses=np.zeros((2, 1, 1, 2)))
    with pytest.raises(ValueError, match="pickle"):
        load_npz(tmp_path / "obj.npz")
    with pytest.raises(ValueError, match="one id per neuron"):
        save_npz(tmp_path / "x.npz", ragged_dataset(), neuron_ids=["only-one"])


def test_neuron_ids_follow_selection_and_subsets():
    dataset = ragged_dataset()
    dataset.neuron_ids = ["a", "b", "c", "d"]
    assert dataset.select_neurons([3, 1]).neuron_ids == ["d", "b"]
    assert dataset.subset([0, 2]).neuron_ids == ["a", "b", "c", "d"]
    assert all(part.neuron_ids == ["a", "b", "c", "d"] for part in dataset.split((0.5, 0.5), seed=1))
    with pytest.raises(ValueError, match="neuron_ids has 2 entries but the responses have 4 neurons"):
        dataset.neuron_ids = ["x", "y"]
    assert ragged_dataset().neuron_ids == ["0", "1", "2", "3"]
