"""The "per-cell-best" solver gives every neuron its own best epoch's readout."""

import pytest
import torch

import strfsolver
from strfsolver.data import make_loader, synthetic_population
from strfsolver.solver import PerCellBestSolver

from solver_helpers import CausalLinear

F, L = 8, 6


@pytest.fixture(scope="module")
def split():
    # few stimuli, noisy: neurons overfit at different epochs
    pop = synthetic_population(n_neurons=10, n_stims=8, n_repeats=3, n_freqs=F, n_lags=L, n_times=50, noise=1.0, seed=11)
    return pop.dataset.split([0.6, 0.4], seed=0)


def fit_recording(model, split, **options):
    """Fit, recording each epoch's per-neuron val cc_norm and the state of every epoch."""
    train, valid = split
    per_epoch, states = [], []
    solver = strfsolver.solver.init("per-cell-best", model=model, progress=False, **options)

    def record(row):
        per_epoch.append(solver.last_validation_["cc_norm"].clone())
        states.append({k: v.clone() for k, v in solver.model.state_dict().items()})

    solver.loggers = [record]
    solver.fit(make_loader(train, batch_size=2, shuffle=True, seed=2), make_loader(valid, batch_size=4))
    final = solver.validation(make_loader(valid, batch_size=4))["cc_norm"]
    return solver, torch.stack(per_epoch), states, final


@pytest.mark.parametrize("name", ["linear", "ln"])
def test_every_neuron_ends_at_its_best_epoch(name, split):
    torch.manual_seed(0)
    model = strfsolver.models.init(name, n_freqs=F, n_lags=L, n_neurons=10)
    solver, per_epoch, states, final = fit_recording(model, split, lr=8e-2, max_epochs=12, patience=4)
    best_over_epochs = per_epoch.max(dim=0).values
    torch.testing.assert_close(final, best_over_epochs, atol=1e-6, rtol=0)
    assert solver.best_epochs_.tolist() == per_epoch.argmax(dim=0).tolist()
    # never worse than the global restore, and strictly better for some neuron here
    global_best = per_epoch[solver.best_epoch_]
    assert (final >= global_best - 1e-6).all()
    assert (final > global_best + 1e-4).any()
    assert len(set(solver.best_epochs_.tolist())) > 1


def test_readout_from_own_epoch_core_from_the_global_best(split):
    torch.manual_seed(0)
    model = strfsolver.models.init("nrf", n_freqs=F, n_lags=L, n_neurons=10, n_hidden=3)
    solver, per_epoch, states, _ = fit_recording(model, split, lr=5e-2, max_epochs=6, patience=3)
    assert set(solver.neuron_parameters_) == {"readout.projection.weight", "readout.projection.bias",
                                              "readout.activation.raw_gain", "readout.activation.raw_slope",
                                              "readout.activation.threshold"}
    state = model.state_dict()
    torch.testing.assert_close(state["core.0.kernel.weight"], states[solver.best_epoch_]["core.0.kernel.weight"])
    for n, epoch in enumerate(solver.best_epochs_.tolist()):
        torch.testing.assert_close(state["readout.projection.weight"][n], states[epoch]["readout.projection.weight"][n])


def test_named_neuron_parameters_for_a_plain_module(split):
    torch.manual_seed(0)
    model = CausalLinear(F, L, 10)
    solver, per_epoch, _, final = fit_recording(model, split, lr=8e-2, max_epochs=8, patience=3,
                                                neuron_parameters={"weight": 0, "bias": 0})
    assert solver.neuron_parameters_ == {"weight": 0, "bias": 0}
    torch.testing.assert_close(final, per_epoch.max(dim=0).values, atol=1e-6, rtol=0)


def test_bad_neuron_parameters():
    model = CausalLinear(F, L, 10)
    with pytest.raises(ValueError, match="matches none"):
        PerCellBestSolver(model=model, neuron_parameters={"readout.*": 0})
    with pytest.raises(ValueError, match="axis 1"):
        PerCellBestSolver(model=model, neuron_parameters={"weight": 1})
    with pytest.raises(ValueError, match="n_neurons=1"):
        PerCellBestSolver(model=model)


class PlainConv(torch.nn.Module):
    """Any module: no n_neurons, no O; output (B, N, 1, T) with a per-neuron weight and bias."""

    def __init__(self, n_freqs, n_lags, n_neurons):
        super().__init__()
        self.conv = torch.nn.Conv1d(n_freqs, n_neurons, n_lags)
        self.n_lags = n_lags

    def forward(self, stims):
        return self.conv(torch.nn.functional.pad(stims, (self.n_lags - 1, 0)))[:, :, None, :]


def test_plain_module_neuron_count_from_the_named_tensors(split):
    torch.manual_seed(0)
    model = PlainConv(F, L, 10)
    assert not hasattr(model, "n_neurons") and not hasattr(model, "O")
    solver, per_epoch, states, final = fit_recording(model, split, lr=8e-2, max_epochs=8, patience=3,
                                                     neuron_parameters={"conv.*": 0})
    assert solver.neuron_parameters_ == {"conv.weight": 0, "conv.bias": 0} and solver.n_neurons_ == 10
    # each neuron ends with its own best epoch's parameters, read from the validation history
    best = per_epoch.argmax(dim=0)
    assert solver.best_epochs_.tolist() == best.tolist() and len(set(best.tolist())) > 1
    torch.testing.assert_close(final, per_epoch.max(dim=0).values, atol=1e-6, rtol=0)
    state = model.state_dict()
    for name in ("conv.weight", "conv.bias"):
        expected = torch.stack([states[epoch][name][n] for n, epoch in enumerate(best.tolist())])
        torch.testing.assert_close(state[name], expected)


def test_plain_module_neuron_count_is_checked(split):
    model = PlainConv(F, L, 10)
    with pytest.raises(ValueError, match=r"disagree.*'conv.weight': 10.*'conv.bias': 8|disagree.*'conv.weight': 8.*'conv.bias': 10"):
        PerCellBestSolver(model=model, neuron_parameters={"conv.weight": 1, "conv.bias": 0})
    model.O = 9  # deepSTRF's output count is the model's declared number of neurons
    with pytest.raises(ValueError, match="size N = 9"):
        PerCellBestSolver(model=model, neuron_parameters={"conv.*": 0})
    # the count of the tensors is checked against the data when the fit starts
    model = PlainConv(F, L, 7)
    solver = PerCellBestSolver(model=model, neuron_parameters={"conv.*": 0}, progress=False)
    assert solver.n_neurons_ == 7
    train, valid = split
    with pytest.raises(ValueError, match="n_neurons=7 but the training data have 10"):
        solver.fit(make_loader(train, batch_size=2), make_loader(valid, batch_size=4), max_epochs=1)
