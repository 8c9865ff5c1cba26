import re

import numpy as np
import pytest
import torch

from strfsolver.data import NeuralDataset


def make_arrays(lengths=(30, 20, 25, 40), n_neurons=4, n_freqs=6, repeats=None, channels=None, seed=0):
    rng = np.random.default_rng(seed)
    repeats = repeats or [3] * len(lengths)
    lead = (channels, n_freqs) if channels else (n_freqs,)
    stims = [rng.random(lead + (t,)) for t in lengths]
    responses = [rng.poisson(1.0, (n_neurons, r, t)).astype(float) for t, r in zip(lengths, repeats)]
    return stims, responses


def test_construction_stores_float32_cpu_copies_and_properties():
    stims, responses = make_arrays(repeats=[3, 2, 5, 1])
    responses[1][0, 1, 4] = np.nan  # missing bin is allowed
    data = NeuralDataset(stims, [torch.from_numpy(r) for r in responses], dt_ms=5)
    assert len(data) == data.n_stims == 4
    assert (data.n_neurons, data.n_freqs, data.n_channels, data.stim_ndim) == (4, 6, 1, 2)
    assert data.lengths == [30, 20, 25, 40]
    assert data.n_repeats == [3, 2, 5, 1]
    assert data.dt_ms == 5.0 and isinstance(data.dt_ms, float)
    assert data.meta == [{"index": i} for i in range(4)]
    for s, r, s0, r0 in zip(data.stims, data.responses, stims, responses):
        assert s.dtype == r.dtype == torch.float32 and s.device.type == "cpu"
        np.testing.assert_allclose(s.numpy(), s0, rtol=1e-6)
        np.testing.assert_array_equal(np.isnan(r.numpy()), np.isnan(r0))
    assert torch.isnan(data.responses[1][0, 1, 4])
    # a copy: editing the caller's array afterwards cannot break the checks
    stims[0][0, 0] = np.nan
    assert torch.isfinite(data.stims[0]).all()
    item = data[2]
    assert set(item) == {"stim", "response", "meta"}
    assert item["stim"].shape == (6, 25) and item["response"].shape == (4, 5, 25)
    assert item["meta"] == {"index": 2}
    assert data[-1]["stim"].shape == (6, 40)


def test_channels_and_meta():
    stims, responses = make_arrays(lengths=(10, 12), channels=2)
    meta = [{"name": "a"}, {"name": "b"}]
    data = NeuralDataset(stims, responses, 2.5, meta=meta)
    assert (data.n_channels, data.n_freqs, data.stim_ndim) == (2, 6, 3)
    assert data[1]["meta"] == {"name": "b"}
    assert data[1]["stim"].shape == (2, 6, 12)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s, r: (s, r[:-1]), "got 4 stimuli but 3 responses"),
        (lambda s, r: ([], []), "at least one stimulus"),
        (lambda s, r: (s[0], r), "stims must be a list"),
        (lambda s, r: (s[:2] + [s[2][None, None]] + s[3:], r), re.escape("stimulus 2 has shape (1, 1, 6, 25); expected (F, T) or (C, F, T)")),
        (lambda s, r: (s[:3] + [s[3][:5]], r), re.escape("stimulus 3 has shape (5, 40) but stimulus 0 has shape (6, 30); expected (6, T)")),
        (lambda s, r: (s[:1] + [s[1][None]] + s[2:], r), re.escape("stimulus 1 has shape (1, 6, 20) but stimulus 0 has shape (6, 30)")),
        (lambda s, r: (s, r[:3] + [r[3][:, :, :39]]), re.escape("responses for stimulus 3 have shape (4, 3, 39) but the stimulus has 40 bins; expected (N, R, 40)")),
        (lambda s, r: (s, r[:1] + [r[1][0]] + r[2:]), re.escape("responses for stimulus 1 have shape (3, 20); expected (N, R, 20)")),
        (lambda s, r: (s, r[:2] + [r[2][:2]] + r[3:]), re.escape("responses for stimulus 2 have shape (2, 3, 25) but those for stimulus 0 have shape (4, 3, 30); expected (4, R, 25)")),
        (lambda s, r: (s, r[:1] + [r[1][:, :0]] + r[2:]), re.escape("responses for stimulus 1 have shape (4, 0, 20) with no repeat; expected (4, R >= 1, 20)")),
        (lambda s, r: (s, r[:1] + [r[1][:0]] + r[2:]), re.escape("responses for stimulus 1 have shape (0, 3, 20) with no neuron")),
    ],
)
def test_shape_errors_name_the_stimulus_and_shapes(change, message):
    stims, responses = make_arrays()
    stims, responses = change(stims, responses)
    with pytest.raises(ValueError, match=message):
        NeuralDataset(stims, responses, 5.0)


