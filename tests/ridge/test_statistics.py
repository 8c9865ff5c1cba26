"""RidgeStatistics against the explicit lagged design, with ragged stimuli and missing targets."""

import math

import pytest
import torch

from strfsolver.ridge import RidgeStatistics, lagged_design

F64 = torch.float64


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


@pytest.mark.parametrize("n_channels", [1, 2])
def test_statistics_of_ragged_stimuli_equal_the_explicit_ones(n_channels):
    n_bands, n_lags, lengths = 3, 4, [9, 2, 14, 5]  # one stimulus shorter than L
    stats = RidgeStatistics(n_lags)
    stimuli = []
    for i, length in enumerate(lengths):
        x = randn(n_channels, n_bands, length, seed=i) + 1.0
        y = randn(2, length, seed=50 + i)
        stats.add(x if n_channels > 1 else x[0], y)
        stimuli.append((x.reshape(n_channels * n_bands, length), y))
    assert (stats.n_channels, stats.n_bands, stats.dim, stats.n_groups) == (n_channels, n_bands, n_channels * n_bands * n_lags, 4)
    for group, (x, y) in zip(stats.groups, stimuli):
        design = lagged_design(x, n_lags)
        torch.testing.assert_close(group.all_bins.gram, design.T @ design, rtol=0, atol=1e-10)
        torch.testing.assert_close(group.all_bins.total, design.sum(0), rtol=0, atol=1e-10)
        torch.testing.assert_close(group.cross, design.T @ y.T, rtol=0, atol=1e-10)
        torch.testing.assert_close(group.target_sum, y.sum(1), rtol=0, atol=1e-12)
        torch.testing.assert_close(group.target_sq, (y * y).sum(1), rtol=0, atol=1e-12)
        assert group.count.tolist() == [x.shape[1]] * 2 and group.class_of.tolist() == [0, 0]


def test_channel_major_flattening_matches_the_strf_layout():
    stats = RidgeStatistics(2)
    x = randn(2, 3, 6)  # (C, F, T)
    stats.add(x, randn(1, 6, seed=1))
    design = lagged_design(x.reshape(6, 6), 2)
    # column (c * F + f) * L + l holds x[c, f, t - l]
    assert torch.equal(design[:, (1 * 3 + 2) * 2 + 1][1:], x[1, 2, :-1])
    torch.testing.assert_close(stats.groups[0].all_bins.gram, design.T @ design, rtol=0, atol=1e-12)


def explicit_masked(stimuli, n_lags, neuron):
    gram, total, cross, count = 0, 0, 0, 0
    for x, y in stimuli:
        keep = ~torch.isnan(y[neuron])
        rows = lagged_design(x, n_lags)[keep]
        gram, total, count = gram + rows.T @ rows, total + rows.sum(0), count + int(keep.sum())
        cross = cross + rows.T @ y[neuron][keep]
    return gram, total, cross, count


@pytest.mark.parametrize("pooled", [False, True])
def test_partially_recorded_neurons_get_the_gram_of_their_own_bins(pooled):
    n_lags, lengths = 3, [12, 7, 15]
    stimuli = [(randn(2, t, seed=t) + 0.3, randn(5, t, seed=10 + t)) for t in lengths]
    nan = math.nan
    stimuli[0][1][1] = nan  # neuron 1 not recorded in stimulus 0
    stimuli[1][1][2, 2:5] = nan  # neuron 2: a gap, fewer missing than recorded bins
    stimuli[1][1][3, 2:5] = nan  # neuron 3: the same gap, so the same pattern
    stimuli[2][1][4, :11] = nan  # neuron 4: more missing than recorded bins
    stimuli[2][1][2, 3] = nan
    stats = RidgeStatistics(n_lags)
    for x, y in stimuli:
        stats.add(x, y, group="all" if pooled else None)
    assert stats.n_groups == (1 if pooled else 3)
    if not pooled:
        assert [len(g.classes) for g in stats.groups] == [0, 1, 2]
        assert stats.groups[1].class_of[2] == stats.groups[1].class_of[3] == 1
    for neuron in range(5):
        gram, total, cross, count = explicit_masked(stimuli, n_lags, neuron)
        got_gram, got_total, got_count = 0, 0, 0
        for g in stats.groups:
            c = g.bin_class(int(g.class_of[neuron]))
            if c is not None:
                got_gram, got_total, got_count = got_gram + c.gram, got_total + c.total, got_count + c.count
        torch.testing.assert_close(got_gram, gram, rtol=0, atol=1e-10)
        torch.testing.assert_close(got_total, total, rtol=0, atol=1e-10)
        torch.testing.assert_close(sum(g.cross[:, neuron] for g in stats.groups), cross, rtol=0, atol=1e-10)
        assert got_count == count == sum(int(g.count[neuron]) for g in stats.groups)


