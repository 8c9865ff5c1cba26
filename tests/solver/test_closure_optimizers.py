"""Closure optimizers: LBFGS works with every solver and reaches the least-squares fit of a linear model."""

import pytest
import torch

import strfsolver
from strfsolver.data import make_loader, synthetic_population
from strfsolver.solver.update import needs_closure


def _least_squares_prediction(model, stims, psth):
    """The best prediction a model linear in its parameters can make: (B, N, 1, T), by solving the normal equations."""
    params = {name: p.detach() for name, p in model.named_parameters()}
    buffers = dict(model.named_buffers())

    def predict(flat):
        values, start = {}, 0
        for name, p in params.items():
            values[name] = flat[start : start + p.numel()].reshape(p.shape)
            start += p.numel()
        return torch.func.functional_call(model, {**values, **buffers}, (stims,))

    flat = torch.cat([p.reshape(-1) for p in params.values()])
    jacobian = torch.autograd.functional.jacobian(predict, flat).reshape(-1, flat.numel())
    target = psth.reshape(-1).to(jacobian.dtype)
    valid = ~target.isnan()
    solution = torch.linalg.lstsq(jacobian[valid], target[valid, None], driver="gelsd").solution[:, 0]
    return (jacobian @ solution).reshape(psth.shape)


def _lbfgs(params):
    return torch.optim.LBFGS(params, lr=1.0, max_iter=200, history_size=100, line_search_fn="strong_wolfe", tolerance_grad=1e-12, tolerance_change=1e-15)


def test_only_optimizers_that_need_a_closure_get_the_closure_path():
    params = [torch.nn.Parameter(torch.zeros(2))]
    assert needs_closure(torch.optim.LBFGS(params))
    assert not needs_closure(torch.optim.Adam(params)) and not needs_closure(torch.optim.SGD(params, lr=0.1))


@pytest.mark.parametrize("name", ["population", "single-cell", "per-cell-best"])
def test_lbfgs_reaches_the_closed_form_linear_solution(name):
    data = synthetic_population(n_neurons=3, n_stims=4, n_repeats=3, n_freqs=4, n_lags=3, n_times=60, nonlinearity="linear", seed=2)
    dataset = data.dataset
    loader = make_loader(dataset, batch_size=len(dataset), shuffle=False)
    torch.manual_seed(0)
    model = strfsolver.models.init("linear", n_freqs=4, n_lags=3, n_neurons=3).double()
    solver = strfsolver.solver.init(
        name, model=model, optimizer=_lbfgs, standardize=False, criterion="mse", monitor="train_loss", mode="min", patience=None, progress=False
    )
    solver.fit(loader, max_epochs=2)
    batch = solver.prepare(next(iter(loader)))
    expected = _least_squares_prediction(solver.model, batch["stims"], strfsolver.metrics.psth(batch["responses"]))
    got = solver.transform(batch["stims"])
    valid = ~expected.isnan()
    torch.testing.assert_close(got[valid], expected[valid], atol=1e-6, rtol=1e-6)
    assert solver.log[-1]["train_loss"] < solver.log[0]["train_loss"]
