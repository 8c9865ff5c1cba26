"""The "population" solver fits, stops early, keeps its best state, predicts."""

import math

import pytest
import torch

from strfsolver.solver.batches import to_device

import strfsolver
from strfsolver import metrics
from strfsolver.data import make_loader, neural_collate, synthetic_population
from strfsolver.solver import PopulationSolver, Solver

from solver_helpers import make_linear


def test_registered_and_built_by_name(new_model):
    solver = strfsolver.solver.init("population", model=new_model(), progress=False)
    assert isinstance(solver, PopulationSolver) and isinstance(solver, Solver)
    assert "population" in strfsolver.solver.get_options()
    assert solver.num_parameters == sum(p.numel() for p in solver.model.parameters())
    # the default optimizer is built lazily, with the documented settings
    assert solver.optimizer is None
    solver.ensure_optimizer()
    assert isinstance(solver.optimizer, torch.optim.AdamW)
    assert solver.optimizer.param_groups[0]["lr"] == 3e-3
    assert solver.optimizer.param_groups[0]["weight_decay"] == 1e-4


def test_solver_is_abstract(new_model):
    with pytest.raises(TypeError):
        Solver(model=new_model())


def test_fit_reaches_the_truths_cc_norm():
    pop = synthetic_population(n_neurons=8, n_stims=14, n_repeats=8, n_freqs=8, n_lags=6, n_times=150, seed=5)
    train, valid = pop.dataset.split([0.7, 0.3], seed=0)
    torch.manual_seed(0)
    solver = strfsolver.solver.init("population", model=make_linear(8, 6, 8), lr=2e-2, max_epochs=60, patience=10, progress=False)
    history = solver.fit(make_loader(train, batch_size=4, shuffle=True), make_loader(valid, batch_size=8)).log
    fitted = solver.last_validation_["cc_norm"]
    truth = pop.truth_cc_norm(valid).double()
    assert fitted.shape == (8,)
    assert torch.median(fitted) >= 0.85 * torch.median(truth)
    # the history is plain floats, one dict per epoch, with the documented keys
    assert {"epoch", "train_loss", "val_loss", "val_cc", "val_cc_norm", "lr", "seconds"} <= set(history[-1])
    assert all(isinstance(v, (int, float)) for row in history for k, v in row.items() if k != "stop_reason")
    assert history[-1]["stop_reason"] in ("patience", "max_epochs") and "stop_reason" not in history[0]
    assert [row["epoch"] for row in history] == list(range(len(history)))
    assert history[-1]["train_loss"] < history[0]["train_loss"]


class ScriptedValidation(PopulationSolver):
    """Validation scores follow a script, so early stopping is checked exactly."""

    scores = ()

    def validation(self, loader):
        calls = getattr(self, "_calls", 0)
        self._calls = calls + 1
        score = self.scores[calls]
        n = self.model.n_neurons
        return {"loss": -score, "cc": torch.full((n,), score, dtype=torch.float64), "cc_norm": torch.full((n,), score, dtype=torch.float64)}


def _snapshots(solver):
    saved = []
    solver.loggers.append(lambda row: saved.append({k: v.detach().clone() for k, v in solver.model.state_dict().items()}))
    return saved


def test_early_stopping_restores_the_best_state(new_model, loaders):
    solver = ScriptedValidation(model=new_model(), lr=1e-2, patience=2, max_epochs=20, progress=False)
    solver.scores = (0.1, 0.5, 0.4, 0.5, 0.7)
    saved = _snapshots(solver)
    history = solver.fit(*loaders).log
    # best at epoch 1; epochs 2 and 3 do not improve (0.5 is not > 0.5): stop after epoch 3
    assert len(history) == 4
    assert [row["val_cc_norm"] for row in history] == pytest.approx([0.1, 0.5, 0.4, 0.5], abs=1e-12)
    assert solver.best_epoch_ == 1 and solver.best_score_ == pytest.approx(0.5, abs=1e-12)
    for name, value in solver.model.named_parameters():
        assert torch.equal(value, saved[1][name])
        assert not torch.equal(value, saved[3][name])


