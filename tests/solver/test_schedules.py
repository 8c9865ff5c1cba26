"""Schedules set the learning rate (or any named hyperparameter) as specified."""

import pytest
import torch

from strfsolver.solver import PopulationSolver, penalties, schedules


def test_schedule_values():
    assert [schedules.init("constant", value=0.3)(t) for t in (0, 7)] == [0.3, 0.3]
    linear = schedules.init("linear-ramp", start=1.0, end=0.0, duration=4)
    assert [linear(t) for t in range(6)] == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    stepwise = schedules.init("milestones", values=(3.0, 2.0, 1.0), milestones=(2, 5))
    assert [stepwise(t) for t in range(7)] == [3.0, 3.0, 2.0, 2.0, 2.0, 1.0, 1.0]
    exponential = schedules.init("exponential-rate", start=2.0, gamma=0.5)
    assert [exponential(t) for t in range(4)] == [2.0, 1.0, 0.5, 0.25]
    step_exp = schedules.init("step-exponential", start=1.0, gamma=0.1, step_size=3)
    assert [step_exp(t) for t in range(7)] == [1.0, 1.0, 1.0, 0.1, 0.1, 0.1, pytest.approx(0.01, rel=1e-15)]
    assert schedules.get_options() == [
        "constant", "exponential", "exponential-half", "exponential-rate", "linear", "linear-ramp", "linear-second-half",
        "milestones", "start-stop-exponential", "start-stop-exponential-second-half", "step-exponential", "steponential",
        "stepwise", "stepwise-2ndhalf", "stepwise-half",
    ]


def test_bad_schedules_are_refused():
    with pytest.raises(ValueError, match="len\\(values\\) == len\\(milestones\\) \\+ 1"):
        schedules.init("milestones", values=(1.0, 2.0), milestones=(1, 2))
    with pytest.raises(ValueError, match="strictly increasing"):
        schedules.init("milestones", values=(1.0, 2.0, 3.0), milestones=(4, 4))
    with pytest.raises(ValueError, match="duration must be an integer >= 1"):
        schedules.init("linear-ramp", duration=0)
    with pytest.raises(ValueError, match="gamma must be > 0"):
        schedules.init("exponential-rate", gamma=0.0)
    with pytest.raises(ValueError, match="unit must be one of"):
        schedules.init("constant", unit="batch")
    with pytest.raises(ValueError, match="t must be an integer >= 0"):
        schedules.init("constant")(-1)


def test_epoch_schedule_sets_the_learning_rate_of_every_epoch(loaders, new_model):
    schedule = schedules.init("milestones", values=(1e-2, 5e-3, 1e-3), milestones=(2, 4))
    solver = PopulationSolver(model=new_model(), schedule=schedule, max_epochs=6, patience=None, progress=False)
    history = solver.fit(*loaders).log
    assert [row["lr"] for row in history] == [1e-2, 1e-2, 5e-3, 5e-3, 1e-3, 1e-3]
    assert all(group["lr"] == 1e-3 for group in solver.optimizer.param_groups)


def test_step_schedule_follows_the_global_step(loaders, new_model):
    # 3 steps per epoch; the recorded lr is the one of each epoch's last step
    schedule = schedules.init("linear-ramp", start=0.0, end=1e-2, duration=5, unit="step")
    solver = PopulationSolver(model=new_model(), schedule=schedule, max_epochs=3, patience=None, progress=False)
    seen = []
    original = solver.step

    def spy(batch):
        seen.append(solver.optimizer.param_groups[0]["lr"])
        return original(batch)

    solver.step = spy
    history = solver.fit(*loaders).log
    assert seen == pytest.approx([0.0, 2e-3, 4e-3, 6e-3, 8e-3, 1e-2, 1e-2, 1e-2, 1e-2], rel=1e-12)
    assert [row["lr"] for row in history] == pytest.approx([4e-3, 1e-2, 1e-2], rel=1e-12)


def test_a_zero_learning_rate_leaves_the_parameters_alone(loaders, new_model):
    solver = PopulationSolver(model=new_model(), schedule=schedules.init("constant", value=0.0), max_epochs=2, progress=False)
    before = {k: v.detach().clone() for k, v in solver.model.named_parameters()}
    solver.fit(*loaders)
    for name, value in solver.model.named_parameters():
        assert torch.equal(value, before[name])


def test_schedules_for_a_penalty_weight_and_a_solver_attribute(loaders, new_model):
    smooth = penalties.init("smooth-strf", weight=0.0)
    plan = [
        schedules.init("linear-ramp", start=0.0, end=1.0, duration=2, target="smooth-strf"),
        schedules.init("exponential-rate", start=8.0, gamma=0.5, target="grad_clip"),
        schedules.init("constant", value=0.0, target="weight_decay"),
    ]
    solver = PopulationSolver(model=new_model(), penalties=[smooth], schedule=plan, max_epochs=3, patience=None, progress=False)
    seen = []
    solver.loggers.append(lambda row: seen.append((smooth.weight, solver.grad_clip, solver.optimizer.param_groups[0]["weight_decay"])))
    solver.fit(*loaders)
    assert seen == [(0.0, 8.0, 0.0), (0.5, 4.0, 0.0), (1.0, 2.0, 0.0)]


def test_unknown_targets_are_refused_before_training(loaders, new_model):
    solver = PopulationSolver(model=new_model(), schedule=schedules.init("constant", target="learning_rate"), progress=False)
    with pytest.raises(ValueError, match="schedule target 'learning_rate' is neither.*'lr'"):
        solver.fit(*loaders)
    assert solver.log == []
    solver = PopulationSolver(model=new_model(), schedule="linear", progress=False)
    with pytest.raises(ValueError, match="must be a strfsolver.solver.schedules.Schedule"):
        solver.fit(*loaders)


def test_torch_lr_schedulers_are_accepted(loaders, new_model):
    model = new_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    solver = PopulationSolver(model=model, optimizer=optimizer, schedule=scheduler, max_epochs=5, patience=None, progress=False)
    history = solver.fit(*loaders).log
    assert [row["lr"] for row in history] == [0.1, 0.1, 0.05, 0.05, 0.025]
    # a scheduler of another optimizer is a mistake, said before training
    foreign = torch.optim.lr_scheduler.StepLR(torch.optim.SGD(new_model().parameters(), lr=0.1), step_size=1)
    with pytest.raises(ValueError, match="of another optimizer"):
        PopulationSolver(model=model, optimizer=optimizer, schedule=foreign, progress=False).fit(*loaders)


def test_reduce_on_plateau_gets_the_monitored_value(loaders, new_model):
    model = new_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", patience=0, factor=0.5)

    class Flat(PopulationSolver):
        def validation(self, loader):
            n = self.model.n_neurons
            return {"loss": 1.0, "cc": torch.zeros(n, dtype=torch.float64), "cc_norm": torch.zeros(n, dtype=torch.float64)}

    solver = Flat(model=model, optimizer=optimizer, schedule=plateau, max_epochs=3, patience=None, progress=False)
    history = solver.fit(*loaders).log
    # epoch 0 sets the plateau's best; epoch 1 does not beat it, so epoch 2 runs at half the rate
    assert [row["lr"] for row in history] == [0.1, 0.1, 0.05]
