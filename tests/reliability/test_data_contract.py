"""The data contract (docs/conventions.md §1): every malformed stimulus, response or index is refused
when the dataset, loader or fit is built, with a message naming the argument or the stimulus."""

import math

import numpy as np
import pytest
import torch

from reliability_cases import N_FREQS, N_LAGS, case_ids, loaders, model, solver
from strfsolver.data import NeuralDataset, make_loader

F, T = N_FREQS, 20


def stim(t=T, f=F):
    return np.random.default_rng(0).random((f, t)).astype(np.float32)


def resp(n=2, r=3, t=T):
    return np.random.default_rng(1).random((n, r, t)).astype(np.float32)


def with_value(array, index, value):
    array = array.copy()
    array[index] = value
    return array


def nan_everywhere(shape):
    return np.full(shape, np.nan, dtype=np.float32)


# (what, stims, responses, dt_ms, extra keyword arguments, error, message)
DATASET_CASES = [
    ("stims an array", stim(), [resp()], 5.0, {}, ValueError, r"stims must be a list with one array per stimulus"),
    ("responses an array", [stim()], resp(), 5.0, {}, ValueError, r"responses must be a list with one array per stimulus"),
    ("stims a dict", {"a": stim()}, [resp()], 5.0, {}, ValueError, r"stims must be a list"),
    ("empty lists", [], [], 5.0, {}, ValueError, r"needs at least one stimulus"),
    ("fewer responses", [stim(), stim()], [resp()], 5.0, {}, ValueError, r"got 2 stimuli but 1 responses"),
    ("dt_ms zero", [stim()], [resp()], 0.0, {}, ValueError, r"dt_ms must be a positive"),
    ("dt_ms negative", [stim()], [resp()], -5.0, {}, ValueError, r"dt_ms must be a positive"),
    ("dt_ms nan", [stim()], [resp()], math.nan, {}, ValueError, r"dt_ms must be a positive, finite"),
    ("dt_ms inf", [stim()], [resp()], math.inf, {}, ValueError, r"dt_ms must be a positive, finite"),
    ("dt_ms string", [stim()], [resp()], "5", {}, ValueError, r"dt_ms must be a positive number"),
    ("dt_ms bool", [stim()], [resp()], True, {}, ValueError, r"dt_ms must be a positive number"),
    ("dt_ms none", [stim()], [resp()], None, {}, ValueError, r"dt_ms must be a positive number"),
    ("stimulus 1-D", [np.ones(T)], [resp()], 5.0, {}, ValueError, r"stimulus 0 has shape \(20,\); expected \(F, T\) or \(C, F, T\)"),
    ("stimulus 4-D", [np.ones((1, 1, F, T))], [resp()], 5.0, {}, ValueError, r"stimulus 0 has shape \(1, 1, 6, 20\); expected"),
    ("stimulus without bins", [np.ones((F, 0))], [resp(t=0)], 5.0, {}, ValueError, r"stimulus 0 has shape \(6, 0\) with no time bin"),
    ("stimulus with NaN", [with_value(stim(), (2, 3), np.nan)], [resp()], 5.0, {}, ValueError, r"stimulus 0 \(shape \(6, 20\)\) has 1 non-finite values"),
    ("stimulus with inf", [stim(), with_value(stim(), (0, 0), np.inf)], [resp(), resp()], 5.0, {}, ValueError, r"stimulus 1 \(shape \(6, 20\)\) has 1 non-finite"),
    ("stimulus complex", [stim().astype(np.complex64)], [resp()], 5.0, {}, ValueError, r"stimulus 0 must be a real-valued numeric array"),
    ("stimulus of strings", [np.full((F, T), "a")], [resp()], 5.0, {}, ValueError, r"stimulus 0 must be a real-valued numeric array"),
    ("stimulus of objects", [np.array([None] * T, dtype=object)], [resp()], 5.0, {}, ValueError, r"stimulus 0 must be a real-valued numeric array"),
    ("stimulus ragged list", [[[1.0, 2.0], [3.0]]], [resp()], 5.0, {}, ValueError, r"stimulus 0 could not be read as a numeric array"),
    ("complex tensor stimulus", [torch.ones(F, T, dtype=torch.complex64)], [resp()], 5.0, {}, ValueError, r"stimulus 0 must be real-valued"),
    ("bands differ", [stim(), stim(f=F + 1)], [resp(), resp()], 5.0, {}, ValueError, r"stimulus 1 has shape \(7, 20\) but stimulus 0 has shape \(6, 20\); expected \(6, T\)"),
    ("channels differ", [np.ones((2, F, T)), np.ones((3, F, T))], [resp(), resp()], 5.0, {}, ValueError, r"stimulus 1 has shape \(3, 6, 20\) but stimulus 0 has shape \(2, 6, 20\)"),
    ("dimensions differ", [stim(), np.ones((1, F, T))], [resp(), resp()], 5.0, {}, ValueError, r"stimulus 1 has shape \(1, 6, 20\) but stimulus 0"),
    ("responses 2-D", [stim()], [np.ones((2, T))], 5.0, {}, ValueError, r"responses for stimulus 0 have shape \(2, 20\); expected \(N, R, 20\)"),
    ("responses 4-D", [stim()], [np.ones((1, 2, 3, T))], 5.0, {}, ValueError, r"responses for stimulus 0 have shape \(1, 2, 3, 20\); expected \(N, R, 20\)"),
    ("responses too short", [stim()], [resp(t=T - 1)], 5.0, {}, ValueError, r"responses for stimulus 0 have shape \(2, 3, 19\) but the stimulus has 20 bins"),
    ("(T, F) stimulus", [stim().T.copy()], [resp()], 5.0, {}, ValueError, r"looks like a \(T, F\) array; stimuli are \(F, T\): pass its transpose"),
    ("(T, F) second stimulus", [stim(t=F), stim(t=F)], [resp(t=F), resp(t=F)], 5.0, {}, None, None),
    ("no neuron", [stim()], [np.ones((0, 3, T))], 5.0, {}, ValueError, r"responses for stimulus 0 have shape \(0, 3, 20\) with no neuron"),
    ("no repeat", [stim()], [np.ones((2, 0, T))], 5.0, {}, ValueError, r"responses for stimulus 0 have shape \(2, 0, 20\) with no repeat"),
    ("neurons differ", [stim(), stim()], [resp(n=2), resp(n=3)], 5.0, {}, ValueError, r"responses for stimulus 1 have shape \(3, 3, 20\) but those for stimulus 0 have shape \(2, 3, 20\)"),
    ("response inf", [stim()], [with_value(resp(), (0, 0, 0), np.inf)], 5.0, {}, ValueError, r"responses for stimulus 0 \(shape \(2, 3, 20\)\) have 1 infinite values"),
    ("response -inf", [stim()], [with_value(resp(), (1, 2, 3), -np.inf)], 5.0, {}, ValueError, r"responses for stimulus 0 .* have 1 infinite values; use NaN"),
    ("response of strings", [stim()], [np.full((2, 3, T), "x")], 5.0, {}, ValueError, r"responses for stimulus 0 must be a real-valued numeric array"),
    ("all responses NaN", [stim(), stim()], [nan_everywhere((2, 3, T)), nan_everywhere((2, 1, T))], 5.0, {}, ValueError, r"responses are NaN everywhere \(all 2 stimuli\): nothing was recorded"),
    ("meta too short", [stim(), stim()], [resp(), resp()], 5.0, {"meta": [{}]}, ValueError, r"meta has 1 entries but there are 2 stimuli"),
    ("meta not dicts", [stim()], [resp()], 5.0, {"meta": ["song"]}, ValueError, r"meta for stimulus 0 is a str; expected a dict"),
    ("meta not a list", [stim()], [resp()], 5.0, {"meta": {"name": "a"}}, ValueError, r"meta must be a list"),
    ("neuron_ids too few", [stim()], [resp()], 5.0, {"neuron_ids": ["a"]}, ValueError, r"neuron_ids has 1 entries but the responses have 2 neurons"),
    ("neuron_ids a string", [stim()], [resp()], 5.0, {"neuron_ids": "ab"}, ValueError, r"neuron_ids must be a list of 2 identifiers"),
]


