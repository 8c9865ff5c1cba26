"""A fit run inside ``torch.autocast``: every forward uses the current parameters.

Autocast caches its low-precision copy of each parameter until its region ends; the solver
changes the parameters in place between forwards, so without a fresh cache per forward a fit
inside one region trained and validated the weights of its first batch.
"""

import pytest
import torch

import strfsolver
from strfsolver.data import make_loader, synthetic_population

BF16 = dict(device_type="cpu", dtype=torch.bfloat16)


@pytest.fixture(scope="module")
def splits():
    data = synthetic_population(n_neurons=8, n_stims=10, n_repeats=3, n_freqs=12, n_lags=6, n_times=150, seed=3).dataset
    return data.subset(range(8)), data.subset(range(8, 10))


def fit(name, splits, autocast, epochs=5):
    train, valid = splits
    strfsolver.set_random_seed(0)
    model = strfsolver.models.init(name, n_freqs=12, n_lags=6, n_neurons=8)
    solver = strfsolver.solver.init("population", model=model, patience=None, progress=False)
    with torch.autocast(**BF16, enabled=autocast):
        solver.fit(make_loader(train, batch_size=2, shuffle=True, seed=0), make_loader(valid, batch_size=2), max_epochs=epochs)
        inside = solver.transform(valid.stims[:1])[0]
    return solver, inside


@pytest.mark.filterwarnings("ignore::strfsolver.solver.diagnostics.FitWarning")
@pytest.mark.parametrize("name", ["cnn2d", "ln"])
def test_a_fit_inside_bf16_autocast_follows_the_float32_fit(name, splits):
    exact, _ = fit(name, splits, autocast=False)
    mixed, _ = fit(name, splits, autocast=True)
    scores = [row["val_cc_norm"] for row in mixed.log]
    assert max(scores) - min(scores) > 0.05  # before: the first epoch's value, to 4 digits, in every epoch
    for a, b in zip(exact.log, mixed.log):
        assert abs(a["val_cc_norm"] - b["val_cc_norm"]) < 0.03
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=0.05)


@pytest.mark.filterwarnings("ignore::strfsolver.solver.diagnostics.FitWarning")
def test_a_prediction_inside_the_same_autocast_region_uses_the_fitted_weights(splits):
    solver, inside = fit("cnn2d", splits, autocast=True, epochs=3)
    outside = solver.transform(splits[1].stims[:1])[0]  # float32, the fitted weights
    assert torch.corrcoef(torch.stack([inside.flatten().float(), outside.flatten()]))[0, 1] > 0.999


@pytest.mark.filterwarnings("ignore::strfsolver.solver.diagnostics.FitWarning")
def test_a_plain_forward_after_fit_in_the_same_region_uses_the_best_state(splits):
    # the fit ends by copying the best epoch's state into the parameters, in place, after its last forward
    train, valid = splits
    strfsolver.set_random_seed(0)
    model = strfsolver.models.init("cnn2d", n_freqs=12, n_lags=6, n_neurons=8)
    solver = strfsolver.solver.init("population", model=model, patience=3, lr=0.3, monitor="val_loss", progress=False)
    x = valid.stims[0][None]
    with torch.autocast(**BF16):
        solver.fit(make_loader(train, batch_size=2, shuffle=True, seed=0), make_loader(valid, batch_size=2), max_epochs=30)
        assert solver.training_state_.best_epoch < len(solver.log) - 1  # the best is not the last epoch
        with torch.no_grad():
            inside = model.eval()(x)
    with torch.no_grad():
        outside = model(x)
    assert torch.corrcoef(torch.stack([inside.flatten().float(), outside.flatten()]))[0, 1] > 0.999
