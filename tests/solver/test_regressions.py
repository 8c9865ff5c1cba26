"""Bugs of the first solver core, each reproduced as it was found (issue: solver-core redesign)."""

import random

import numpy as np
import pytest
import torch
from torch import nn

import strfsolver
from strfsolver.data import NeuralDataset, make_loader, synthetic_population
from strfsolver.solver import checkpoint, schedules


def _data(seed=1, n_neurons=4):
    pop = synthetic_population(n_neurons=n_neurons, n_stims=8, n_repeats=4, n_freqs=6, n_lags=4, n_times=60, seed=seed)
    return pop.dataset.split([0.5, 0.5], seed=0)


def _linear(n_neurons=4, seed=0):
    torch.manual_seed(seed)
    return strfsolver.models.init("linear", n_freqs=6, n_lags=4, n_neurons=n_neurons)


def _missing(dataset, stimulus, neuron):
    responses = [r.clone() for r in dataset.responses]
    responses[stimulus][neuron] = float("nan")
    return NeuralDataset(dataset.stims, responses, dataset.dt_ms)


# 1. a neuron missing from one validation batch
@pytest.mark.parametrize("name", ["single-cell", "per-cell-best"])
def test_a_neuron_missing_from_one_validation_stimulus_is_scored_on_the_others(name):
    train, valid = _data()
    valid = _missing(valid, stimulus=0, neuron=3)
    model = _linear()
    start = model.readout.kernel.weight.detach().clone()
    solver = strfsolver.solver.init(name, model=model, lr=3e-2, max_epochs=6, patience=3, monitor="val_loss", mode="min", progress=False)
    one, three = solver.validation(make_loader(valid, batch_size=1)), solver.validation(make_loader(valid, batch_size=3))
    assert torch.isfinite(one["neuron_loss"]).all()
    # the same for any batching, and neuron 3's value is its loss on the stimuli it was recorded in
    torch.testing.assert_close(one["neuron_loss"], three["neuron_loss"], rtol=1e-6, atol=1e-9)
    others = solver.validation(make_loader(valid.subset([1, 2, 3]), batch_size=2))
    assert float(one["neuron_loss"][3]) == pytest.approx(float(others["neuron_loss"][3]), rel=1e-6)

    solver.fit(make_loader(train, batch_size=2, shuffle=True), make_loader(valid, batch_size=1))
    assert int(solver.best_epochs_[3]) > 0  # trained, not frozen at its first evaluation
    fitted = solver.population_model if name == "single-cell" else solver.model
    assert not torch.equal(fitted.readout.kernel.weight[3], start[3])


# 2. per-neuron gradient clipping with a shared scalar parameter
class GainLinear(strfsolver.models.LinearModel):
    """A linear model with one gain shared by every neuron (a 0-d parameter)."""

    def __init__(self, n_freqs, n_lags, n_neurons):
        super().__init__(n_freqs, n_lags, n_neurons)
        self.gain = nn.Parameter(torch.tensor(1.0))

    def forward(self, stims):
        return self.gain * super().forward(stims)


def test_single_cell_clips_each_neuron_with_a_shared_scalar_parameter():
    train, valid = _data()
    torch.manual_seed(0)
    # plain SGD with lr 1: a step moves each neuron by exactly its clipped gradient
    sgd = lambda params: torch.optim.SGD(params, lr=1.0)  # noqa: E731
    solver = strfsolver.solver.init("single-cell", model=GainLinear(6, 4, 4), optimizer=sgd, max_epochs=2, grad_clip=1e-3, progress=False)
    solver.fit(make_loader(train, batch_size=2), make_loader(valid, batch_size=2))
    gains = solver.model.gain
    assert gains.shape == (4,) and torch.isfinite(gains).all()
    # each neuron's whole update (its gain included) was clipped to norm 1e-3 per step: 2 epochs x 2 steps
    moved = (gains.detach() - 1.0).abs()
    assert (moved <= 4 * 1e-3 * 1.0001).all() and (moved > 0).any()


# 3. resuming a per-neuron solver on CUDA
@pytest.mark.cuda
@pytest.mark.parametrize("name", ["single-cell", "per-cell-best", "population"])
def test_resume_on_cuda_is_exact(name, tmp_path):
    train, valid = _data()

    def run(max_epochs, logdir, resume=False, seed=0):
        solver = strfsolver.solver.init(name, model=_linear(seed=seed), lr=3e-2, patience=1, device="cuda", progress=False)
        loaders = make_loader(train, batch_size=2, shuffle=True, seed=2, device="cuda"), make_loader(valid, batch_size=2, device="cuda")
        solver.fit(*loaders, max_epochs=max_epochs, logdir=logdir, resume=resume)
        return solver

    full = run(8, tmp_path / "full")
    run(3, tmp_path / "cut")
    resumed = run(8, tmp_path / "cut", resume=True, seed=5)
    for key, value in full.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=1e-5, atol=1e-6)
    assert [r["epoch"] for r in resumed.log] == [r["epoch"] for r in full.log]


