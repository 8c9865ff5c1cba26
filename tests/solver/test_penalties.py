"""Penalties add exactly their documented value to the loss."""

import pytest
import torch
from torch import nn

from strfsolver.solver import PopulationSolver, penalties


class TinyStrf(nn.Module):
    """A known (N=1, C=1, F=2, L=3) kernel and a bias."""

    def __init__(self):
        super().__init__()
        self.kernel = nn.Parameter(torch.tensor([[[[1.0, -2.0, 4.0], [0.0, 3.0, -1.0]]]]))
        self.bias = nn.Parameter(torch.tensor([5.0]))

    def strf(self):
        return self.kernel


def test_exact_values_on_a_known_kernel():
    model = TinyStrf()
    # l2: squares of the kernel only (biases are excluded by default): 1+4+16+0+9+1
    assert penalties.init("l2", weight=0.5)(model).item() == 0.5 * 31
    assert penalties.init("l2", weight=1.0, exclude=())(model).item() == 31 + 25
    assert penalties.init("l1-strf", weight=2.0)(model).item() == 2.0 * 11
    # first differences: along F (0-1, 3+2, -1-4) -> 1+25+25; along L (-3, 6, 3, -4) -> 9+36+9+16
    assert penalties.init("smooth-strf", weight=1.0)(model).item() == 51 + 70
    assert penalties.init("smooth-strf", weight=1.0, axes=("lag",))(model).item() == 70
    # second differences along L only (F has 2 rows): (4+4-... ) rows: 1-(-4)+4 = 9 -> 81; 0-6-1 = -7 -> 49
    assert penalties.init("smooth-strf", weight=1.0, order=2)(model).item() == 81 + 49
    pull = penalties.init("l2-init", weight=3.0)
    pull.setup(model)
    assert pull(model).item() == 0.0
    with torch.no_grad():
        model.kernel[0, 0, 0, 0] += 2.0
        model.bias += 1.0
    assert pull(model).item() == 3.0 * (4.0 + 1.0)


def test_selection_by_name_and_clear_refusals():
    model = TinyStrf()
    assert penalties.init("l1-strf", include=("kernel",), weight=1.0)(model).item() == 11
    assert penalties.init("l2", include=("bias",), exclude=(), weight=1.0)(model).item() == 25
    with pytest.raises(ValueError, match=r"no parameter matches include=\['conv\*'\].*\['kernel', 'bias'\]"):
        penalties.init("l2", include=("conv*",))(model)
    with pytest.raises(ValueError, match="has no strf\\(\\) method"):
        penalties.init("l1-strf")(nn.Linear(3, 2))
    with pytest.raises(ValueError, match="weight must be a finite number >= 0"):
        penalties.init("l2", weight=-1.0)
    with pytest.raises(ValueError, match="axes must be among"):
        penalties.init("smooth-strf", axes=("time",))


def test_the_step_loss_is_the_data_loss_plus_the_penalties(loaders, new_model):
    train, _ = loaders
    batch = next(iter(train))
    l2 = penalties.init("l2", weight=0.25, exclude=())
    l1 = penalties.init("l1-strf", weight=0.5)
    solver = PopulationSolver(model=new_model(), penalties=[l2, l1], progress=False)
    with torch.no_grad():
        data = solver.criterion(solver.model(batch["stims"]), batch["responses"]).item()
        weights = sum(p.square().sum() for p in solver.model.parameters()).item()
        strf = solver.model.strf().abs().sum().item()
    out = solver.step(batch)
    assert out["data_loss"] == pytest.approx(data, rel=1e-6)
    assert out["penalty"] == pytest.approx(0.25 * weights + 0.5 * strf, rel=1e-6)
    assert out["loss"] == pytest.approx(out["data_loss"] + out["penalty"], rel=1e-6)


def test_penalties_change_the_fit(loaders, new_model):
    def fitted(weight):
        solver = PopulationSolver(model=new_model(), lr=1e-2, max_epochs=5, patience=None, progress=False, penalties=[penalties.init("l1-strf", weight=weight)])
        history = solver.fit(*loaders).log
        return solver.model.strf().abs().sum().item(), history

    free, free_history = fitted(0.0)
    sparse, history = fitted(1e-2)
    assert sparse < 0.8 * free
    assert "train_penalty" in history[0] and history[0]["train_penalty"] > 0
    assert free_history[0]["train_penalty"] == 0.0
