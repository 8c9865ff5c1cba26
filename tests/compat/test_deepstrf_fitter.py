"""deepSTRF's Fitter over the registered solvers: its defaults, history format, checkpoint and per-cell restore, by value."""

import pytest
import torch
from torch import nn

import strfsolver
from strfsolver.compat.deepstrf import Fitter
from strfsolver.data import make_loader, synthetic_population
from strfsolver.metrics import corrcoef

N, F, L = 3, 5, 3


@pytest.fixture(scope="module")
def data():
    population = synthetic_population(n_neurons=N, n_stims=8, n_repeats=3, n_freqs=F, n_lags=L, n_times=40, seed=0)
    return population.dataset.split([0.5, 0.25, 0.25], seed=0)


def loaders(data):
    train, valid, test = data
    return make_loader(train, batch_size=2, shuffle=True, seed=3), make_loader(valid, batch_size=2), make_loader(test, batch_size=2)


def ln(seed=0):
    strfsolver.set_random_seed(seed)
    return strfsolver.models.init("ln", n_freqs=F, n_lags=L, n_neurons=N)


def quiet(epoch_dict):
    pass


def test_fitter_trains_as_the_population_solver_with_deepstrfs_settings(data):
    train_loader, valid_loader, _ = loaders(data)
    fitter = Fitter(ln(), train_loader, valid_loader, max_epochs=5, log_fn=quiet)
    history = fitter.fit()

    train_loader, valid_loader, _ = loaders(data)
    solver = strfsolver.solver.init(
        "population", model=ln(), lr=1e-3, weight_decay=1e-4, plateau_patience=0, standardize=False, progress=False,
        patience=10, monitor="val_cc_norm", track_train_metrics=True, max_epochs=5,
    ).fit(train_loader, valid_loader)
    for key, value in solver.model.state_dict().items():
        assert torch.equal(fitter.model.state_dict()[key], value), key
    assert [row["epoch"] for row in history] == list(range(5))
    assert set(history[0]) == {"epoch", "train_loss", "train_cc", "train_cc_norm", "val_loss", "val_cc", "val_cc_norm"}
    for row, ours in zip(history, solver.log):
        assert row["train_loss"] == ours["train_loss"] and row["val_loss"] == ours["val_loss"]
        for key in ("val_cc", "val_cc_norm", "train_cc"):
            assert row[key].shape == (N,)
            assert float(row[key].nanmean()) == pytest.approx(ours[key], abs=1e-12)
    assert torch.equal(torch.stack([row["val_cc"] for row in history]), solver.history_neurons_["val_cc"])
    assert isinstance(fitter.optimizer, torch.optim.AdamW) and fitter.optimizer.param_groups[0]["lr"] == 1e-3


def test_early_stopping_follows_deepstrfs_patience_rule(data):
    train_loader, valid_loader, _ = loaders(data)
    history = Fitter(ln(), train_loader, valid_loader, max_epochs=40, patience=2, optimizer=None, log_fn=quiet,
                     val_metrics={"neg": lambda p, r: -corrcoef(p, r)}, monitor="val_neg").fit()
    scores = [float(row["val_neg"].nanmean()) for row in history]
    # deepSTRF's rule on the returned values: stop once `patience` epochs in a row did not beat the best
    best, bad, expected = -float("inf"), 0, len(scores)
    for epoch, score in enumerate(scores):
        best, bad = (score, 0) if score > best else (best, bad + 1)
        if bad >= 2:
            expected = epoch + 1
            break
    assert len(history) == expected < 40


def test_ckpt_path_holds_the_best_state_the_model_ends_in(data, tmp_path):
    train_loader, valid_loader, _ = loaders(data)
    path = tmp_path / "deep" / "best.pt"
    fitter = Fitter(ln(), train_loader, valid_loader, max_epochs=6, ckpt_path=path, log_fn=quiet, monitor="val_loss", mode="min")
    history = fitter.fit()
    saved = torch.load(path)
    for key, value in fitter.model.state_dict().items():
        assert torch.equal(saved[key], value), key
    best = min(range(len(history)), key=lambda e: history[e]["val_loss"])
    assert fitter.evaluate(valid_loader)["loss"] == pytest.approx(history[best]["val_loss"], rel=1e-9)


