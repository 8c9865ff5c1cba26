import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from strfsolver.data import NeuralDataset, PaddedLoader, make_loader, neural_collate


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    # the longest stimulus and the most repeats sit in one batch only: others must be trimmed
    lengths = [12, 7, 20, 9, 15, 29, 5, 18, 11, 8, 16]
    repeats = [2, 1, 3, 1, 2, 5, 1, 2, 3, 1, 2]
    stims = [rng.random((4, t)) for t in lengths]
    responses = []
    for t, r in zip(lengths, repeats):
        response = rng.poisson(1.5, (3, r, t)).astype(float)
        response[rng.random(response.shape) < 0.05] = np.nan
        responses.append(response)
    return NeuralDataset(stims, responses, 5.0, meta=[{"name": f"s{i}"} for i in range(11)])


def assert_same_batch(got, want):
    assert set(got) == set(want)
    assert torch.equal(got["stims"], want["stims"])
    # NaN-aware equality: same NaN positions, same values elsewhere
    assert torch.equal(got["responses"].isnan(), want["responses"].isnan())
    assert torch.equal(torch.nan_to_num(got["responses"], -7.0), torch.nan_to_num(want["responses"], -7.0))
    assert torch.equal(got["valid_mask"], want["valid_mask"])
    assert got["meta"] == want["meta"]


@pytest.mark.parametrize("batch_size, drop_last", [(1, False), (3, False), (4, True), (11, False), (20, False)])
def test_batches_equal_dataloader_without_shuffle(data, batch_size, drop_last):
    loader = make_loader(data, batch_size=batch_size, drop_last=drop_last)
    reference = list(DataLoader(data, batch_size=batch_size, collate_fn=neural_collate, drop_last=drop_last))
    got = list(loader)
    assert len(got) == len(reference) == len(loader)
    for a, b in zip(got, reference):
        assert_same_batch(a, b)


def test_shuffled_batches_equal_dataloader_on_the_same_order_across_epochs(data):
    loader = make_loader(data, batch_size=4, shuffle=True, seed=5)
    orders = []
    for epoch in range(3):
        order = loader.order(epoch)
        orders.append(order.tolist())
        assert sorted(order.tolist()) == list(range(11))
        reference = DataLoader(data.subset(order), batch_size=4, collate_fn=neural_collate)
        got = list(loader)
        assert len(got) == 3
        for a, b in zip(got, reference):
            assert_same_batch(a, b)
        assert [m["name"] for batch in got for m in batch["meta"]] == [f"s{i}" for i in order.tolist()]
    assert loader.epoch == 3
    assert len({tuple(o) for o in orders}) == 3  # a new order every epoch


def test_shuffle_depends_only_on_seed_and_epoch(data):
    global_state = torch.get_rng_state()
    a = make_loader(data, batch_size=2, shuffle=True, seed=1)
    b = make_loader(data, batch_size=5, shuffle=True, seed=1)
    c = make_loader(data, batch_size=2, shuffle=True, seed=2)
    torch.manual_seed(123)  # the global generator plays no part
    names = lambda loader: [m["name"] for batch in loader for m in batch["meta"]]  # noqa: E731
    first_a, first_b, first_c = names(a), names(b), names(c)
    assert first_a == first_b
    assert first_a != first_c
    second_a = names(a)
    assert second_a != first_a
    torch.manual_seed(999)
    assert make_loader(data, batch_size=2, shuffle=True, seed=1).order(1).tolist() == [int(n[1:]) for n in second_a]
    torch.set_rng_state(global_state)


def test_state_dict_resumes_the_next_order(data):
    loader = make_loader(data, batch_size=3, shuffle=True, seed=11)
    for _ in range(2):
        list(loader)
    state = loader.state_dict()
    assert state == {"epoch": 2, "seed": 11}
    expected = [m["name"] for batch in loader for m in batch["meta"]]
    fresh = make_loader(data, batch_size=3, shuffle=True, seed=0)
    fresh.load_state_dict(state)
    assert fresh.seed == 11 and fresh.epoch == 2
    assert [m["name"] for batch in fresh for m in batch["meta"]] == expected
    fresh.set_epoch(0)
    assert next(iter(fresh))["meta"] == next(iter(make_loader(data, batch_size=3, shuffle=True, seed=11)))["meta"]
    # mid-epoch, the state already names the next epoch
    iterator = iter(fresh)
    next(iterator)
    assert fresh.state_dict()["epoch"] == 2


def test_lengths_and_trimming(data):
    assert len(make_loader(data, batch_size=4)) == 3
    assert len(make_loader(data, batch_size=4, drop_last=True)) == 2
    assert len(make_loader(data, batch_size=12, drop_last=True)) == 0
    loader = make_loader(data, batch_size=2)
    batch = loader.batch([3, 5])
    assert batch["stims"].shape[-1] == max(data.lengths[3], data.lengths[5])
    assert batch["responses"].shape[2] == max(data.n_repeats[3], data.n_repeats[5])
    # a batch is a fresh tensor, editing it does not touch the loader's copy
    batch["stims"].fill_(-1)
    assert (loader.batch([3, 5])["stims"] >= 0).all()


def test_bad_arguments(data):
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
            make_loader(data, batch_size=bad)
    with pytest.raises(ValueError, match="needs a strfsolver.data.NeuralDataset, got list"):
        make_loader([data[0]], batch_size=1)
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*63 - 1\]"):
        make_loader(data, seed=-1)
    with pytest.raises(ValueError, match="shuffle must be True or False"):
        make_loader(data, shuffle="yes")
    with pytest.raises(ValueError, match="device must name a torch device"):
        make_loader(data, device="nowhere")
    loader = make_loader(data)
    with pytest.raises(ValueError, match="expected a dict with keys 'epoch' and 'seed'"):
        loader.load_state_dict({"epoch": 1})
    with pytest.raises(ValueError, match="epoch must be an integer >= 0"):
        loader.set_epoch(-1)
    with pytest.raises(ValueError, match=r"stimulus indices must lie in \[0, 10\]"):
        loader.batch([11])
    assert isinstance(loader, PaddedLoader) and loader.dataset is data


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_batches_match_cpu(data):
    cpu = list(make_loader(data, batch_size=3, shuffle=True, seed=2))
    gpu = list(make_loader(data, batch_size=3, shuffle=True, seed=2, device="cuda"))
    for a, b in zip(gpu, cpu):
        assert a["stims"].device.type == "cuda"
        assert_same_batch({k: v.cpu() if torch.is_tensor(v) else v for k, v in a.items()}, b)


def test_padding_waits_for_the_first_batch():
    from strfsolver.data import make_loader, synthetic_population

    dataset = synthetic_population(n_neurons=3, n_stims=4, n_repeats=2, n_freqs=4, n_lags=3, n_times=30).dataset
    loader = make_loader(dataset, batch_size=2)
    # a solver training on PSTHs never pads the repeats: nothing is allocated before a batch
    assert not loader.is_padded and len(loader) == 2
    first = next(iter(loader))
    assert loader.is_padded and first["responses"].shape == (2, 3, 2, 30)
