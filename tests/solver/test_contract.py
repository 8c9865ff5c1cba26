"""One contract for every registered solver: fit returns the solver, states round-trip, unused options are refused."""

import dataclasses

import pytest
import torch

import strfsolver
from strfsolver.data import make_loader, synthetic_population
from strfsolver.solver.state import STOP_REASONS

SOLVERS = strfsolver.solver.get_options()


@pytest.fixture(scope="module")
def data():
    pop = synthetic_population(n_neurons=4, n_stims=8, n_repeats=3, n_freqs=6, n_lags=4, n_times=60, seed=5)
    train, valid = pop.dataset.subset(range(6)), pop.dataset.subset([6, 7])
    return train, valid


def linear(seed=0):
    torch.manual_seed(seed)
    return strfsolver.models.init("linear", n_freqs=6, n_lags=4, n_neurons=4)


def build(name):
    if name == "multi-seed":
        return strfsolver.solver.init("multi-seed", solver="population", model_factory=lambda seed: linear(seed),
                                      seeds=[0, 1], progress=False, max_epochs=3)
    if name == "ridge":
        return strfsolver.solver.init("ridge", model=linear(), cv=2, progress=False)
    return strfsolver.solver.init(name, model=linear(), max_epochs=3, progress=False)


def loaders(data):
    train, valid = data
    return make_loader(train, batch_size=3, shuffle=True, seed=1), make_loader(valid, batch_size=2)


def test_every_solver_is_in_the_contract():
    assert {"population", "single-cell", "per-cell-best", "ridge", "multi-seed"} <= set(SOLVERS)


@pytest.mark.parametrize("name", SOLVERS)
def test_fit_returns_the_solver_and_its_log(name, data):
    solver = build(name)
    assert solver.fit(*loaders(data)) is solver
    assert isinstance(solver.log, list) and solver.log and all(isinstance(row, dict) for row in solver.log)
    assert solver.log[-1]["stop_reason"] in STOP_REASONS
    assert [row["epoch"] for row in solver.log] == list(range(len(solver.log)))
    assert "val_cc_norm" in solver.log[-1]


@pytest.mark.parametrize("name", SOLVERS)
def test_the_state_round_trips_into_a_new_solver(name, data):
    fitted = build(name).fit(*loaders(data))
    fresh = build(name)
    fresh.load_state_dict(fitted.state_dict())
    stims = torch.stack(data[1].stims)
    torch.testing.assert_close(fresh.transform(stims), fitted.transform(stims), rtol=0, atol=0)
    assert fresh.log == fitted.log
    for key, value in fitted.validation(make_loader(data[1])).items():
        torch.testing.assert_close(torch.as_tensor(fresh.validation(make_loader(data[1]))[key]), torch.as_tensor(value), equal_nan=True)


def _non_default(field):
    default = field.default
    if isinstance(default, bool):
        return not default
    if isinstance(default, (int, float)) and default is not None:
        return default + 1
    if default is None:
        return {"optimizer": lambda params: torch.optim.SGD(params, lr=0.1), "init": "ridge", "schedule": ["a schedule"]}.get(field.name, 0.5)
    if isinstance(default, tuple):
        return ("l1",)
    return "something"


@pytest.mark.parametrize("name", [n for n in SOLVERS if n != "multi-seed"])
def test_options_a_solver_does_not_use_are_refused_when_built(name):
    cls = strfsolver.solver.init(name, model=linear()).__class__
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for option in cls.unused_options:
        with pytest.raises(ValueError, match=f"does not use {option}"):
            strfsolver.solver.init(name, model=linear(), **{option: _non_default(fields[option])})
    with pytest.raises(TypeError):
        strfsolver.solver.init(name, model=linear(), no_such_option=1)


def test_ridge_refuses_the_gradient_options():
    ridge = type(strfsolver.solver.init("ridge", model=linear()))
    assert {"lr", "penalties", "patience", "grad_clip", "optimizer", "schedule", "max_epochs"} <= set(ridge.unused_options)
    for option, value in dict(lr=1e-2, penalties=["l2"], patience=5, grad_clip=1.0).items():
        with pytest.raises(ValueError, match=f"RidgeSolver does not use {option}"):
            strfsolver.solver.init("ridge", model=linear(), **{option: value})
    # the gradient solvers use every option
    assert all(not type(build(n)).unused_options for n in SOLVERS if n not in ("ridge", "multi-seed"))


def test_multi_seed_refuses_what_its_inner_solver_does_not_use():
    with pytest.raises(ValueError, match="RidgeSolver does not use lr"):
        strfsolver.solver.init("multi-seed", solver="ridge", model_factory=linear, seeds=[0], lr=1e-2)