def test_non_finite_stimulus_reports_index_and_count():
    stims, responses = make_arrays()
    stims[2][1, 3] = np.nan
    stims[2][4, 0] = np.inf
    stims[2][0, 0] = -np.inf
    with pytest.raises(ValueError, match=re.escape("stimulus 2 (shape (6, 25)) has 3 non-finite values")):
        NeuralDataset(stims, responses, 5.0)


def test_infinite_responses_rejected_but_nan_allowed():
    stims, responses = make_arrays()
    responses[3][:, 2, :] = np.nan  # a whole missing repeat is fine
    NeuralDataset(stims, responses, 5.0)
    responses[1][0, 0, 0] = np.inf
    responses[1][1, 0, 0] = -np.inf
    with pytest.raises(ValueError, match=re.escape("responses for stimulus 1 (shape (4, 3, 20)) have 2 infinite values")):
        NeuralDataset(stims, responses, 5.0)


@pytest.mark.parametrize("dt", [0, -1.0, float("nan"), float("inf"), "5", None, True])
def test_bad_dt(dt):
    stims, responses = make_arrays()
    with pytest.raises(ValueError, match="dt_ms must be a positive"):
        NeuralDataset(stims, responses, dt)


def test_bad_meta_and_dtype():
    stims, responses = make_arrays()
    with pytest.raises(ValueError, match="meta has 3 entries but there are 4 stimuli"):
        NeuralDataset(stims, responses, 5.0, meta=[{}] * 3)
    with pytest.raises(ValueError, match="meta for stimulus 1 is a str; expected a dict"):
        NeuralDataset(stims, responses, 5.0, meta=[{}, "x", {}, {}])
    with pytest.raises(ValueError, match="stimulus 0 must be a real-valued numeric array"):
        NeuralDataset([np.array([["a"]])] + stims[1:], responses, 5.0)
    with pytest.raises(ValueError, match="stimulus 1 must be real-valued"):
        NeuralDataset(stims[:1] + [torch.ones(6, 20, dtype=torch.complex64)] + stims[2:], responses, 5.0)


def test_getitem_errors():
    data = NeuralDataset(*make_arrays(), dt_ms=5.0)
    with pytest.raises(IndexError, match="stimulus index 4 is out of range for a dataset of 4"):
        data[4]
    with pytest.raises(TypeError, match="use subset"):
        data[[0, 1]]


