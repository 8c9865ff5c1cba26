import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from strfsolver.data import NeuralDataset, neural_collate


def small_dataset(channels=None):
    rng = np.random.default_rng(1)
    lengths, repeats = (5, 8, 3), (2, 4, 1)
    lead = (channels, 3) if channels else (3,)
    stims = [rng.random(lead + (t,)) + 0.5 for t in lengths]
    responses = [rng.poisson(2.0, (2, r, t)).astype(float) for t, r in zip(lengths, repeats)]
    responses[1][1, 2, 6] = np.nan  # a missing bin inside the data
    return NeuralDataset(stims, responses, 5.0, meta=[{"name": n} for n in "xyz"])


def test_padding_values_and_mask():
    data = small_dataset()
    batch = neural_collate([data[i] for i in range(3)])
    assert set(batch) == {"stims", "responses", "valid_mask", "meta"}
    stims, responses, mask = batch["stims"], batch["responses"], batch["valid_mask"]
    assert stims.shape == (3, 3, 8) and responses.shape == (3, 2, 4, 8) and mask.shape == (3, 2, 4, 8)
    assert stims.dtype == responses.dtype == torch.float32 and mask.dtype == torch.bool
    for b, (t, r) in enumerate(zip(data.lengths, data.n_repeats)):
        assert torch.equal(stims[b, :, :t], data.stims[b])
        assert (stims[b, :, t:] == 0).all()  # zero-padded in time
        same = responses[b, :, :r, :t]
        assert torch.equal(same.isnan(), data.responses[b].isnan())
        assert torch.equal(torch.nan_to_num(same, -1.0), torch.nan_to_num(data.responses[b], -1.0))
        assert responses[b, :, r:, :].isnan().all()  # NaN-padded in repeats
        assert responses[b, :, :, t:].isnan().all()  # and in time
    assert torch.equal(mask, ~responses.isnan())
    assert not mask[1, 1, 2, 6] and mask[1, 1, 2, 5]
    # counts: stimulus 0 has 2 repeats x 5 bins, 1 has 4 x 8 minus the missing bin, 2 has 1 x 3
    assert mask.sum(dim=(2, 3)).tolist() == [[10, 10], [32, 31], [3, 3]]
    assert batch["meta"] == [{"name": "x"}, {"name": "y"}, {"name": "z"}]


def test_channels_are_padded_too():
    data = small_dataset(channels=2)
    batch = neural_collate([data[2], data[0]])
    assert batch["stims"].shape == (2, 2, 3, 5)
    assert (batch["stims"][0, :, :, 3:] == 0).all()
    assert torch.equal(batch["stims"][1], data.stims[0])


def test_works_with_a_plain_dataloader():
    data = small_dataset()
    batches = list(DataLoader(data, batch_size=2, collate_fn=neural_collate))
    assert [b["responses"].shape for b in batches] == [(2, 2, 4, 8), (1, 2, 1, 3)]
    assert batches[1]["meta"] == [{"name": "z"}]


def test_bad_items():
    data = small_dataset()
    with pytest.raises(ValueError, match="at least one item"):
        neural_collate([])
    with pytest.raises(ValueError, match="item 1 must be a dict with keys 'stim' and 'response'"):
        neural_collate([data[0], {"stim": data[1]["stim"]}])
    other = {"stim": torch.zeros(4, 5), "response": torch.zeros(2, 1, 5), "meta": {}}
    with pytest.raises(ValueError, match=r"item 1 has a stimulus of shape \(4, 5\) but item 0 has \(3, 5\)"):
        neural_collate([data[0], other])
    bad = {"stim": torch.zeros(3, 5), "response": torch.zeros(3, 1, 5), "meta": {}}
    with pytest.raises(ValueError, match=r"item 1 has responses of shape \(3, 1, 5\) .* expected \(2, R, 5\)"):
        neural_collate([data[0], bad])
