"""Start-to-stop exponential and *-second-half schedules, per-parameter-group and model-attribute targets."""

import pytest
import torch
from torch import nn

from strfsolver.solver import PopulationSolver, schedules


def test_start_stop_exponential_and_half_variants():
    path = schedules.init("start-stop-exponential", start=1e-2, stop=1e-4, duration=4)
    assert [path(t) for t in range(6)] == pytest.approx([1e-2, 10 ** -2.5, 1e-3, 10 ** -3.5, 1e-4, 1e-4])
    half = schedules.init("start-stop-exponential-second-half", start=1e-2, stop=1e-4, duration=4)
    assert [half(t) for t in range(6)] == pytest.approx([1e-2, 1e-2, 1e-2, 1e-3, 1e-4, 1e-4])
    linear = schedules.init("linear-second-half", start=1.0, end=0.0, duration=4)
    assert [linear(t) for t in range(6)] == pytest.approx([1.0, 1.0, 1.0, 0.5, 0.0, 0.0])
    with pytest.raises(ValueError, match="stop"):
        schedules.init("start-stop-exponential", start=1.0, stop=0.0)
    with pytest.warns(DeprecationWarning, match="linear-half"):  # the old spelling still builds the same schedule
        old = schedules.init("linear-half", start=1.0, end=0.0, duration=4)
    assert [old(t) for t in range(6)] == [linear(t) for t in range(6)]


class Adapting(nn.Module):
    """A linear model with a core and a readout, and a time constant that is not trained."""

    def __init__(self, n_freqs, n_neurons):
        super().__init__()
        self.core = nn.Conv1d(n_freqs, 4, 3, padding=2)
        self.readout = nn.Conv1d(4, n_neurons, 1)
        self.register_buffer("tau", torch.tensor(1.0))

    def forward(self, stims):
        hidden = self.core(stims)[..., : stims.shape[-1]] * self.tau
        return self.readout(hidden)[:, :, None]


def test_a_parameter_group_schedule_changes_only_its_group_and_model_attributes_follow(loaders, splits):
    train, valid = loaders
    n_freqs, n_neurons = splits[0].n_freqs, splits[0].n_neurons
    model = Adapting(n_freqs, n_neurons)
    seen = []

    def optimizer(params):
        return torch.optim.SGD(
            [{"params": model.core.parameters(), "name": "core"}, {"params": model.readout.parameters(), "name": "readout"}], lr=1e-3
        )

    class Record(PopulationSolver):
        def on_epoch_end(self, epoch):
            seen.append(([g["lr"] for g in self.optimizer.param_groups], float(self.model.tau)))

    solver = Record(
        model=model,
        optimizer=optimizer,
        patience=None,
        progress=False,
        schedule=[
            schedules.init("start-stop-exponential", start=1e-1, stop=1e-3, duration=2, target="lr@readout"),
            schedules.init("linear-ramp", start=1.0, end=0.5, duration=2, target="model.tau"),
        ],
    )
    solver.fit(train, valid, max_epochs=3)
    assert [lrs for lrs, _ in seen] == [pytest.approx([1e-3, 1e-1]), pytest.approx([1e-3, 1e-2]), pytest.approx([1e-3, 1e-3])]
    assert [tau for _, tau in seen] == pytest.approx([1.0, 0.75, 0.5])
    with pytest.raises(ValueError, match="no parameter group named 'head'"):
        Record(model=model, optimizer=optimizer, schedule=schedules.init("constant", target="lr@head")).fit(train, valid, max_epochs=1)
    with pytest.raises(ValueError, match="has no attribute 'leak'"):
        Record(model=model, optimizer=optimizer, schedule=schedules.init("constant", target="model.leak")).fit(train, valid, max_epochs=1)
