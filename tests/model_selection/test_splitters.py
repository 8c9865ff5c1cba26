"""Stimulus-grouped splitters: never split a stimulus, hold each out once, work as scikit-learn CV objects."""

import numpy as np
import pytest

import strfsolver
from strfsolver.model_selection import LeaveOneStimulusOut, StimulusKFold, check_cv


@pytest.fixture(scope="module")
def dataset():
    return strfsolver.data.synthetic_population(n_neurons=2, n_stims=7, n_repeats=2, n_freqs=4, n_lags=3, n_times=20, seed=1).dataset


@pytest.mark.parametrize("splitter", [StimulusKFold(3), StimulusKFold(3, shuffle=True, seed=4), StimulusKFold(7), LeaveOneStimulusOut()], ids=repr)
def test_every_stimulus_is_held_out_exactly_once(splitter, dataset):
    held_out = []
    for train, test in splitter.split(dataset):
        assert set(train).isdisjoint(test)
        assert sorted(np.r_[train, test].tolist()) == list(range(dataset.n_stims))
        held_out.extend(test.tolist())
    assert sorted(held_out) == list(range(dataset.n_stims))
    assert splitter.get_n_splits(dataset) == len(list(splitter.split(dataset)))


def test_fold_sizes_differ_by_at_most_one_and_shuffle_is_seeded():
    sizes = [len(test) for _, test in StimulusKFold(3).split(10)]
    assert sizes == [4, 3, 3]
    first = [test.tolist() for _, test in StimulusKFold(3, shuffle=True, seed=0).split(10)]
    again = [test.tolist() for _, test in StimulusKFold(3, shuffle=True, seed=0).split(10)]
    other = [test.tolist() for _, test in StimulusKFold(3, shuffle=True, seed=1).split(10)]
    assert first == again and first != other
    state = np.random.get_state()[1].copy()
    list(StimulusKFold(3, shuffle=True, seed=0).split(10))
    assert (np.random.get_state()[1] == state).all()  # no global random state touched


def test_rows_of_one_stimulus_never_split_with_groups():
    # a 2-D X whose rows are time bins of 5 stimuli of unequal length
    groups = np.repeat(["a", "b", "c", "d", "e"], [3, 5, 2, 4, 1])
    X = np.zeros((len(groups), 4))
    for train, test in StimulusKFold(2, shuffle=True, seed=3).split(X, groups=groups):
        assert set(groups[train]).isdisjoint(groups[test])
    with pytest.raises(ValueError, match="groups is required"):
        next(StimulusKFold(2).split(X))


def test_works_as_scikit_learn_cv():
    model_selection = pytest.importorskip("sklearn.model_selection")
    groups = np.repeat(np.arange(6), 10)
    X = np.arange(60.0)[:, None]
    y = 2 * X[:, 0]
    from sklearn.linear_model import LinearRegression

    scores = model_selection.cross_val_score(LinearRegression(), X, y, groups=groups, cv=StimulusKFold(3))
    assert scores.shape == (3,) and np.allclose(scores, 1.0)


def test_bad_arguments_are_refused(dataset):
    with pytest.raises(ValueError, match="n_splits must be an integer >= 2"):
        StimulusKFold(1)
    with pytest.raises(ValueError, match="needs at least 8 stimuli"):
        list(StimulusKFold(8).split(dataset))
    with pytest.raises(ValueError, match="cv must be a number of folds"):
        check_cv("five")
    assert isinstance(check_cv("loso"), LeaveOneStimulusOut)
