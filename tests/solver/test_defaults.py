"""Defaults that fit well (issue: defaults that fit): no learning-rate sweep, any stimulus scale."""

import pytest
import torch

import strfsolver
from strfsolver.data import NeuralDataset, make_loader, synthetic_population


@pytest.fixture(scope="module")
def long_stimuli():
    # 7 training stimuli of 1,500 bins and a single validation stimulus, as recordings often come
    pop = synthetic_population(n_neurons=12, n_stims=9, n_repeats=10, n_freqs=16, n_lags=10, n_times=1500, seed=11)
    train, valid, test = pop.dataset.subset(range(7)), pop.dataset.subset([7]), pop.dataset.subset([8])
    return pop, train, valid, test


def _default_ln_fit(train, valid, transform=None):
    transform = transform or (lambda s: s)
    changed = [NeuralDataset([transform(s) for s in d.stims], d.responses, d.dt_ms) for d in (train, valid)]
    torch.manual_seed(0)
    model = strfsolver.models.init("ln", n_freqs=16, n_lags=10, n_neurons=12)
    solver = strfsolver.solver.init("population", model=model, progress=False)  # every default
    solver.fit(make_loader(changed[0], shuffle=True), make_loader(changed[1]))
    return solver


def test_an_ln_fit_with_every_default_reaches_the_truth(long_stimuli):
    pop, train, valid, test = long_stimuli
    solver = _default_ln_fit(train, valid)
    fitted = solver.validation(make_loader(test))["cc_norm"].median()
    truth = pop.truth_cc_norm(test).median()
    assert float(fitted) >= 0.97 * float(truth), (float(fitted), float(truth), len(solver.log))


@pytest.mark.parametrize("name, transform", [("x1000", lambda s: s * 1000), ("+50", lambda s: s + 50)])
def test_the_stimulus_scale_does_not_change_the_default_fit(long_stimuli, name, transform):
    pop, train, valid, test = long_stimuli
    plain, changed = _default_ln_fit(train, valid), _default_ln_fit(train, valid, transform)
    test_changed = NeuralDataset([transform(s) for s in test.stims], test.responses, test.dt_ms)
    a = plain.validation(make_loader(test))["cc_norm"].median()
    b = changed.validation(make_loader(test_changed))["cc_norm"].median()
    assert abs(float(a) - float(b)) < 0.01


def test_standardization_comes_from_training_stimuli_and_travels_with_the_model(long_stimuli, tmp_path):
    pop, train, valid, test = long_stimuli
    solver = _default_ln_fit(train, valid, lambda s: 3 * s + 7)
    model = solver.model
    stims = torch.cat([3 * s + 7 for s in train.stims], dim=1).double()  # (F, all training bins)
    torch.testing.assert_close(model.standardize.mean[0].double(), stims.mean(1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model.standardize.scale[0].double(), stims.std(1), rtol=1e-4, atol=1e-6)
    assert bool(model.standardize.fitted)
    model.save_pretrained(tmp_path / "ln")
    loaded = strfsolver.models.from_pretrained(tmp_path / "ln")
    torch.testing.assert_close(loaded.standardize.mean, model.standardize.mean)
    stim = (3 * test.stims[0] + 7)[None]
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(stim), solver.transform(stim))
    # a solver that does not standardize leaves the model's first stage the identity
    raw = strfsolver.models.init("linear", n_freqs=16, n_lags=10, n_neurons=12)
    strfsolver.solver.init("population", model=raw, standardize=False, max_epochs=1, progress=False).fit(make_loader(train), make_loader(valid))
    assert not bool(raw.standardize.fitted) and torch.equal(raw.standardize.scale, torch.ones_like(raw.standardize.scale))


class Scripted(strfsolver.solver.PopulationSolver):
    """Validation scores follow a script, so the plateau and the stop are checked exactly."""

    scores = (0.1, 0.5, 0.4, 0.45, 0.3, 0.2, 0.1)

    def validation(self, loader):
        self._calls = getattr(self, "_calls", 0) + 1
        n = self.model.n_neurons
        score = self.scores[self._calls - 1]
        return {"loss": -score, "cc": torch.full((n,), score, dtype=torch.float64), "cc_norm": torch.full((n,), score, dtype=torch.float64)}


