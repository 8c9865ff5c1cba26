"""The Solver's declared hooks: a custom loss alone, a custom step with or without the repeats."""

import random

import numpy as np
import pytest
import torch

import strfsolver
from strfsolver.data import make_loader
from strfsolver.solver import PopulationSolver, Solver, checkpoint


def _params(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


class HuberSolver(PopulationSolver):
    """Overrides only the data loss: a Huber loss on the PSTH instead of the MSE."""

    def _loss(self, pred, batch):
        target = batch["responses"].nanmean(dim=2, keepdim=True)
        valid = ~target.isnan()
        return torch.nn.functional.huber_loss(pred[valid], target[valid], delta=0.5)


def test_a_subclass_that_overrides_only_the_loss_trains_and_resumes_bit_exactly(splits, new_model, tmp_path):
    train, valid = splits

    def loaders():
        return make_loader(train, batch_size=2, shuffle=True, seed=4), make_loader(valid, batch_size=2)

    def solver(seed):
        return HuberSolver(model=new_model(seed=seed), lr=2e-2, patience=None, progress=False)

    full = solver(7)
    history = full.fit(*loaders(), max_epochs=8, logdir=tmp_path / "full").log
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    # the reported loss is the Huber loss, not the MSE the criterion would give
    batch = full.prepare(next(iter(make_loader(train, batch_size=len(train)))))
    with torch.no_grad():
        pred = full.model(batch["stims"])
    assert float(full._loss(pred, batch)) != pytest.approx(float(full.criterion(pred, batch["responses"])), rel=1e-3)

    cut = solver(7)
    cut.fit(*loaders(), max_epochs=4, logdir=tmp_path / "cut")
    resumed = solver(1)
    resumed.fit(*loaders(), max_epochs=8, logdir=tmp_path / "cut", resume=True)
    for name, value in _params(full.model).items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name


class RepeatStep(PopulationSolver):
    """A custom step that records the repeats it is given."""

    reads_repeats = True

    def step(self, batch):
        self.seen.append(batch["responses"].shape[2])
        return super().step(batch)


class PsthStep(PopulationSolver):
    """The same custom step, without declaring that it reads repeats."""

    def step(self, batch):
        self.seen.append(batch["responses"].shape[2])
        return super().step(batch)


@pytest.mark.parametrize("cls, expected", [(RepeatStep, "repeats"), (PsthStep, "psth")])
def test_a_custom_step_gets_the_repeats_only_when_it_declares_it(cls, expected, splits, new_model):
    train, valid = splits
    solver = cls(model=new_model(), lr=1e-2, max_epochs=2, patience=None, progress=False)
    solver.seen = []
    solver.fit(make_loader(train, batch_size=3, shuffle=True), make_loader(valid, batch_size=3))
    want = {max(train.n_repeats)} if expected == "repeats" else {1}
    assert set(solver.seen) == want


def test_a_step_that_returns_no_dict_is_named(splits, new_model):
    class FloatStep(PopulationSolver):
        def step(self, batch):
            return 0.5

    train, _ = splits
    solver = FloatStep(model=new_model(), max_epochs=1, progress=False, monitor="train_loss", mode="min")
    with pytest.raises(ValueError, match=r"step\(\) must return a dict with at least 'loss'.*got float"):
        solver.fit(make_loader(train, batch_size=3))


def test_the_training_state_is_typed_and_saved(splits, new_model, tmp_path):
    train, valid = splits
    solver = PopulationSolver(model=new_model(), lr=1e-2, max_epochs=3, patience=None, progress=False)
    solver.fit(make_loader(train, batch_size=3), make_loader(valid, batch_size=3), logdir=tmp_path)
    state = solver.training_state_
    assert isinstance(state, strfsolver.solver.TrainingState)
    assert (state.epoch, state.step, state.stop_reason) == (3, 3 * 3, "max_epochs")
    saved = checkpoint.load_checkpoint(tmp_path / checkpoint.LAST)["progress"]
    assert saved["epoch"] == 3 and saved["stop_reason"] == "max_epochs" and saved["best_epoch"] == state.best_epoch
    # another solver's state is refused by name
    with pytest.raises(ValueError, match="neuron_best_score"):
        strfsolver.solver.TrainingState().load_state_dict({"epoch": 1, "neuron_best_score": None})