# 4. stateful models
def test_a_stateful_model_starts_every_batch_from_a_fresh_state():
    pop = synthetic_population(n_neurons=3, n_stims=9, n_repeats=2, n_freqs=6, n_lags=4, n_times=40, seed=2)
    train, valid = pop.dataset.split([7 / 9, 2 / 9], seed=0)
    torch.manual_seed(0)
    model = strfsolver.models.init("statenet", n_freqs=6, n_lags=4, n_neurons=3, hidden_size=8, front_channels=4, stateful=True)
    solver = strfsolver.solver.init("population", model=model, lr=1e-2, max_epochs=2, progress=False)
    # 7 stimuli in batches of 3, shuffled: the last batch has one stimulus
    solver.fit(make_loader(train, batch_size=3, shuffle=True), make_loader(valid, batch_size=2))
    stim = valid.stims[0][None]
    first, again = solver.transform(stim), solver.transform(stim)
    torch.testing.assert_close(first, again)  # no state leaks from one call into the next
    model.reset_state()
    with torch.no_grad():
        model.eval()
        torch.testing.assert_close(first, model(stim))


# 5. the estimator leaves the global random streams alone
def test_estimator_fit_leaves_global_random_state_alone():
    train, _ = _data()
    X = [s.T.numpy() for s in train.stims]
    y = [r.permute(1, 2, 0).numpy() for r in train.responses]
    random.seed(11), np.random.seed(11), torch.manual_seed(11)
    expected = (random.random(), np.random.rand(), torch.rand(1))
    random.seed(11), np.random.seed(11), torch.manual_seed(11)
    strfsolver.STRFEstimator(model="linear", n_lags=4, max_epochs=2, random_state=3, progress=0).fit(X, y)
    assert (random.random(), np.random.rand()) == expected[:2]
    assert torch.equal(torch.rand(1), expected[2])


# 6. float64 models, CUDA left alone, plateau schedulers per step
def test_a_float64_model_trains_with_penalties_and_predicts_in_float64():
    train, valid = _data()
    model = _linear().double()
    solver = strfsolver.solver.init("population", model=model, lr=1e-2, max_epochs=2, penalties=["smooth-strf"], progress=False)
    stims = lambda d: NeuralDataset([s.double() for s in d.stims], d.responses, d.dt_ms)  # noqa: E731
    solver.fit(make_loader(stims(train), batch_size=2), make_loader(stims(valid), batch_size=2))
    out = solver.transform(valid.stims[:2])
    assert all(o.dtype == torch.float64 for o in out)


def test_state_dict_does_not_initialise_cuda():
    solver = strfsolver.solver.init("population", model=_linear(), progress=False)
    was = torch.cuda.is_initialized()
    state = solver.state_dict()
    assert torch.cuda.is_initialized() == was
    assert "cuda" not in state["rng"] or was


def test_a_plateau_scheduler_per_step_is_refused_up_front():
    solver = strfsolver.solver.init("population", model=_linear(), progress=False)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(solver.ensure_optimizer())
    with pytest.raises(ValueError, match="ReduceLROnPlateau needs the monitored value.*unit='step'"):
        schedules.TorchScheduler(plateau, unit="step")


def test_single_cell_resumes_exactly_with_frozen_neurons(tmp_path):
    train, valid = _data(n_neurons=6, seed=4)

    def run(max_epochs, logdir, resume=False, seed=0):
        solver = strfsolver.solver.init("single-cell", model=_linear(6, seed=seed), lr=3e-2, patience=1, progress=False)
        solver.fit(make_loader(train, batch_size=2, shuffle=True, seed=2), make_loader(valid, batch_size=2),
                   max_epochs=max_epochs, logdir=logdir, resume=resume)
        return solver

    full = run(12, tmp_path / "full")
    cut = run(4, tmp_path / "cut")
    frozen = cut.training_state_.neuron_stopped_epoch >= 0
    assert frozen.any() and not frozen.all()  # the interruption comes with some neurons frozen
    resumed = run(12, tmp_path / "cut", resume=True, seed=9)
    for key, value in full.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    assert torch.equal(resumed.stopped_epochs_, full.stopped_epochs_)
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in resumed.log] == [
        {k: v for k, v in r.items() if k != "seconds"} for r in full.log
    ]
