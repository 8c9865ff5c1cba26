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
