"""Custom validation metrics: callables beside the built-in names, on the whole validation set."""

import pytest
import torch

from strfsolver.metrics import corrcoef
from strfsolver.solver import PopulationSolver


def _solver(model, **options):
    return PopulationSolver(model=model, lr=1e-2, patience=None, progress=False, **options)


def test_custom_twin_of_a_builtin_gives_the_builtin_values(loaders, new_model):
    train, valid = loaders
    solver = _solver(new_model(), metrics=["cc", {"my_cc": lambda pred, resp: corrcoef(pred, resp)}], monitor="val_my_cc", mode="max")
    history = solver.fit(train, valid, max_epochs=3).log
    assert solver.metrics == ("cc", "my_cc")
    for row in history:
        # the streamed built-in and the whole-set custom metric compute the same correlation
        assert row["val_my_cc"] == pytest.approx(row["val_cc"], abs=1e-6)
    values = solver.validation(valid)
    torch.testing.assert_close(values["my_cc"], values["cc"], atol=1e-6, rtol=0)
    assert solver.monitor_ == "val_my_cc"
    assert solver.best_score_ == pytest.approx(max(row["val_my_cc"] for row in history))


def test_custom_metric_sees_every_batch_nan_padded(loaders, new_model, splits):
    _, valid = loaders
    seen = {}

    def shapes(pred, responses):
        seen["pred"], seen["responses"] = pred.shape, responses.shape
        seen["padding_is_nan"] = bool(responses.isnan().any())
        return responses.isnan().logical_not().flatten(2).sum(-1).sum(0).double()

    solver = _solver(new_model(), metrics={"bins": shapes})
    values = solver.validation(valid)
    n_stims = len(splits[1])
    assert seen["pred"][0] == n_stims and seen["responses"][0] == n_stims
    # the count of recorded entries per neuron is that of the data itself
    recorded = sum((~b["responses"].isnan()).flatten(2).sum(-1).sum(0) for b in valid)
    torch.testing.assert_close(values["bins"], recorded.double())


def test_bad_custom_metrics_fail_early(new_model, loaders):
    with pytest.raises(ValueError, match="name of a built-in"):
        _solver(new_model(), metrics={"cc": lambda p, r: p})
    with pytest.raises(ValueError, match="must be a callable"):
        _solver(new_model(), metrics={"mine": 3})
    with pytest.raises(ValueError, match="unknown metric"):
        _solver(new_model(), metrics=["ccc"])
    solver = _solver(new_model(), metrics={"wrong": lambda p, r: p.nanmean()})
    with pytest.raises(ValueError, match="one value per neuron"):
        solver.validation(loaders[1])


def test_track_train_metrics_computes_custom_metrics_on_the_training_predictions(loaders, new_model):
    train, valid = loaders
    metrics = ["cc", {"my_cc": lambda pred, resp: corrcoef(pred, resp)}]
    solver = _solver(new_model(), metrics=metrics, track_train_metrics=True, monitor="val_cc")
    history = solver.fit(train, valid, max_epochs=3).log
    for row in history:
        assert "train_my_cc" in row
        # the whole-set custom twin of the streamed built-in gives its training value
        assert row["train_my_cc"] == pytest.approx(row["train_cc"], abs=1e-6)
    # and it may be the monitor, with or without validation data
    solver = _solver(new_model(), metrics=metrics, track_train_metrics=True, monitor="train_my_cc", mode="max")
    history = solver.fit(train, max_epochs=3).log
    assert solver.monitor_ == "train_my_cc"
    assert solver.best_score_ == pytest.approx(max(row["train_my_cc"] for row in history))
    solver = _solver(new_model(), metrics=metrics, track_train_metrics=True, monitor="val_my_cc", mode="max")
    with pytest.warns(UserWarning, match="'train_my_cc'"):
        solver.fit(train, max_epochs=2)
    assert solver.monitor_ == "train_my_cc"


def test_custom_train_metric_is_absent_without_track_train_metrics(loaders, new_model):
    train, valid = loaders
    solver = _solver(new_model(), metrics=["cc", {"my_cc": lambda pred, resp: corrcoef(pred, resp)}], monitor="val_cc")
    row = solver.fit(train, valid, max_epochs=1).log[-1]
    assert "train_my_cc" not in row and "val_my_cc" in row