def test_log_fn_and_on_epoch_end_get_the_per_neuron_dicts(data, capsys):
    train_loader, valid_loader, _ = loaders(data)
    seen = []

    class Mine(Fitter):
        def on_epoch_end(self, epoch, epoch_dict):
            seen.append((epoch, epoch_dict["val_cc"].shape))
            super().on_epoch_end(epoch, epoch_dict)

    Mine(ln(), train_loader, valid_loader, max_epochs=2, track_train_metrics=False).fit()
    assert seen == [(0, (N,)), (1, (N,))]
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("epoch    0 | train_loss=") and "val_cc_norm=" in printed[0] and "train_cc" not in printed[0]


def test_compute_loss_override_is_what_trains(data):
    train_loader, valid_loader, _ = loaders(data)
    model = ln()
    start = {k: v.clone() for k, v in model.state_dict().items()}

    class NoSignal(Fitter):
        def compute_loss(self, pred, responses):
            assert responses.shape[1] == N
            return 0.0 * pred.sum()

    NoSignal(model, train_loader, valid_loader, max_epochs=2, log_fn=quiet, optimizer=torch.optim.SGD(model.parameters(), lr=0.5)).fit()
    for key, value in model.state_dict().items():
        assert torch.equal(value, start[key]), key


def test_a_users_metric_may_carry_a_builtin_name(data):
    train_loader, valid_loader, _ = loaders(data)
    fitter = Fitter(ln(), train_loader, valid_loader, max_epochs=2, log_fn=quiet,
                    val_metrics={"cc": lambda p, r: -corrcoef(p, r)}, monitor="val_cc", mode="max")
    history = fitter.fit()
    builtin = fitter.solver.validation(valid_loader)  # the solver's own names: the user's "cc" is kept apart
    assert torch.allclose(fitter.evaluate(valid_loader)["cc"], -corrcoef_of(fitter, valid_loader), equal_nan=True)
    assert set(history[-1]) >= {"val_cc", "train_cc"} and "cc" not in builtin


def corrcoef_of(fitter, loader):
    preds, responses = [], []
    with torch.no_grad():
        for batch in loader:
            batch = fitter.solver.prepare(batch)
            preds.append(fitter.model.eval()(batch["stims"]))
            responses.append(batch["responses"])
    return corrcoef(torch.cat(preds), torch.cat(responses)).double()


class DeepStyle(nn.Module):
    """A model as deepSTRF builds them: ``readout`` and the number of neurons ``O``, no ``n_neurons``."""

    def __init__(self):
        super().__init__()
        self.readout = ln()
        self.O = N

    def forward(self, stims):
        return self.readout(stims)


def test_track_per_cell_best_leaves_each_neuron_at_its_own_best_epoch(data):
    train_loader, valid_loader, _ = loaders(data)
    fitter = Fitter(DeepStyle(), train_loader, valid_loader, max_epochs=8, patience=8, log_fn=quiet, track_per_cell_best=True)
    history = fitter.fit()
    per_epoch = torch.stack([row["val_cc_norm"] for row in history])          # (epochs, N)
    best = torch.where(per_epoch.isnan(), -torch.inf, per_epoch).max(dim=0).values
    final = fitter.evaluate(valid_loader)["cc_norm"]
    assert torch.allclose(final, best, atol=1e-6, equal_nan=True)


def test_bad_arguments_are_refused_up_front(data):
    train_loader, valid_loader, _ = loaders(data)
    with pytest.raises(ValueError, match="mode must be 'max' or 'min'"):
        Fitter(ln(), train_loader, valid_loader, mode="up")
    with pytest.raises(ValueError, match=r"model.readout.*model.O"):
        Fitter(nn.Sequential(ln()), train_loader, valid_loader, track_per_cell_best=True)
    with pytest.raises(ValueError, match="patience"):
        Fitter(ln(), train_loader, valid_loader, patience=0)


def test_loss_fn_set_after_construction_is_what_fit_trains_on(data):
    train_loader, valid_loader, _ = loaders(data)
    model = ln()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    fitter = Fitter(model, train_loader, valid_loader, max_epochs=2, log_fn=quiet, optimizer=torch.optim.SGD(model.parameters(), lr=0.5))
    fitter.loss_fn = lambda pred, responses: 0.0 * pred.sum()  # deepSTRF reads it at fit time: no gradient, no change
    history = fitter.fit()
    assert [row["train_loss"] for row in history] == [0.0, 0.0]
    for key, value in model.state_dict().items():
        assert torch.equal(value, start[key]), key

    fitter.loss_fn = strfsolver.compat.deepstrf.mse_loss  # and back: training moves the weights again, same optimizer
    fitter.fit()
    assert any(not torch.equal(value, start[key]) for key, value in model.state_dict().items())
    assert isinstance(fitter.optimizer, torch.optim.SGD) and fitter.solver.optimizer is fitter.optimizer


