"""Penalties on the predictions (flyvis's activity penalty) and the epoch's prediction statistics."""

import math

import pytest
import torch

from solver_helpers import make_linear
from strfsolver.data import make_loader, synthetic_population
from strfsolver.solver import PopulationSolver, penalties, schedules
from strfsolver.solver.penalties import StepPredictions


def _known_predictions(step=0):
    # neuron 0: every bin recorded; neuron 1: its last bin unrecorded (NaN in both repeats)
    pred = torch.tensor([[[[10.0, 2.0, 4.0, 6.0]], [[0.0, 8.0, 9.0, 100.0]]]], requires_grad=True)
    responses = torch.zeros(1, 2, 2, 4)
    responses[0, 1, :, 3] = math.nan
    return StepPredictions(pred, responses, step)


def test_activity_value_on_known_predictions():
    activity = penalties.init("activity", baseline=5.0, weight=0.1, below_weight=1.0, above_weight=0.1, transient=0.25)
    seen = _known_predictions()
    # neuron 0 skips floor(0.25 * 4) = 1 bin: mean(2, 4, 6) = 4, one below -> (1.0 * 1) ** 2
    # neuron 1 has 3 recorded bins, skips floor(0.75) = 0: mean(0, 8, 9) = 17 / 3, above -> (0.1 * 2 / 3) ** 2
    expected = 0.1 * (1.0 + (0.1 * 2 / 3) ** 2) / 2
    value = activity(torch.nn.Linear(1, 1), seen)
    assert value.item() == pytest.approx(expected, rel=1e-6)
    value.backward()
    # the gradient pulls neuron 0 up (below the baseline), and never reaches the transient or unrecorded bins
    assert seen.pred.grad[0, 0, 0, 0] == 0 and seen.pred.grad[0, 0, 0, 1] < 0 and seen.pred.grad[0, 1, 0, 3] == 0
    # off from its stop iteration on
    stopping = penalties.init("activity", baseline=5.0, stop_iter=3)
    assert stopping(torch.nn.Linear(1, 1), _known_predictions(step=2)).item() > 0
    assert stopping(torch.nn.Linear(1, 1), _known_predictions(step=3)).item() == 0


def test_activity_refusals_and_model_only_penalties_unchanged():
    with pytest.raises(ValueError, match="penalizes predictions: call it as penalty\\(model, StepPredictions"):
        penalties.init("activity", baseline=0.0)(torch.nn.Linear(1, 1))
    with pytest.raises(ValueError, match="above_weight must be a number >= 0"):
        penalties.init("activity", baseline=0.0, above_weight=-1)
    with pytest.raises(ValueError, match="transient must be a number in \\[0, 1\\)"):
        penalties.init("activity", baseline=0.0, transient=1.0)
    with pytest.raises(ValueError, match="stop_iter must be an integer >= 0"):
        penalties.init("activity", baseline=0.0, stop_iter=-2)
    assert not penalties.init("l2").sees_predictions and penalties.init("activity", baseline=1.0).sees_predictions


def _mean_prediction(solver, dataset):
    return torch.cat([p.flatten() for p in solver.transform(dataset.stims)]).mean().item()


def test_activity_penalty_brings_an_over_active_model_to_its_baseline(loaders, new_model, splits):
    train_split, _ = splits

    def fitted(*extra):
        model = new_model()
        with torch.no_grad():
            model.bias.fill_(3.0)  # over-active: far above the responses' mean
        solver = PopulationSolver(model=model, lr=5e-2, max_epochs=8, patience=None, progress=False, standardize=False,
                                  penalties=list(extra))
        solver.fit(*loaders)
        return solver

    free = fitted()
    held = fitted(penalties.init("activity", baseline=-1.0, weight=50.0, above_weight=1.0, transient=0.0))
    free_mean, held_mean = _mean_prediction(free, train_split), _mean_prediction(held, train_split)
    # the data alone leave the mean near 1; the penalty pulls it most of the way to -1
    assert free_mean > 0.5, free_mean
    assert held_mean < free_mean - 1.5 and abs(held_mean + 1.0) < 0.5, (free_mean, held_mean)
    assert held.log[0]["train_penalty"] > 0
    # both weights and the baseline are schedule targets: the name sets the weight, "<name>.<field>" another field
    off = PopulationSolver(model=new_model(), lr=2e-2, max_epochs=2, patience=None, progress=False,
                           penalties=[penalties.init("activity", baseline=-1.0)],
                           schedule=[schedules.init("constant", value=0.0, target="activity"),
                                     schedules.init("constant", value=7.0, target="activity.baseline")])
    off.fit(*loaders)
    assert off.penalties[0].weight == 0.0 and off.penalties[0].baseline == 7.0
    assert all(row["train_penalty"] == 0.0 for row in off.log)
    with pytest.raises(ValueError, match="penalty 'activity' has no numeric field 'baseline_'; its numeric fields are"):
        PopulationSolver(model=new_model(), progress=False, penalties=[penalties.init("activity", baseline=0.0)],
                         schedule=[schedules.init("constant", value=1.0, target="activity.baseline_")]).fit(*loaders)


def test_logged_prediction_statistics_are_those_of_the_epochs_training_predictions():
    # stimuli of several lengths: padded batches, whose padding must not count
    population = synthetic_population(n_neurons=3, n_stims=7, n_repeats=2, n_freqs=5, n_lags=4, n_times=(30, 70), seed=11)
    seen = []

    class Recording(PopulationSolver):
        def step(self, batch):
            batch = self.prepare(batch)
            with torch.no_grad():  # the prediction the step is about to make, from the same parameters
                pred = self._inference(batch)
            recorded = batch["responses"].isfinite().any(dim=2, keepdim=True).expand_as(pred)
            seen.append((self.training_state_.epoch, pred[recorded], pred.flatten()))
            return super().step(batch)

    solver = Recording(model=make_linear(5, 4, 3), lr=1e-2, max_epochs=3, patience=None, progress=False, monitor="train_loss")
    solver.fit(make_loader(population.dataset, batch_size=3, shuffle=True, seed=2))
    assert len(solver.log) == 3
    for row in solver.log:
        values = torch.cat([v for epoch, v, _ in seen if epoch == row["epoch"]])
        assert row["pred_mean"] == pytest.approx(values.double().mean().item(), rel=1e-6, abs=1e-9)
        assert row["pred_min"] == values.min().item() and row["pred_max"] == values.max().item()
        # the padding (zero stimuli) is out: the padded tensors' mean is another number
        padded = torch.cat([full for epoch, _, full in seen if epoch == row["epoch"]])
        assert abs(padded.double().mean().item() - row["pred_mean"]) > 1e-3
