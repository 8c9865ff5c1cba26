"""Divergence stops training, keeps the best state and says where it happened."""

import math
import pickle

import pytest
import torch

import strfsolver
from strfsolver.solver import PopulationSolver, TrainingDivergedError


class NaNAfter:
    """The MSE loss, until call ``n`` (counted from 0) where it returns ``value``."""

    def __init__(self, n, value=float("nan")):
        self.n, self.value, self.calls = n, value, 0
        self.mse = strfsolver.losses.init("mse")

    def __call__(self, pred, responses):
        loss = self.mse(pred, responses)
        self.calls += 1
        if self.calls - 1 == self.n:
            return loss * self.value
        return loss


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_divergence_raises_and_keeps_the_best_state(loaders, new_model, value):
    train, valid = loaders  # 7 training stimuli in batches of 3: 3 steps, 1 validation batch per epoch
    # calls per epoch: 3 steps then 1 validation; call 9 is the 2nd step of epoch 2 (global step 7)
    solver = PopulationSolver(model=new_model(), criterion=NaNAfter(9, value), lr=1e-2, patience=None, progress=False, monitor="val_loss", mode="min")
    states = []
    solver.loggers.append(lambda row: states.append({k: v.clone() for k, v in solver.model.state_dict().items()}))
    with pytest.raises(TrainingDivergedError) as info:
        solver.fit(train, valid, max_epochs=5)
    error = info.value
    assert isinstance(error, RuntimeError)
    assert (error.epoch, error.step, error.step_in_epoch) == (2, 7, 1)
    assert "epoch 2, step 7" in str(error)
    assert math.isnan(error.loss) if math.isnan(value) else error.loss == math.inf
    assert len(solver.log) == 2
    best = min(range(2), key=lambda e: solver.log[e]["val_loss"])
    assert error.best_epoch == best and f"epoch {best}" in str(error)
    for name, tensor in solver.model.state_dict().items():
        assert torch.equal(tensor, states[best][name])
        assert torch.isfinite(tensor).all()
    # the error survives pickling with its fields (e.g. from a worker process)
    again = pickle.loads(pickle.dumps(error))
    assert (again.epoch, again.step, again.best_epoch) == (2, 7, best)


def test_divergence_before_any_evaluation_restores_the_initial_state(loaders, new_model):
    solver = PopulationSolver(model=new_model(), criterion=NaNAfter(1), lr=1e-2, progress=False)
    initial = {k: v.clone() for k, v in solver.model.named_parameters()}
    with pytest.raises(TrainingDivergedError, match="epoch 0, step 1 .*the initial state was restored"):
        solver.fit(*loaders, max_epochs=3)
    # the parameters are back at their start (the stimulus standardization the fit set is kept)
    for name, tensor in solver.model.named_parameters():
        assert torch.equal(tensor, initial[name])


def test_bad_inputs_fail_early(new_model):
    with pytest.raises(ValueError, match="model must be a torch.nn.Module"):
        PopulationSolver(model="linear")
    with pytest.raises(ValueError, match="Unknown name 'mae'"):
        PopulationSolver(model=new_model(), criterion="mae")
    with pytest.raises(ValueError, match="grad_clip must be a number > 0"):
        PopulationSolver(model=new_model(), grad_clip=0)
    with pytest.raises(ValueError, match=r"penalties\[0\] must be a Penalty"):
        PopulationSolver(model=new_model(), penalties=[3.0])
