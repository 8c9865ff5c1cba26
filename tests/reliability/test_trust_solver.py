"""Issue 19, the solver's side: no silent wrong result from a monitor, a neuron, a batch or the data.

A. a loss used as the monitor is minimised (Python and ``strfsolver fit``); non-scores are refused.
E. neurons without a recorded training bin are refused, by every solver, before any work.
F. a batch with nothing recorded is skipped, not reported as a divergence.
M. non-finite data reaching the loss are named (tensor, stimulus, bin), not blamed on the learning rate.
Q. consistency checks (loaders' neurons and bands, model vs data, loss shape) run at fit start.
"""

import csv
import json
import math

import pytest
import torch

import strfsolver
from strfsolver.app import cli
from strfsolver.data import NeuralDataset, make_loader, save_npz, synthetic_population
from strfsolver.solver import TrainingDivergedError

N, F, L = 4, 6, 4


@pytest.fixture(scope="module")
def splits():
    pop = synthetic_population(n_neurons=N, n_stims=8, n_repeats=3, n_freqs=F, n_lags=L, n_times=60, seed=11)
    return pop.dataset.subset(range(6)), pop.dataset.subset([6, 7])


def model(n_neurons=N, n_freqs=F):
    torch.manual_seed(0)
    return strfsolver.models.init("linear", n_freqs=n_freqs, n_lags=L, n_neurons=n_neurons)


def solver(name="population", **options):
    options.setdefault("progress", False)
    if name != "ridge":
        options.setdefault("lr", 3e-2)
        options.setdefault("max_epochs", 8)
    else:
        options.setdefault("cv", 2)
    return strfsolver.solver.init(name, model=options.pop("model", None) or model(), **options)


# ----------------------------------------------------------------------------- A
def test_a_loss_monitor_keeps_the_lowest_loss_epoch(splits):
    train, valid = splits
    fitted = solver(monitor="val_loss", patience=None).fit(make_loader(train, batch_size=2, shuffle=True), make_loader(valid))
    losses = [row["val_loss"] for row in fitted.log]
    assert fitted.mode_ == "min" and fitted.best_epoch_ == losses.index(min(losses))
    assert fitted.best_score_ == pytest.approx(min(losses))
    # the model holds that epoch's state: validating it again gives the lowest loss
    assert fitted.validation(make_loader(valid))["loss"] == pytest.approx(min(losses), rel=1e-6)