def test_mode_min_and_min_delta(new_model, loaders):
    solver = ScriptedValidation(model=new_model(), patience=1, max_epochs=20, monitor="val_loss", mode="min", min_delta=0.05, progress=False)
    solver.scores = (0.1, 0.14, 0.3, 0.31)  # val_loss = -score: -0.14 is not 0.05 better than -0.1
    history = solver.fit(*loaders).log
    assert len(history) == 2 and solver.best_epoch_ == 0


def test_best_state_is_the_one_with_the_best_recorded_score(new_model, loaders):
    train, valid = loaders
    solver = strfsolver.solver.init("population", model=new_model(), lr=0.3, max_epochs=6, patience=None, monitor="val_loss", mode="min", progress=False)
    history = solver.fit(train, valid).log
    assert len(history) == 6
    best = min(range(6), key=lambda e: history[e]["val_loss"])
    assert solver.best_epoch_ == best
    # re-validating the restored model reproduces the best epoch's numbers exactly
    again = solver.validation(valid)
    assert again["loss"] == history[best]["val_loss"]


def test_invalid_mode_and_patience_raise_value_error(new_model):
    with pytest.raises(ValueError, match="mode must be 'max' or 'min', got 'maximum'"):
        PopulationSolver(model=new_model(), mode="maximum")
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="patience must be an integer >= 1"):
            PopulationSolver(model=new_model(), patience=bad)
    with pytest.raises(ValueError, match="max_epochs"):
        PopulationSolver(model=new_model(), max_epochs=0)
    with pytest.raises(ValueError, match="unknown metric"):
        PopulationSolver(model=new_model(), metrics=("cc", "ccnorm"))


def test_invalid_settings_changed_after_construction_raise_in_fit(new_model, loaders):
    solver = PopulationSolver(model=new_model(), progress=False)
    solver.mode = "best"
    with pytest.raises(ValueError, match="mode must be"):
        solver.fit(*loaders, max_epochs=1)
    solver.mode = "max"
    with pytest.raises(ValueError, match="valid_frequency"):
        solver.fit(*loaders, max_epochs=1, valid_frequency=0)


def test_unknown_monitor_raises_key_error_listing_keys(new_model, loaders):
    solver = PopulationSolver(model=new_model(), monitor="val_ccnorm", progress=False)
    with pytest.raises(KeyError) as info:
        solver.fit(*loaders, max_epochs=2)
    message = str(info.value)
    assert "'val_ccnorm'" in message
    for key in ("epoch", "train_loss", "val_loss", "val_cc", "val_cc_norm", "lr", "seconds"):
        assert repr(key) in message
    # nothing was trained: the error comes before the first step
    assert solver.log == []


def test_without_validation_the_monitor_falls_back_to_train_loss(new_model, loaders):
    solver = PopulationSolver(model=new_model(), lr=1e-2, max_epochs=3, progress=False)
    with pytest.warns(UserWarning, match="'train_loss' \\(mode 'min'\\)"):
        history = solver.fit(loaders[0]).log
    assert solver.monitor_ == "train_loss" and solver.mode_ == "min"
    assert "val_loss" not in history[-1]
    assert solver.best_epoch_ == min(range(3), key=lambda e: history[e]["train_loss"])
    # with tracked train metrics, val_cc_norm falls back to train_cc_norm, mode unchanged
    solver = PopulationSolver(model=new_model(), lr=1e-2, max_epochs=2, track_train_metrics=True, progress=False)
    with pytest.warns(UserWarning, match="'train_cc_norm' \\(mode 'max'\\)"):
        history = solver.fit(loaders[0]).log
    assert "train_cc_norm" in history[0] and "train_cc" in history[0]


def test_valid_frequency_validates_every_k_epochs_and_the_last(new_model, loaders):
    solver = PopulationSolver(model=new_model(), max_epochs=5, patience=None, progress=False)
    history = solver.fit(*loaders, valid_frequency=2).log
    assert ["val_cc_norm" in row for row in history] == [False, True, False, True, True]