def test_split_is_by_stimulus_deterministic_and_disjoint():
    stims, responses = make_arrays(lengths=tuple(range(10, 30)))
    data = NeuralDataset(stims, responses, 5.0)
    train, val, test = data.split([0.6, 0.2, 0.2], seed=3)
    assert (len(train), len(val), len(test)) == (12, 4, 4)
    ids = [[m["index"] for m in part.meta] for part in (train, val, test)]
    assert sorted(sum(ids, [])) == list(range(20))
    assert all(part == sorted(part) for part in ids)
    # every stimulus is whole: its length and responses travel with it
    for part, part_ids in zip((train, val, test), ids):
        for k, i in enumerate(part_ids):
            assert torch.equal(part.responses[k], data.responses[i])
            assert part.lengths[k] == data.lengths[i]
    again = [[m["index"] for m in p.meta] for p in data.split([0.6, 0.2, 0.2], seed=3)]
    assert again == ids
    other = [[m["index"] for m in p.meta] for p in data.split([0.6, 0.2, 0.2], seed=4)]
    assert other != ids
    # a sum below 1 leaves stimuli out; a single number means (f, 1 - f)
    (half,) = data.split([0.5])
    assert len(half) == 10
    assert [len(p) for p in data.split(0.75)] == [15, 5]
    # rounding of 0.7 + 0.2 + 0.1 must not fail or drop a stimulus
    assert sum(len(p) for p in data.split([0.7, 0.2, 0.1])) == 20


def test_split_errors():
    data = NeuralDataset(*make_arrays(), dt_ms=5.0)
    with pytest.raises(ValueError, match=r"sum to 1.2; expected a sum of at most 1"):
        data.split([0.6, 0.6])
    with pytest.raises(ValueError, match=r"give part 1 0 stimuli \(sizes \[4, 0\]\)"):
        data.split([0.9, 0.1])
    with pytest.raises(ValueError, match="every split fraction must be a positive number"):
        data.split([0.5, -0.1])
    with pytest.raises(ValueError, match="non-empty sequence"):
        data.split([])
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*63 - 1\]"):
        data.split([0.5, 0.5], seed=-1)


def test_select_neurons_accepts_many_index_forms():
    stims, responses = make_arrays(n_neurons=5)
    data = NeuralDataset(stims, responses, 5.0)
    expected = [r[[4, 1]] for r in responses]
    for index in ([4, 1], np.array([4, 1]), torch.tensor([4, -4]), (4, 1)):
        picked = data.select_neurons(index)
        assert picked.n_neurons == 2
        for got, want in zip(picked.responses, expected):
            np.testing.assert_array_equal(got.numpy(), want.astype(np.float32))
    assert data.select_neurons(slice(1, 3)).n_neurons == 2
    assert data.select_neurons(np.array([True, False, True, False, False])).n_neurons == 2
    assert data.select_neurons(3).n_neurons == 1
    # stimuli untouched, original unchanged
    assert data.select_neurons([0]).stims[0] is data.stims[0]
    assert data.n_neurons == 5


def test_select_neurons_errors():
    data = NeuralDataset(*make_arrays(n_neurons=5), dt_ms=5.0)
    with pytest.raises(ValueError, match=r"neuron index 5 is out of range: there are 5 neurons \(valid: -5 to 4\)"):
        data.select_neurons([0, 5])
    with pytest.raises(ValueError, match="neuron index -6 is out of range"):
        data.select_neurons([-6])
    with pytest.raises(ValueError, match="selects no neuron"):
        data.select_neurons([])
    with pytest.raises(ValueError, match=r"boolean neuron mask must have one entry per neuron \(5\), got 3"):
        data.select_neurons([True, False, True])
    with pytest.raises(ValueError, match="must be integers"):
        data.select_neurons([0.5])


def test_subset_keeps_order_and_meta():
    data = NeuralDataset(*make_arrays(), dt_ms=5.0, meta=[{"name": n} for n in "abcd"])
    sub = data.subset([3, 0])
    assert [m["name"] for m in sub.meta] == ["d", "a"]
    assert sub.lengths == [40, 30]
    assert torch.equal(sub[0]["response"], data[3]["response"])
    assert [m["name"] for m in data.subset(slice(None, None, 2)).meta] == ["a", "c"]
    with pytest.raises(ValueError, match="stimulus index 7 is out of range: there are 4 stimuli"):
        data.subset([7])
    with pytest.raises(ValueError, match="selects no stimulus"):
        data.subset([])