@pytest.mark.parametrize("what, stims, responses, dt_ms, extra, error, message", DATASET_CASES, ids=case_ids(DATASET_CASES))
def test_a_malformed_dataset_is_refused_naming_the_part(what, stims, responses, dt_ms, extra, error, message):
    if error is None:
        # square stimuli (F == T) are ambiguous and accepted as given: no false transpose hint
        assert NeuralDataset(stims, responses, dt_ms, **extra).n_stims == 2
        return
    with pytest.raises(error, match=message):
        NeuralDataset(stims, responses, dt_ms, **extra)


def test_one_stimulus_without_recordings_is_kept_when_another_has_some():
    data = NeuralDataset([stim(), stim()], [nan_everywhere((2, 3, T)), resp()], 5.0)
    assert data.n_stims == 2 and bool(data.responses[0].isnan().all())


@pytest.fixture(scope="module")
def dataset():
    return NeuralDataset([stim(), stim(), stim(), stim()], [resp(), resp(), resp(), resp()], 5.0)


# (what, call on the dataset, error, message)
INDEX_CASES = [
    ("split negative fraction", lambda d: d.split([-0.5, 0.5]), ValueError, r"every split fraction must be a positive number"),
    ("split sums above one", lambda d: d.split([0.8, 0.5]), ValueError, r"split fractions \[0.8, 0.5\] sum to 1.3"),
    ("split empty", lambda d: d.split([]), ValueError, r"fractions must be a non-empty sequence"),
    ("split a string", lambda d: d.split("half"), ValueError, r"fractions must be a non-empty sequence"),
    ("split negative seed", lambda d: d.split(0.5, seed=-1), ValueError, r"seed must be an integer in \[0, 2\*\*63 - 1\] \(a seed\), got -1"),
    ("split an empty part", lambda d: d.split([0.99, 0.01]), ValueError, r"give part 1 0 stimuli"),
    ("subset out of range", lambda d: d.subset([0, 9]), ValueError, r"stimulus index 9 is out of range: there are 4 stimuli"),
    ("subset nothing", lambda d: d.subset([]), ValueError, r"subset\(\[\]\) selects no stimulus"),
    ("subset floats", lambda d: d.subset([0.5]), ValueError, r"stimulus index must be integers"),
    ("subset 2-D", lambda d: d.subset([[0, 1]]), ValueError, r"stimulus index must be one-dimensional"),
    ("subset bool", lambda d: d.subset(True), ValueError, r"stimulus index must be integers, a boolean mask or a slice"),
    ("mask of the wrong length", lambda d: d.subset(np.array([True, False])), ValueError, r"a boolean stimulus mask must have one entry per stimulus \(4\), got 2"),
    ("select_neurons out of range", lambda d: d.select_neurons([5]), ValueError, r"neuron index 5 is out of range: there are 2 neurons"),
    ("select_neurons nothing", lambda d: d.select_neurons(np.array([False, False])), ValueError, r"select_neurons\(.*\) selects no neuron"),
    ("item by string", lambda d: d["song"], TypeError, r"NeuralDataset indices must be integers, got str"),
    ("item out of range", lambda d: d[4], IndexError, r"stimulus index 4 is out of range for a dataset of 4 stimuli"),
    ("loader batch_size 0", lambda d: make_loader(d, batch_size=0), ValueError, r"batch_size must be an integer >= 1, got 0"),
    ("loader batch_size float", lambda d: make_loader(d, batch_size=2.5), ValueError, r"batch_size must be an integer >= 1, got 2.5"),
    ("loader shuffle string", lambda d: make_loader(d, shuffle="yes"), ValueError, r"shuffle must be True or False, got 'yes'"),
    ("loader negative seed", lambda d: make_loader(d, seed=-1), ValueError, r"seed must be an integer in \[0, 2\*\*63 - 1\] \(a seed\), got -1"),
]