def test_strfsolver_fit_with_a_val_loss_monitor_saves_the_lowest_loss_epoch(tmp_path):
    pop = synthetic_population(n_neurons=N, n_stims=8, n_repeats=3, n_freqs=F, n_lags=L, n_times=60, seed=3)
    save_npz(tmp_path / "data.npz", pop.dataset)
    config = {"data": "data.npz", "logdir": "out", "model": "ln", "solver": "population", "seeds": [0],
              "model_options": {"n_lags": L}, "solver_options": {"lr": 0.05, "max_epochs": 8, "patience": 8, "monitor": "val_loss"}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert cli.main(["fit", str(tmp_path / "config.json"), "--no-progress", "--no-plots"]) == 0
    history = list(csv.DictReader((tmp_path / "out" / "history.csv").open()))
    losses = [float(row["val_loss"]) for row in history]
    final = json.loads(next((tmp_path / "out" / "seeds").glob("seed_*/final.json")).read_text())
    assert final["monitor"] == "val_loss" and final["mode"] == "min"
    assert final["best_epoch"] == losses.index(min(losses)) and final["best_score"] == pytest.approx(min(losses), rel=1e-6)


@pytest.mark.parametrize("options, message", [
    (dict(monitor="seconds"), "monitor must be a key of the epoch dicts such as 'val_cc_norm', got 'seconds'"),
    (dict(monitor="val_signal_power"), "'val_signal_power' is not a score of the prediction"),
    (dict(monitor="val_loss", mode="max"), "'val_loss' is a loss, which is minimised, but mode='max'"),
    (dict(monitor="val_cc_norm", mode="min"), "'val_cc_norm' is a score, where larger is better, but mode='min'"),
    (dict(metrics=[{"mine": lambda pred, resp: pred.new_zeros(pred.shape[1])}], monitor="val_mine"), "custom metric: say whether larger is better"),
])
def test_a_monitor_that_is_no_loss_or_score_or_contradicts_its_mode_is_refused_when_built(options, message):
    with pytest.raises(ValueError, match=message):
        solver(**options)


# ----------------------------------------------------------------------------- E
def _without_training_data(train, neuron):
    responses = [r.clone() for r in train.responses]
    for r in responses:
        r[neuron] = float("nan")
    return NeuralDataset(train.stims, responses, train.dt_ms, neuron_ids=["w", "x", "y", "z"])


@pytest.mark.parametrize("name", ["population", "single-cell", "per-cell-best", "ridge"])
def test_a_neuron_never_recorded_in_training_is_refused_by_every_solver(splits, name):
    train, valid = splits
    fit = solver(name)
    with pytest.raises(ValueError, match=r"1 neuron\(s\) have no recorded bin in the training stimuli: 2 \('y'\)"):
        fit.fit(make_loader(_without_training_data(train, 2), batch_size=2), make_loader(valid))
    assert fit.log == []


def test_the_estimator_refuses_it_too(splits):
    # the estimator refuses a neuron recorded nowhere already; one recorded only in held-out stimuli
    # reaches the solver's check
    from strfsolver.estimator import STRFEstimator

    train, _ = splits
    X = [s.T.numpy() for s in train.stims]
    responses = [r.clone() for r in train.responses]
    for r in responses[:5]:
        r[1] = float("nan")  # neuron 1: recorded in the last stimulus only, which validation holds out
    y = [r.permute(1, 2, 0).numpy() for r in responses]  # (R, T, N)
    with pytest.raises(ValueError, match=r"have no recorded bin in the training stimuli: 1"):
        STRFEstimator(model="linear", n_lags=L, max_epochs=2, val_fraction=1 / 6, random_state=0).fit(X, y)


# ----------------------------------------------------------------------------- F
def test_a_batch_with_nothing_recorded_is_skipped(splits):
    train, valid = splits
    responses = [r.clone() for r in train.responses]
    responses[0][:] = float("nan")  # the first stimulus: no neuron recorded
    data = NeuralDataset(train.stims, responses, train.dt_ms)
    fitted = solver(max_epochs=3).fit(make_loader(data, batch_size=1), make_loader(valid))
    assert len(fitted.log) == 3 and all(math.isfinite(row["train_loss"]) for row in fitted.log)


# ----------------------------------------------------------------------------- M
def test_non_finite_data_are_named_not_blamed_on_the_learning_rate(splits):
    train, valid = splits
    batches = list(make_loader(train, batch_size=2))
    batches[1] = dict(batches[1], stims=batches[1]["stims"].clone())
    batches[1]["stims"][1, 3, 17] = float("inf")
    fit = solver(standardize=False)  # (the standardizer would name it first, as "cannot standardize")
    with pytest.raises(ValueError, match=r"batch\['stims'\] holds inf at \(1, 3, 17\) \(stimulus \d+, bin 17\)") as info:
        fit.fit(batches, make_loader(valid))
    assert not isinstance(info.value, TrainingDivergedError)


# ----------------------------------------------------------------------------- Q
def test_loaders_of_other_neurons_or_bands_are_refused_before_training(splits):
    train, valid = splits
    fewer = valid.select_neurons([0, 1])
    fit = solver()
    with pytest.raises(ValueError, match="the validation data have 2 neurons but the training data have 4"):
        fit.fit(make_loader(train), make_loader(fewer))
    assert fit.log == []
    with pytest.raises(ValueError, match="the model has n_neurons=3 but the training data have 4 neurons"):
        solver(model=model(n_neurons=3)).fit(make_loader(train), make_loader(valid))
    with pytest.raises(ValueError, match="the model has n_freqs=5 but the training data have 6 frequency bands"):
        solver(model=model(n_freqs=5)).fit(make_loader(train), make_loader(valid))


def test_a_loss_that_is_not_a_scalar_is_named(splits):
    train, valid = splits
    fit = solver(criterion=lambda pred, responses: (pred - responses.nanmean(2, keepdim=True)).abs().nan_to_num().mean((0, 2, 3)))
    with pytest.raises(ValueError, match=r"must be a scalar tensor to back-propagate, got a tensor of shape \(4,\)"):
        fit.fit(make_loader(train), make_loader(valid))


def test_transform_names_a_value_beyond_float32_instead_of_calling_it_non_finite():
    import numpy as np

    stims = np.ones((2, F, 30))
    stims[1, 2, 7] = 1e39
    with pytest.raises(ValueError, match=r"stims holds 1e\+39 at index \(1, 2, 7\): finite but beyond float32's range"):
        solver().transform(stims)
    with pytest.raises(ValueError, match=r"stims\[1\] holds 1e\+39 at index \(2, 7\)"):
        solver().transform(list(stims))


def test_the_estimator_names_a_predicted_stimulus_value_beyond_float32():
    import numpy as np

    from strfsolver.estimator import STRFEstimator

    rng = np.random.default_rng(0)
    X = [rng.standard_normal((40, F)) for _ in range(4)]
    y = [rng.poisson(2.0, (40, N)).astype(float) for _ in range(4)]
    est = STRFEstimator(model="linear", n_lags=L, random_state=0).fit(X, y)
    X[2][7, 1] = 1e39
    with pytest.raises(ValueError, match=r"X\[2\] holds 1e\+39 at index \(7, 1\): finite but beyond float32's range"):
        est.predict(X)
    with pytest.raises(ValueError, match=r"X\[2\] holds 1e\+39"):
        est.score(X, y)


def test_a_bin_width_other_than_the_models_prefilter_or_the_training_datas_is_refused(splits):
    """A prefilter's time constants are in ms: 'adaptrans' built for 5 ms bins and fitted to 10 ms data
    would adapt twice as slowly as meant, without an error; so would a validation split of other bins."""
    train, valid = splits
    slow = NeuralDataset(train.stims, train.responses, dt_ms=2 * train.dt_ms)
    adapting = strfsolver.models.init("ln", n_freqs=train.n_freqs, n_lags=4, n_neurons=train.n_neurons,
                                      prefiltering="adaptrans", dt_ms=train.dt_ms)
    with pytest.raises(ValueError, match=r"AdapTrans \(prefiltering\) was built for 5 ms bins but the training data "
                                         r"have 10 ms bins.*factor of 2.*dt_ms=10"):
        solver(model=adapting).fit(make_loader(slow))
    with pytest.raises(ValueError, match="the validation data have 5 ms bins but the training data have 10 ms"):
        solver().fit(make_loader(slow), make_loader(valid))
    # a model without a time-dependent part fits any bin width, its own dt_ms notwithstanding
    assert solver().fit(make_loader(slow)).log