def test_too_many_partial_patterns_raise_and_leave_the_statistics_unchanged():
    stats = RidgeStatistics(2, max_patterns=2)
    stats.add(randn(2, 10), randn(3, 10, seed=1))
    y = randn(3, 10, seed=2)
    for neuron in range(3):
        y[neuron, neuron] = math.nan  # three distinct partial patterns
    before = stats.groups[0].all_bins.gram.clone()
    with pytest.raises(ValueError, match="3 distinct patterns.*max_patterns=2.*fill"):
        stats.add(randn(2, 10, seed=3), y)
    assert stats.n_stimuli == 1 and torch.equal(stats.groups[0].all_bins.gram, before)


def test_a_pooled_group_limits_its_classes_too():
    stats = RidgeStatistics(2, max_patterns=2)
    y = randn(3, 10, seed=2)
    y[0, 0] = y[1, 1] = math.nan  # two partial patterns: fine
    stats.add(randn(2, 10), y, group="fold 0")
    y = randn(3, 10, seed=4)
    y[2, 2] = math.nan  # one pattern here, but neuron 2 becomes a third class of the group
    with pytest.raises(ValueError, match="group 0 would hold 3 distinct recorded-bins classes.*max_patterns=2"):
        stats.add(randn(2, 10, seed=5), y, group="fold 0")
    assert stats.n_stimuli == 1 and len(stats.groups[0].classes) == 2
    stats.add(randn(2, 10, seed=5), y)  # a group of its own is fine
    assert stats.n_groups == 2


@pytest.mark.parametrize(
    "features, targets, match",
    [
        (torch.zeros(2, 5), torch.zeros(3, 4), "features have 5 bins but targets have 4"),
        (torch.zeros(5), torch.zeros(3, 5), r"features must be a \(P, T\) or \(C, F, T\) tensor"),
        (torch.zeros(2, 5), torch.zeros(5), r"targets must be an \(N, T\) tensor"),
        (torch.full((2, 5), math.inf), torch.zeros(3, 5), "features of stimulus 1 are not all finite"),
        (torch.zeros(2, 5), torch.full((3, 5), math.inf), "infinite"),
        (torch.zeros(3, 5), torch.zeros(3, 5), "C=1, F=3, N=3; earlier stimuli had C=1, F=2, N=3"),
        (torch.zeros(2, 5), torch.zeros(4, 5), "N=4"),
    ],
)
def test_bad_stimuli_raise(features, targets, match):
    stats = RidgeStatistics(2)
    stats.add(torch.ones(2, 5), torch.ones(3, 5))
    with pytest.raises(ValueError, match=match):
        stats.add(features, targets)
    assert stats.n_stimuli == 1


@pytest.mark.parametrize("kwargs, match", [({"n_lags": 0}, "n_lags"), ({"n_lags": 2, "dtype": torch.int64}, "dtype"), ({"n_lags": 2, "n_channels": 0}, "n_channels"), ({"n_lags": 2, "max_patterns": -1}, "max_patterns")])
def test_bad_constructor_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RidgeStatistics(**kwargs)


def test_n_channels_splits_flat_features():
    stats = RidgeStatistics(2, n_channels=2)
    stats.add(torch.ones(6, 4), torch.ones(1, 4))
    assert (stats.n_channels, stats.n_bands, stats.n_features) == (2, 3, 6)
    with pytest.raises(ValueError, match="not a multiple of n_channels=2"):
        stats.add(torch.ones(5, 4), torch.ones(1, 4))
