"""fit(..., overfit_batches=n): flyvis's overfit check trains on the same first batches every epoch."""

import warnings

import pytest
import torch

from solver_helpers import make_linear
from strfsolver.data import make_loader, synthetic_population
from strfsolver.solver import PopulationSolver


@pytest.fixture(scope="module")
def population():
    # not the embedded population's family or scale: a linear rate model, 10 ms bins, stimuli of several lengths
    return synthetic_population(n_neurons=4, n_stims=6, n_repeats=3, n_freqs=6, n_lags=5, n_times=(40, 60), dt_ms=10.0,
                                nonlinearity="linear", seed=7)


def test_overfit_batches_trains_on_one_batch_until_its_loss_is_far_below_its_start(population):
    seen = []

    class Recording(PopulationSolver):
        def step(self, batch):
            seen.append(tuple(meta["index"] for meta in batch["meta"]))
            return super().step(batch)

    def loader():
        return make_loader(population.dataset, batch_size=2, shuffle=True, seed=3)

    torch.manual_seed(0)
    solver = Recording(model=make_linear(6, 5, 4), lr=0.1, max_epochs=30, patience=None, progress=False, monitor="train_loss")
    solver.fit(loader(), overfit_batches=1)
    assert len(set(seen)) == 1 and len(seen) == 30  # one batch, the same one, in every epoch
    assert solver.log[-1]["train_loss"] < 0.3 * solver.log[0]["train_loss"], (solver.log[0], solver.log[-1])

    # the fitted model itself, on that batch: far below where the fit started
    batch = solver.prepare(next(iter(loader())))
    assert tuple(meta["index"] for meta in batch["meta"]) == seen[0]
    with torch.no_grad():
        on_batch = solver.criterion(solver.model(batch["stims"]), batch["responses"]).item()
    assert on_batch < 0.3 * solver.log[0]["train_loss"], (on_batch, solver.log[0]["train_loss"])


def test_overfit_batches_refuses_bad_counts(population):
    solver = PopulationSolver(model=make_linear(6, 5, 4), progress=False, monitor="train_loss")
    with pytest.raises(ValueError, match="overfit_batches must be an integer >= 1"):
        solver.fit(make_loader(population.dataset, batch_size=4), overfit_batches=0)
    with pytest.raises(ValueError, match="overfit_batches=3, but the training loader yields only 2 batch"):
        solver.fit(make_loader(population.dataset, batch_size=4), overfit_batches=3)


def test_resuming_an_overfit_check_on_the_full_data_is_warned(population, tmp_path):
    # the overfit setting is a fit argument; a resume without it trains on every batch from there on
    def fit(**options):
        torch.manual_seed(0)
        solver = PopulationSolver(model=make_linear(6, 5, 4), lr=0.1, patience=None, progress=False, monitor="train_loss")
        solver.fit(make_loader(population.dataset, batch_size=2, shuffle=True, seed=3), logdir=tmp_path, **options)
        return solver

    assert fit(max_epochs=2, overfit_batches=1).overfit_batches_ == 1
    with pytest.warns(UserWarning, match=r"overfit_batches: 1 in the checkpoint, None now"):
        fit(max_epochs=4, resume=True)
    with warnings.catch_warnings(record=True) as record:  # the same setting: nothing to say about it
        warnings.simplefilter("always")
        fit(max_epochs=5, resume=True)
    assert not [w for w in record if "overfit_batches" in str(w.message)]


def test_a_continuation_with_other_options_is_warned(population, tmp_path):
    torch.manual_seed(0)
    first = PopulationSolver(model=make_linear(6, 5, 4), lr=0.1, patience=None, progress=False, monitor="train_loss")
    first.fit(make_loader(population.dataset, batch_size=2, seed=3), logdir=tmp_path, max_epochs=3, keep_every=1)
    again = PopulationSolver(model=make_linear(6, 5, 4), lr=0.05, patience=None, progress=False, monitor="train_loss")
    again.recover(2, parts=("model", "optimizer", "progress"), logdir=tmp_path)
    with pytest.warns(UserWarning, match=r"lr: 0\.1 in the checkpoint, 0\.05 now"):
        again.fit(make_loader(population.dataset, batch_size=2, seed=3), max_epochs=4)