@pytest.mark.parametrize("what, call, error, message", INDEX_CASES, ids=case_ids(INDEX_CASES))
def test_a_bad_index_or_loader_option_is_named(dataset, what, call, error, message):
    with pytest.raises(error, match=message):
        call(dataset)


def test_n_lags_longer_than_every_stimulus_is_refused_when_fit_starts():
    train, valid = loaders()
    long_model = model(n_lags=train.dataset.lengths[0] + 5)
    before = [p.detach().clone() for p in long_model.parameters()]
    with pytest.raises(ValueError, match=r"n_lags=45 is longer than every training stimulus \(the longest has 40 bins\): lags 40 to 44"):
        solver(model=long_model).fit(train, valid, max_epochs=1)
    assert all(torch.equal(a, b) for a, b in zip(before, long_model.parameters()))


def test_n_lags_longer_than_every_stimulus_is_refused_by_the_ridge_solver_too():
    train, valid = loaders()
    with pytest.raises(ValueError, match=r"n_lags=41 is longer than every training stimulus"):
        solver("ridge", model=model(n_lags=41)).fit(train, valid)


def test_n_lags_as_long_as_the_longest_stimulus_is_accepted():
    train, valid = loaders()
    assert len(solver(model=model(n_lags=40)).fit(train, valid, max_epochs=1).log) == 1


def test_a_batch_that_is_not_a_dict_is_named():
    with pytest.raises(ValueError, match=r"a batch must be a dict with keys 'stims', 'responses'.*got list"):
        solver().fit([[torch.zeros(1, N_FREQS, 10)]], max_epochs=1)


def test_a_model_that_is_not_a_module_is_named():
    with pytest.raises(ValueError, match=r"model must be a torch.nn.Module, got str"):
        import strfsolver

        strfsolver.solver.init("population", model="ln")


def test_transform_names_a_stimulus_of_the_wrong_bands():
    fitted = solver()
    with pytest.raises(ValueError, match=r"stims must have shape \(B, 6, T\) or \(B, 1, 6, T\), got \(1, 8, 30\)"):
        fitted.transform([torch.rand(N_FREQS + 2, 30)])