def test_a_plateau_lowers_the_learning_rate_before_early_stopping_ends_the_fit(long_stimuli):
    pop, train, valid, test = long_stimuli
    model = strfsolver.models.init("linear", n_freqs=16, n_lags=10, n_neurons=12)
    solver = Scripted(model=model, lr=1e-2, patience=4, progress=False)  # plateau after patience // 2 = 2
    log = solver.fit(make_loader(train), make_loader(valid)).log
    # best at epoch 1; epochs 2, 3 do not improve: the rate halves for epoch 4; epochs 4, 5 neither: halves again, stop
    assert [row["lr"] for row in log] == pytest.approx([1e-2, 1e-2, 1e-2, 1e-2, 5e-3, 5e-3])
    assert log[-1]["stop_reason"] == "patience" and solver.stop_reason_ == "patience"
    assert all("stop_reason" not in row for row in log[:-1])


def _small(seed=3, n_stims=8, n_times=60, signed=False):
    pop = synthetic_population(n_neurons=4, n_stims=n_stims, n_repeats=3, n_freqs=6, n_lags=4, n_times=n_times, seed=seed)
    dataset = pop.dataset
    if signed:  # responses that go below zero, as an LFP or z-scored data
        dataset = NeuralDataset(dataset.stims, [r - r.nanmean() for r in dataset.responses], dataset.dt_ms)
    return dataset.split([0.75, 0.25], seed=0)


def test_the_experiment_chooses_the_model_and_batch_size_from_the_data():
    from strfsolver.workflow.experiment import ExperimentSpec, build_experiment

    train, valid = _small()
    counts = build_experiment(ExperimentSpec(model_options={"n_lags": 4}), train, valid)
    assert (counts.model_name, counts.solver_name, counts.batch_size) == ("ln", "population", 1)
    signed_train, signed_valid = _small(signed=True)
    signed = build_experiment(ExperimentSpec(model_options={"n_lags": 4}), signed_train, signed_valid)
    assert (signed.model_name, signed.solver_name) == ("linear", "ridge")


@pytest.mark.parametrize(
    "options, data, message",
    [
        (dict(model="ln"), dict(signed=True), "the responses go below zero, and model 'ln' only predicts values >= 0"),
        (dict(model="ln", model_options={"n_lags": 80}), dict(), "n_lags=80 is longer than every training stimulus"),
        (dict(model="ln", batch_size=8), dict(), "batch_size=8 holds all 6 training stimuli: one gradient step per epoch"),
    ],
)
def test_a_fit_that_cannot_go_well_says_so(options, data, message):
    from strfsolver.workflow.experiment import ExperimentSpec, build_experiment

    train, valid = _small(**data)
    spec = ExperimentSpec(**{"model_options": {"n_lags": 4}, **options})
    with pytest.warns(UserWarning, match=message):
        build_experiment(spec, train, valid)


def test_the_estimator_fits_signed_responses_with_a_linear_model_in_closed_form():
    import numpy as np

    train, valid = _small(signed=True, n_times=80)
    X = [s.T.numpy() for s in train.stims]
    y = [r.permute(1, 2, 0).numpy() for r in train.responses]
    estimator = strfsolver.STRFEstimator(n_lags=4, random_state=0).fit(X, y)
    assert estimator.model_name_ == "linear" and estimator.stop_reason_ == "closed form"
    assert estimator.alphas_.shape == (4,) and np.isfinite(estimator.scores_["cc"]).all()


