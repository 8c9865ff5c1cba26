"""PSTH views and the validation cache: the same numbers as the repeats, the loader's epochs counted."""

import pytest
import torch

from strfsolver.solver.evaluation import evaluate
from torch.utils.data import DataLoader

import strfsolver
from strfsolver.data import PsthView, ValidationCache, make_loader, neural_collate
from strfsolver.metrics import psth

METRICS = ("cc", "cc_norm", "cc_norm_hsu", "fve")


def setup(seed=0):
    population = strfsolver.data.synthetic_population(
        n_neurons=5, n_stims=9, n_repeats=4, n_freqs=6, n_lags=4, n_times=(60, 90), seed=seed
    )
    train, valid = population.dataset.split([0.6, 0.4], seed=0)
    strfsolver.set_random_seed(0)
    model = strfsolver.models.init("linear", n_freqs=6, n_lags=4, n_neurons=5)
    solver = strfsolver.solver.init("population", model=model, lr=2e-2, max_epochs=4, patience=None, progress=False, metrics=METRICS)
    return solver, train, valid


def test_psth_view_serves_the_loaders_batches_with_psths():
    _, train, _ = setup()
    loader = make_loader(train, batch_size=2, shuffle=True, seed=3)
    view = loader.psth_view()
    assert isinstance(view, PsthView) and len(view) == len(loader)
    twin = make_loader(train, batch_size=2, shuffle=True, seed=3)
    for epoch in range(2):
        for got, want in zip(view, twin):
            assert [m for m in got["meta"]] == [m for m in want["meta"]]
            torch.testing.assert_close(got["stims"], want["stims"])
            torch.testing.assert_close(got["responses"], psth(want["responses"]), equal_nan=True)
            assert torch.equal(got["valid_mask"], ~got["responses"].isnan())
        assert loader.epoch == twin.epoch == epoch + 1
    assert view.state_dict() == loader.state_dict()


def test_validation_cache_equals_plain_validation_and_counts_epochs():
    solver, train, valid = setup()
    padded = make_loader(valid, batch_size=2)
    cache = ValidationCache(padded, METRICS, solver.prepare)
    plain = DataLoader(valid, batch_size=2, collate_fn=neural_collate)
    train_loader = make_loader(train, batch_size=2, shuffle=True)
    for epoch in range(3):
        solver.fit(train_loader, padded, max_epochs=1)  # the model changes between validations
        cached, reference = evaluate(solver, padded, cache), solver.validation(plain)
        assert cached["loss"] == pytest.approx(reference["loss"], rel=1e-9)
        for name in METRICS:
            torch.testing.assert_close(cached[name], reference[name], rtol=1e-9, atol=1e-9, equal_nan=True)
    # every fit validated once and every cached pass counted as an iteration
    assert padded.epoch == 6
    # only fixed-order PaddedLoaders qualify
    assert not ValidationCache.applies_to(make_loader(valid, batch_size=2, shuffle=True))
    assert not ValidationCache.applies_to(plain)
    with pytest.raises(ValueError, match="shuffle=False"):
        ValidationCache(plain, METRICS)


def test_cleared_valid_mask_entries_count_as_not_recorded():
    solver, train, valid = setup()
    loader = make_loader(valid, batch_size=3)
    batch = next(iter(loader))
    masked = dict(batch, valid_mask=batch["valid_mask"].clone())
    masked["valid_mask"][:, :, :, :10] = False  # leave out the onset bins
    nan_filled = dict(batch, responses=batch["responses"].clone())
    nan_filled["responses"][:, :, :, :10] = float("nan")
    nan_filled["valid_mask"] = ~nan_filled["responses"].isnan()
    with torch.no_grad():
        pred = solver._inference(solver.prepare(batch))
        loss_masked = solver._loss(pred, solver.prepare(masked))
        loss_filled = solver._loss(pred, solver.prepare(nan_filled))
        loss_all = solver._loss(pred, solver.prepare(batch))
    assert float(loss_masked) == float(loss_filled)
    assert float(loss_masked) != float(loss_all)
    with pytest.raises(ValueError, match="valid_mask"):
        solver.prepare(dict(batch, valid_mask=batch["valid_mask"][:, :1]))