def test_optimizer_set_after_construction_is_the_one_used(data):
    train_loader, valid_loader, _ = loaders(data)
    model = ln()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    fitter = Fitter(model, train_loader, valid_loader, max_epochs=2, log_fn=quiet)
    sgd = torch.optim.SGD(model.parameters(), lr=0.0)  # AdamW (the default) would move the weights
    fitter.optimizer = sgd
    fitter.fit()
    assert fitter.optimizer is sgd and fitter.solver.optimizer is sgd
    for key, value in model.state_dict().items():
        assert torch.equal(value, start[key]), key


def test_val_metrics_set_after_construction_are_reported(data):
    train_loader, valid_loader, _ = loaders(data)
    fitter = Fitter(ln(), train_loader, valid_loader, max_epochs=2, log_fn=quiet, monitor="val_loss", mode="min")
    fitter.val_metrics = {"neg_cc": lambda pred, responses: -corrcoef(pred, responses)}
    history = fitter.fit()
    assert set(history[0]) == {"epoch", "train_loss", "val_loss", "val_neg_cc", "train_neg_cc"}
    assert torch.allclose(history[-1]["val_neg_cc"], -corrcoef_of(fitter, valid_loader), equal_nan=True)
    fitter.val_metrics["one"] = lambda pred, responses: torch.ones(pred.shape[1], dtype=torch.float64)  # changed in place
    assert torch.equal(fitter.fit()[0]["val_one"], torch.ones(N, dtype=torch.float64))


def test_ckpt_path_holds_the_population_best_while_per_cell_best_overlays_the_model(data, tmp_path):
    train_loader, valid_loader, _ = loaders(data)
    path = tmp_path / "best.pt"
    fitter = Fitter(DeepStyle(), train_loader, valid_loader, max_epochs=8, patience=8, log_fn=quiet, track_per_cell_best=True, ckpt_path=path)
    history = fitter.fit()
    per_epoch = torch.stack([row["val_cc_norm"] for row in history])
    population_best = max(range(len(history)), key=lambda e: float(per_epoch[e].nanmean()))
    final = fitter.evaluate(valid_loader)["cc_norm"]
    fitter.model.load_state_dict(torch.load(path))
    saved = fitter.evaluate(valid_loader)["cc_norm"]
    assert torch.allclose(saved, per_epoch[population_best], atol=1e-6, equal_nan=True)
    assert not torch.allclose(saved, final, atol=1e-6, equal_nan=True)  # the docstring's point: they differ


def test_user_metric_names_never_collapse_into_one(data):
    train_loader, valid_loader, _ = loaders(data)
    one = lambda pred, responses: torch.full((pred.shape[1],), 1.0, dtype=torch.float64)
    two = lambda pred, responses: torch.full((pred.shape[1],), 2.0, dtype=torch.float64)
    fitter = Fitter(ln(), train_loader, valid_loader, max_epochs=1, log_fn=quiet, monitor="val_loss", mode="min",
                    val_metrics={"cc": one, "cc@val_metrics": two, "x@val_metrics": two})
    row = fitter.fit()[0]
    assert torch.equal(row["val_cc"], torch.ones(N, dtype=torch.float64))
    assert torch.equal(row["val_cc@val_metrics"], torch.full((N,), 2.0, dtype=torch.float64))
    assert torch.equal(row["train_cc"], torch.ones(N, dtype=torch.float64))
    assert torch.equal(fitter.evaluate(valid_loader)["cc"], torch.ones(N, dtype=torch.float64))
    assert len(set(fitter._names.values())) == 3


def test_empty_val_metrics_reports_no_metrics_as_deepstrf(data):
    train_loader, valid_loader, _ = loaders(data)
    fitter = Fitter(ln(), train_loader, valid_loader, max_epochs=3, patience=1, log_fn=quiet, val_metrics={}, monitor="val_loss", mode="min")
    history = fitter.fit()
    assert set(history[0]) == {"epoch", "train_loss", "val_loss"}
    assert set(fitter.evaluate(valid_loader)) == {"loss"}
    for monitor in ("val_cc_norm", "val_@val_metrics"):  # no metric to monitor, not even the solver's placeholder
        with pytest.raises(KeyError, match=r"available keys: \['train_loss', 'val_loss'\]"):
            Fitter(ln(), train_loader, valid_loader, max_epochs=1, log_fn=quiet, val_metrics={}, monitor=monitor).fit()
    with pytest.raises(ValueError, match="val_metrics"):
        Fitter(ln(), train_loader, valid_loader, val_metrics={"": corrcoef})
