"""Fit quality on the synthetic ground truth through the "population" solver (issue 4).

- "linear" recovers the true STRFs: per-neuron correlation between the
  fitted and the true (N, 1, F, L) kernels, median >= 0.9.
- "ln" predicts held-out responses with a median cc_norm of at least 0.9
  of the truth's own cc_norm (the ceiling any model can reach).

Why the linear test draws a linear ground truth with many repeats: the
spectrogram-like stimuli are smooth and sparse, so their lag-frequency
covariance is badly conditioned. Directions the stimuli barely explore hardly
change a prediction, and with the default softplus truth a linear model is
misspecified, so even the best ridge estimate on noise-free rates correlates
only about 0.9 with the true STRF at these sizes. With a linear truth and a
low-noise PSTH the STRF is identifiable up to noise, and recovering it tests
the model, its convention and the solver rather than the stimulus statistics.
"""

import pytest
import torch

import strfsolver
from strfsolver.data import make_loader, synthetic_population

N, F, L = 16, 8, 6


def per_neuron_correlation(a, b):
    a = a.flatten(1).double()
    b = b.flatten(1).double()
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))


def fit(model, pop, criterion, max_epochs, patience, **options):
    # the solver's default learning rate: the defaults must fit well
    train, valid = pop.dataset.split([0.75, 0.25], seed=0)
    solver = strfsolver.solver.init(
        "population", model=model, criterion=criterion, max_epochs=max_epochs, patience=patience, progress=False, **options
    )
    solver.fit(make_loader(train, batch_size=4, shuffle=True, seed=0), make_loader(valid, batch_size=8))
    return solver, valid


def test_linear_recovers_the_true_strfs():
    pop = synthetic_population(
        n_neurons=N, n_stims=32, n_repeats=40, n_freqs=F, n_lags=L, n_times=400, nonlinearity="linear", noise=0.0, seed=0
    )
    torch.manual_seed(0)
    model = strfsolver.models.init("linear", n_freqs=F, n_lags=L, n_neurons=N)
    before = per_neuron_correlation(model.strf().detach(), pop.strfs)
    fit(model, pop, "mse", max_epochs=300, patience=30)
    cc = per_neuron_correlation(model.strf().detach(), pop.strfs)
    assert cc.shape == (N,)
    assert torch.median(cc) >= 0.9, cc
    assert cc.min() >= 0.75, cc
    assert torch.median(before) < 0.3  # the recovery comes from the fit, not the initialisation


def test_ln_reaches_the_truths_cc_norm():
    pop = synthetic_population(n_neurons=N, n_stims=16, n_repeats=10, n_freqs=F, n_lags=L, n_times=300, seed=0)
    torch.manual_seed(0)
    model = strfsolver.models.init("ln", n_freqs=F, n_lags=L, n_neurons=N)
    solver, valid = fit(model, pop, "poisson", max_epochs=100, patience=10)
    fitted = solver.last_validation_["cc_norm"]
    truth = pop.truth_cc_norm(valid).double()
    assert fitted.shape == (N,)
    assert torch.median(fitted) >= 0.9 * torch.median(truth), (fitted, truth)
    assert (model(torch.stack(list(valid.stims))) >= 0).all()  # rates, as a Poisson loss needs


@pytest.mark.parametrize("name", strfsolver.models.get_options())
def test_every_model_fits_the_synthetic_population(name, build):
    """Each registered model, trained briefly by the population solver, predicts held-out responses."""
    pop = synthetic_population(n_neurons=3, n_stims=16, n_repeats=8, n_freqs=8, n_lags=5, n_times=120, seed=5)
    model = build(name)
    train, valid = pop.dataset.split([0.75, 0.25], seed=0)
    lr = 3e-2 if name == "nrf" else 1e-2  # the hidden STRF layer learns slowly at 1e-2
    solver = strfsolver.solver.init("population", model=model, lr=lr, max_epochs=40, patience=None, progress=False)
    before = solver.validation(make_loader(valid, batch_size=4))
    solver.fit(make_loader(train, batch_size=4, shuffle=True, seed=0), make_loader(valid, batch_size=4))
    after = solver.validation(make_loader(valid, batch_size=4))
    assert after["loss"] < 0.5 * before["loss"]
    # the truth's own correlation with the noisy PSTH is the ceiling
    assert float(after["cc"].median()) >= 0.85 * float(pop.truth_cc(valid).median())
