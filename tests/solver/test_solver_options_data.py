"""A loader or dataset given to a solver as an option is refused up front, saying where the data go."""

import pytest
import torch

import strfsolver
from strfsolver.data import make_loader, synthetic_population


@pytest.fixture(scope="module")
def loaders():
    population = synthetic_population(n_neurons=3, n_stims=6, n_repeats=2, n_freqs=5, n_lags=3, n_times=40, seed=0)
    train, valid = population.dataset.split([0.5, 0.5], seed=0)
    return train, make_loader(train, batch_size=2), make_loader(valid, batch_size=2)


def model():
    return strfsolver.models.init("ln", n_freqs=5, n_lags=3, n_neurons=3)


def test_deepstrf_argument_order_is_refused_naming_fit_and_the_compat_fitter(loaders):
    train, train_loader, valid_loader = loaders
    with pytest.raises(ValueError, match=r"criterion got a PaddedLoader.*solver\.fit\(train_loader, valid_loader\).*strfsolver\.compat\.deepstrf\.Fitter"):
        strfsolver.solver.PopulationSolver(model(), train_loader, valid_loader)
    with pytest.raises(ValueError, match="criterion got a DataLoader"):
        strfsolver.solver.init("per-cell-best", model(), torch.utils.data.DataLoader(train, batch_size=2))
    with pytest.raises(ValueError, match="optimizer got a PaddedLoader"):
        strfsolver.solver.init("population", model=model(), optimizer=train_loader)


def test_a_dataset_or_a_list_of_batches_as_an_option_is_refused_too(loaders):
    train, train_loader, _ = loaders
    with pytest.raises(ValueError, match="criterion got a .*Dataset"):
        strfsolver.solver.PopulationSolver(model(), train)
    with pytest.raises(ValueError, match="criterion got a list.*solver.fit"):
        strfsolver.solver.PopulationSolver(model(), list(train_loader))
    # a list that is not batches is an ordinary option value, checked as such
    assert strfsolver.solver.PopulationSolver(model(), metrics=["cc"], progress=False).metrics == ("cc",)
