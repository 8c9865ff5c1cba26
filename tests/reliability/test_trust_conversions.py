"""Issue 19, cause P: input conversions are checked where they happen, and the message names the input."""

import numpy as np
import pytest
import torch

import strfsolver
from strfsolver.data import NeuralDataset
from strfsolver.estimator import STRFEstimator

RNG = np.random.default_rng(0)
X = [RNG.standard_normal((40, 4)) for _ in range(4)]
Y = [RNG.poisson(2.0, (40, 3)).astype(float) for _ in range(4)]


@pytest.mark.parametrize("X_, y_, message", [
    ([x.astype("datetime64[ns]") for x in X], Y, r"X\[0\] \(stimulus 0\) must hold real numbers, got an array of dtype datetime64\[ns\]"),
    (X, [np.full((40, 3), "a")] * 4, r"y\[0\] \(stimulus 0\) must hold real numbers, got an array of dtype <U1"),
    ([x.astype(object) for x in X[:3]] + [np.array([["spike"] * 4] * 40, dtype=object)], Y, r"X\[3\] \(stimulus 3\) holds objects that are not numbers \(could not convert string to float"),
])
def test_the_estimator_refuses_values_that_are_not_numbers(X_, y_, message):
    with pytest.raises(ValueError, match=message):
        STRFEstimator(model="linear", n_lags=3, random_state=0).fit(X_, y_)


def test_numbers_in_object_arrays_still_convert():
    est = STRFEstimator(model="linear", n_lags=3, random_state=0).fit([x.astype(object) for x in X], Y)
    assert est.predict(X[0]).shape == (40, 3)


def test_the_dataset_refuses_non_numbers_naming_the_stimulus():
    with pytest.raises(ValueError, match=r"stimulus 0 must be a real-valued numeric array or tensor, got an array of dtype datetime64"):
        NeuralDataset([np.zeros((4, 10)).astype("datetime64[ns]")], [np.zeros((2, 1, 10))], dt_ms=5.0)


@pytest.mark.parametrize("alphas, shown", [("1,10", "str '1,10'"), ({"a": 1}, "dict {'a': 1}")])
def test_ridge_alphas_that_are_no_list_of_numbers_are_named(alphas, shown):
    model = strfsolver.models.init("linear", n_freqs=4, n_lags=3, n_neurons=3)
    with pytest.raises(ValueError, match=f"alphas must be a number or a list of numbers > 0, got {shown}"):
        strfsolver.solver.init("ridge", model=model, alphas=alphas)
    with pytest.raises(ValueError, match=f"alphas must be a number or a list of numbers > 0, got {shown}"):
        STRFEstimator(model="linear", n_lags=3, alphas=alphas).fit(X, Y)
    with pytest.raises(ValueError, match="alpha must be a number or a list of numbers > 0, got"):
        strfsolver.solver.init("ridge", model=model, alpha=["x"])


def test_a_mistyped_model_option_is_named_with_the_closest_one():
    with pytest.raises(TypeError, match=r"'ln' takes no option 'non_negativ'; did you mean 'non_negative'"):
        strfsolver.models.init("ln", n_freqs=4, n_lags=3, n_neurons=2, non_negativ=True)
    with pytest.raises(TypeError, match=r"'ln' takes no option 'non_negativ'; did you mean 'non_negative'"):
        STRFEstimator(model="ln", n_lags=3, model_kwargs={"non_negativ": True}, max_epochs=1).fit(X, Y)
    with pytest.raises(TypeError, match=r"'population' takes no option 'lerning_rate'"):
        strfsolver.solver.init("population", model=torch.nn.Linear(1, 1), lerning_rate=0.1)


def test_a_model_without_trainable_parameters_is_refused_when_the_solver_is_built():
    with pytest.raises(ValueError, match=r"the model \(Identity\) has no trainable parameter"):
        strfsolver.solver.init("population", model=torch.nn.Identity())
    frozen = strfsolver.models.init("linear", n_freqs=4, n_lags=3, n_neurons=2).requires_grad_(False)
    with pytest.raises(ValueError, match="has no trainable parameter"):
        strfsolver.solver.init("population", model=frozen)