def test_validation_streams_the_same_metrics_as_one_shot(new_model, splits):
    _, valid = splits
    solver = PopulationSolver(model=new_model(), metrics=("cc", "cc_norm", "fve"), progress=False)
    result = solver.validation(make_loader(valid, batch_size=2))
    full = neural_collate([valid[i] for i in range(len(valid))])
    with torch.no_grad():
        pred = solver.model(full["stims"])
    torch.testing.assert_close(result["cc"], metrics.corrcoef(pred, full["responses"]).double(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(result["cc_norm"], metrics.normalized_corrcoef(pred, full["responses"]).double(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(result["fve"], metrics.fve(pred, full["responses"]).double(), rtol=1e-5, atol=1e-5)
    assert set(result) == {"loss", "cc", "cc_norm", "fve"}


def test_train_metrics_are_tracked_on_request(new_model, loaders):
    solver = PopulationSolver(model=new_model(), max_epochs=1, progress=False, track_train_metrics=True)
    row = solver.fit(*loaders).log[0]
    assert -1 <= row["train_cc"] <= 1 and math.isfinite(row["train_cc_norm"])
    solver = PopulationSolver(model=new_model(), max_epochs=1, progress=False)
    assert "train_cc" not in solver.fit(*loaders).log[0]


def test_batches_on_the_device_are_not_copied(new_model, splits):
    solver = PopulationSolver(model=new_model(), progress=False)
    batch = next(iter(make_loader(splits[0], batch_size=2)))
    moved = to_device(batch, solver.device)
    assert all(moved[k] is batch[k] for k in ("stims", "responses", "valid_mask"))
    with pytest.raises(ValueError, match="batch must be a dict with keys 'stims'"):
        solver.step((batch["stims"], batch["responses"]))


def test_transform_matches_the_model_for_tensors_and_lists(new_model, splits):
    train, _ = splits
    solver = PopulationSolver(model=new_model(), progress=False)
    stims = torch.stack(train.stims[:5])
    with torch.no_grad():
        expected = solver.model(stims)
    torch.testing.assert_close(solver.transform(stims, batch_size=2), expected)
    # ragged list: each stimulus alone gives the same as within a padded chunk
    ragged = [train.stims[0][:, :50], train.stims[1], train.stims[2][:, :31]]
    out = solver.transform(ragged, batch_size=2)
    assert [tuple(o.shape) for o in out] == [(6, 1, 50), (6, 1, 80), (6, 1, 31)]
    for stim, pred in zip(ragged, out):
        with torch.no_grad():
            torch.testing.assert_close(pred, solver.model(stim[None])[0])
    assert solver.model.training
    with pytest.raises(ValueError, match="stimulus 1 has shape"):
        solver.transform([train.stims[0], train.stims[1][:3]])


class RepeatReadingSolver(PopulationSolver):
    """Declares that its hooks read every repeat: fit must serve the repeats."""

    reads_repeats = True
    seen_repeats: list

    def _loss(self, pred, batch):
        self.seen_repeats.append(batch["responses"].shape[2])
        return super()._loss(pred, batch)


def test_psth_view_gives_the_same_fit_as_the_repeats(splits, new_model):
    """A solver that does not read the repeats trains on PSTHs: same losses and parameters."""
    train, valid = splits

    def fit(cls):
        solver = cls(model=new_model(seed=2), lr=1e-2, max_epochs=4, patience=None, progress=False)
        solver.seen_repeats = []
        loader = make_loader(train, batch_size=3, shuffle=True, seed=5)
        history = solver.fit(loader, make_loader(valid, batch_size=4)).log
        return solver, loader, history

    class CountingSolver(PopulationSolver):
        def _loss(self, pred, batch):
            self.seen_repeats.append(batch["responses"].shape[2])
            return super()._loss(pred, batch)

    with_psth, loader, history = fit(CountingSolver)
    assert set(with_psth.seen_repeats) == {1}  # PSTHs only
    assert loader.state_dict()["epoch"] == 4  # the view advanced the loader's own epoch counter
    without, _, reference = fit(RepeatReadingSolver)
    assert set(without.seen_repeats) == {max(train.n_repeats)}
    for row, ref in zip(history, reference):
        assert row["train_loss"] == pytest.approx(ref["train_loss"], rel=1e-6, abs=0)
        assert row["val_cc_norm"] == pytest.approx(ref["val_cc_norm"], rel=1e-5, abs=0)
    for name, value in with_psth.model.state_dict().items():
        torch.testing.assert_close(value, without.model.state_dict()[name], rtol=1e-5, atol=1e-7)