def test_the_default_learning_rate_comes_from_the_model():
    from strfsolver.solver.base import DEFAULT_LR

    linear = strfsolver.models.init("linear", n_freqs=6, n_lags=4, n_neurons=4)
    nrf = strfsolver.models.init("nrf", n_freqs=6, n_lags=4, n_neurons=4)
    assert strfsolver.solver.init("population", model=linear).lr_ == DEFAULT_LR == linear.default_lr
    population = strfsolver.solver.init("population", model=nrf)
    assert population.lr_ == nrf.default_lr == 1e-2 and population.optimizer is None
    assert population.ensure_optimizer().param_groups[0]["lr"] == 1e-2
    assert strfsolver.solver.init("single-cell", model=nrf).lr_ == 1e-2
    assert strfsolver.solver.init("population", model=nrf, lr=1e-3).lr_ == 1e-3  # a given rate wins
    train, valid = _small()
    log = strfsolver.solver.init("population", model=nrf, max_epochs=2, progress=False).fit(make_loader(train), make_loader(valid)).log
    assert log[0]["lr"] == 1e-2


def test_the_validation_share_follows_the_number_of_stimuli():
    from strfsolver.workflow.experiment import choose_valid_count

    assert [choose_valid_count(n) for n in (1, 2, 3, 5, 8, 20, 49, 51, 200)] == [0, 1, 1, 1, 2, 4, 10, 10, 10]


class Peaked(strfsolver.solver.PopulationSolver):
    """Validation peaks at the first epoch and falls after it: a step too large."""

    def validation(self, loader):
        self._calls = getattr(self, "_calls", 0) + 1
        n = self.model.n_neurons
        score = 0.5 if self._calls == 1 else 0.3
        return {"loss": -score, "cc": torch.full((n,), score, dtype=torch.float64), "cc_norm": torch.full((n,), score, dtype=torch.float64)}


def test_a_fit_that_ended_badly_says_why_in_its_log_and_a_warning():
    from strfsolver.solver.diagnostics import FitWarning

    train, valid = _small()
    model = strfsolver.models.init("linear", n_freqs=6, n_lags=4, n_neurons=4)
    # stopped on patience with the plateau rule off: the rate never moved, and the score peaked at epoch 0
    solver = Peaked(model=model, lr=1e-2, patience=8, plateau_patience=0, progress=False)
    with pytest.warns(FitWarning) as caught:
        log = solver.fit(make_loader(train), make_loader(valid)).log
    assert solver.stop_reason_ == "patience" and len(solver.diagnosis_) >= 2
    assert "learning rate never lowered (still lr=0.01)" in log[-1]["diagnosis"]
    assert "peaked at epoch 0" in log[-1]["diagnosis"] and "too high" in log[-1]["diagnosis"]
    assert {str(w.message) for w in caught} >= set(solver.diagnosis_)
    # cut off while improving: the advice is to let it run
    model = strfsolver.models.init("linear", n_freqs=6, n_lags=4, n_neurons=4)
    solver = strfsolver.solver.init("population", model=model, lr=1e-4, max_epochs=3, progress=False)
    with pytest.warns(FitWarning, match="still improving when max_epochs ended the fit"):
        solver.fit(make_loader(train), make_loader(valid))
    # a model with far more weights than training bins: training scores far above validation ones
    pop = synthetic_population(n_neurons=4, n_stims=3, n_repeats=4, n_freqs=24, n_lags=30, n_times=80, seed=5)
    small_train, small_valid = pop.dataset.subset([0]), pop.dataset.subset([1, 2])
    model = strfsolver.models.init("linear", n_freqs=24, n_lags=30, n_neurons=4)
    solver = strfsolver.solver.init("population", model=model, lr=3e-2, max_epochs=60, patience=5, weight_decay=0.0, progress=False)
    with pytest.warns(FitWarning, match="on the training data but"):
        solver.fit(make_loader(small_train), make_loader(small_valid))


def test_a_well_behaved_fit_gives_no_advice(long_stimuli):
    pop, train, valid, test = long_stimuli
    model = strfsolver.models.init("linear", n_freqs=16, n_lags=10, n_neurons=12)
    solver = strfsolver.solver.init("population", model=model, progress=False)
    log = solver.fit(make_loader(train, shuffle=True), make_loader(valid)).log
    assert solver.stop_reason_ == "patience" and solver.diagnosis_ == [] and "diagnosis" not in log[-1]
