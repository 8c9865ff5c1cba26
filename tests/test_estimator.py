"""STRFEstimator: input forms, validation errors, fitted attributes, files, fit quality."""

import importlib.util
import json
import pickle
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from strfsolver import metrics
from strfsolver.data import NeuralDataset, save_npz, load_npz, synthetic_population
from strfsolver.estimator import STRFEstimator, NotFittedError, dataset_to_arrays

F, N, L = 4, 3, 3


def tiny(**kwargs):
    """A fast estimator: a linear model, a few epochs, a fixed seed."""
    options = dict(model="linear", n_lags=L, lr=0.05, max_epochs=4, patience=2, batch_size=4, random_state=0)
    options.update(kwargs)
    return STRFEstimator(**options)


def make(n_stims=4, n_times=30, n_repeats=None, seed=0):
    rng = np.random.default_rng(seed)
    X, y = [], []
    for _ in range(n_stims):
        x = rng.random((n_times, F))
        drive = np.concatenate([[0.0], x[:-1, 1]])[:, None] * np.arange(1, N + 1)
        shape = (n_times, N) if n_repeats is None else (n_repeats, n_times, N)
        X.append(x)
        y.append(drive + 0.1 * rng.standard_normal(shape))
    return X, y


# ------------------------------------------------------------------ input forms
def test_single_array_fit_predict_and_fitted_attributes():
    X, y = make(n_stims=1, n_times=60)
    est = tiny().fit(X[0], y[0])
    pred = est.predict(X[0])
    assert isinstance(pred, np.ndarray) and pred.shape == (60, N) and pred.dtype == np.float64
    assert np.isfinite(pred).all()
    assert est.strfs_.shape == (N, F, L)
    assert est.n_features_in_ == F and est.n_neurons_ == N
    assert isinstance(est.history_, pd.DataFrame) and len(est.history_) == est.n_iter_
    assert {"epoch", "train_loss", "val_loss", "val_cc", "val_cc_norm"} <= set(est.history_.columns)
    assert list(est.scores_.index) == list(range(N)) and est.scores_.index.name == "neuron"
    assert {"cc", "cc_norm", "fve", "snr"} <= set(est.scores_.columns)
    assert est.scores_.attrs["data"] == "validation"
    # one stimulus: contiguous blocks, disjoint, covering every bin, 0.15 of 10 blocks rounds to 2
    split = est.validation_split_
    assert split["kind"] == "blocks"
    covered = sorted(est.validation_split_["train"] + split["val"])
    assert covered[0][0] == 0 and covered[-1][1] == 60
    assert all(a[1] == b[0] for a, b in zip(covered, covered[1:]))
    assert sum(b - a for a, b in split["val"]) == 12
    # one repeat: early stopping watches the raw correlation
    assert est.monitor_ == "val_cc"
    # strfs_ is the model's STRF with the channel axis squeezed
    np.testing.assert_allclose(est.strfs_, est.model_.strf()[:, 0].detach().numpy(), rtol=1e-6)


def test_transform_equals_predict_and_fit_transform():
    X, y = make(n_stims=1, n_times=40)
    est = tiny()
    out = est.fit_transform(X[0], y[0])
    np.testing.assert_array_equal(out, est.predict(X[0]))
    np.testing.assert_array_equal(est.transform(X[0]), est.predict(X[0]))


def test_list_input_holds_out_whole_stimuli_and_returns_lists():
    X, y = make(n_stims=6, n_times=25)
    X[2], y[2] = X[2][:17], y[2][:17]  # lengths may differ
    est = tiny(val_fraction=0.34).fit(X, y)
    assert est.validation_split_ == {"kind": "stimuli", "indices": est.validation_split_["indices"]}
    assert len(est.validation_split_["indices"]) == 2
    preds = est.predict(X)
    assert isinstance(preds, list) and [p.shape for p in preds] == [(len(x), N) for x in X]
    # a stimulus predicted alone gives the same as within the list: stimuli do not leak into each other
    np.testing.assert_allclose(est.predict(X[2]), preds[2], rtol=1e-5, atol=1e-6)


def test_repeats_monitor_cc_norm_and_score_is_cc_norm():
    X, y = make(n_stims=5, n_times=30, n_repeats=3)
    est = tiny(val_fraction=0.4).fit(X, y)
    assert est.monitor_ == "val_cc_norm"
    pred = torch.stack([torch.as_tensor(p.T[:, None, :]) for p in est.predict(X)])
    responses = torch.stack([torch.as_tensor(np.transpose(r, (2, 0, 1))) for r in y])
    expected = metrics.normalized_corrcoef(pred, responses, reduction="none").numpy()
    assert est.score(X, y) == pytest.approx(float(np.nanmean(expected)), rel=1e-5)


def test_single_repeat_score_is_the_raw_correlation():
    X, y = make(n_stims=1, n_times=50)
    est = tiny().fit(X[0], y[0])
    pred = est.predict(X[0])
    expected = np.mean([np.corrcoef(pred[:, n], y[0][:, n])[0, 1] for n in range(N)])
    assert est.score(X[0], y[0]) == pytest.approx(expected, rel=1e-5)


def test_one_dimensional_y_gives_one_dimensional_predictions():
    X, y = make(n_stims=1, n_times=40)
    est = tiny().fit(X[0], y[0][:, 1])
    assert est.n_neurons_ == 1 and est.predict(X[0]).shape == (40,)
    assert est.strfs_.shape == (1, F, L)


def test_nan_marks_missing_data():
    X, y = make(n_stims=4, n_times=30, n_repeats=2)
    y[0][0, 5:15, 1] = np.nan
    y[3][1, :, :] = np.nan
    est = tiny().fit(X, y)
    assert all(torch.isfinite(p).all() for p in est.model_.parameters())
    assert all(np.isfinite(p).all() for p in est.predict(X))
    # an all-NaN extra repeat is no data at all: the fit is the same as without it
    X1, y1 = make(n_stims=4, n_times=30)
    padded = [np.stack([r, np.full_like(r, np.nan)]) for r in y1]
    a, b = tiny().fit(X1, y1), tiny().fit(X1, padded)
    assert a.monitor_ == b.monitor_ == "val_cc"
    np.testing.assert_array_equal(np.concatenate(a.predict(X1)), np.concatenate(b.predict(X1)))


def test_given_validation_set_and_no_validation():
    X, y = make(n_stims=4, n_times=30)
    est = tiny().fit(X[:3], y[:3], X_val=X[3:], y_val=y[3:])
    assert est.validation_split_ == {"kind": "given"}
    table = est.score_neurons(X[3:], y[3:])
    np.testing.assert_allclose(est.scores_["cc"].to_numpy(), table["cc"].to_numpy(), rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # stopping on the training loss is asked for, not a fallback
        none = tiny(val_fraction=0.0).fit(X, y)
    assert none.monitor_ == "train_loss" and none.validation_split_ == {"kind": "none"}
    assert none.scores_.attrs["data"] == "training" and "val_loss" not in none.history_


def test_same_seed_same_fit_other_seed_other_fit():
    X, y = make(n_stims=4, n_times=30)
    a, b, c = tiny().fit(X, y), tiny().fit(X, y), tiny(random_state=1).fit(X, y)
    np.testing.assert_array_equal(a.strfs_, b.strfs_)
    assert not np.allclose(a.strfs_, c.strfs_)


def test_fit_accepts_a_dataset_from_an_npz_file(tmp_path):
    X, y = make(n_stims=3, n_times=20, n_repeats=2)
    dataset = NeuralDataset([x.T for x in X], [np.transpose(r, (2, 0, 1)) for r in y], dt_ms=10.0)
    save_npz(tmp_path / "data.npz", dataset)
    loaded = load_npz(tmp_path / "data.npz")
    X2, y2 = dataset_to_arrays(loaded)
    np.testing.assert_allclose(X2[1], X[1], rtol=1e-6)
    np.testing.assert_allclose(y2[2], y[2], rtol=1e-6)
    a = tiny().fit(loaded)
    b = tiny(model_kwargs={"dt_ms": 10.0}).fit(X2, y2)
    assert a.dt_ms_ == 10.0 and a.model_.dt_ms == 10.0
    np.testing.assert_array_equal(a.strfs_, b.strfs_)
    assert a.score(loaded) == pytest.approx(a.score(X2, y2))


def test_not_fitted_raises_not_fitted_error():
    est = tiny()
    with pytest.raises(NotFittedError, match="not fitted yet"):
        est.predict(np.zeros((5, F)))
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)


# ------------------------------------------------------------------ malformed input
def bad_inputs():
    X, y = make(n_stims=3, n_times=20)
    cases = []
    y_short = list(y)
    y_short[2] = y[2][:15]
    cases.append(("mismatched lengths", X, y_short, r"y\[2\] \(stimulus 2\) has shape \(15, 3\).*15 time bins.*X\[2\] has 20"))
    X_3d = list(X)
    X_3d[1] = X[1][None]
    cases.append(("wrong ndim X", X_3d, y, r"X\[1\] \(stimulus 1\) has shape \(1, 20, 4\); expected a 2-D"))
    y_4d = list(y)
    y_4d[0] = y[0][None, None]
    cases.append(("wrong ndim y", X, y_4d, r"y\[0\] \(stimulus 0\) has shape \(1, 1, 20, 3\)"))
    X_nan = [x.copy() for x in X]
    X_nan[1][7, 2] = np.nan
    cases.append(("NaN in X", X_nan, y, r"X\[1\] \(stimulus 1\) contains NaN or inf \(first at time bin 7, band 2\)"))
    X_inf = [x.copy() for x in X]
    X_inf[2][0, 0] = np.inf
    cases.append(("inf in X", X_inf, y, r"X\[2\] \(stimulus 2\) contains NaN or inf"))
    y_inf = [r.copy() for r in y]
    y_inf[1][3, 0] = -np.inf
    cases.append(("inf in y", X, y_inf, r"y\[1\] \(stimulus 1\) contains inf at index \(3, 0\)"))
    y_neurons = list(y)
    y_neurons[2] = y[2][:, :2]
    cases.append(("neuron count changes", X, y_neurons, r"y\[2\] \(stimulus 2\) has 2 neurons.*y\[0\] has 3"))
    X_bands = list(X)
    X_bands[1] = X[1][:, :3]
    cases.append(("band count changes", X_bands, y, r"X\[1\] \(stimulus 1\) has 3 bands.*X\[0\] has 4"))
    cases.append(("list lengths differ", X, y[:2], r"X holds 3 stimuli but y holds 2"))
    cases.append(("list X, array y", X, y[0], r"X is a list of 3 stimuli but y is a ndarray"))
    cases.append(("empty list", [], [], r"X is an empty list"))
    cases.append(("y None", X[0], None, r"requires y to be passed"))
    cases.append(("1-D X", X[0][:, 0], y[0], r"X has shape \(20,\).*Reshape your data"))
    cases.append(("no band", X[0][:, :0], y[0], r"0 feature\(s\)"))
    cases.append(("one bin", X[0][:1], y[0][:1], r"n_samples=1"))
    y_all_nan = [r.copy() for r in y]
    for r in y_all_nan:
        r[:, 1] = np.nan
    cases.append(("neuron never recorded", X, y_all_nan, r"no recorded value \(all NaN\) for neuron\(s\) \[1\]"))
    return cases


@pytest.mark.parametrize("case", bad_inputs(), ids=lambda c: c[0])
def test_malformed_input_raises_value_error_naming_the_stimulus(case):
    _, X, y, message = case
    with pytest.raises(ValueError, match=message):
        tiny().fit(X, y)


@pytest.mark.parametrize(
    "params, message",
    [
        (dict(n_lags=0), "n_lags must be an integer >= 1, got 0"),
        (dict(val_fraction=1.0), r"val_fraction must be a number in \[0, 1\), got 1.0"),
        (dict(lr=-1.0), "lr must be a number"),
        (dict(patience=0), "patience must be an integer >= 1 or None"),
        (dict(model_kwargs={"n_freqs": 3}), r"model_kwargs sets \['n_freqs'\]"),
        (dict(model="no-such-model"), "no-such-model"),
        (dict(random_state=-3), "random_state must be"),
    ],
)
def test_invalid_parameters_fail_in_fit_not_in_init(params, message):
    X, y = make(n_stims=2, n_times=20)
    est = tiny(**params)  # the constructor stores, whatever the values
    with pytest.raises(ValueError, match=message):
        est.fit(X, y)


def test_prediction_inputs_are_checked_against_the_fit():
    X, y = make(n_stims=2, n_times=20)
    est = tiny().fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features, but STRFEstimator is expecting 4 features as input"):
        est.predict(X[0][:, :3])
    with pytest.raises(ValueError, match=r"y\[1\] \(stimulus 1\) has 2 neurons.*the fitted estimator has 3"):
        est.score(X, [y[0], y[1][:, :2]])
    with pytest.raises(ValueError, match="X_val and y_val go together"):
        tiny().fit(X, y, X_val=X)


# ------------------------------------------------------------------ files
def test_save_load_round_trip_gives_identical_predictions(tmp_path):
    X, y = make(n_stims=3, n_times=25, n_repeats=2)
    est = tiny().fit(X, y)
    folder = est.save(tmp_path / "fitted")
    # the model folder of save_pretrained (with its model card) plus the estimator's own file
    expected = ["README.md", "config.json", "estimator.json", "metadata.json", "model.safetensors"]
    assert sorted(p.name for p in folder.rglob("*") if p.is_file()) == expected
    assert json.loads((folder / "estimator.json").read_text())["params"]["n_lags"] == L
    loaded = STRFEstimator.load(folder)
    assert loaded.get_params() == est.get_params()
    for a, b in zip(est.predict(X), loaded.predict(X)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.strfs_, est.strfs_)
    pd.testing.assert_frame_equal(loaded.history_, est.history_)
    pd.testing.assert_frame_equal(loaded.scores_, est.scores_)
    assert loaded.validation_split_ == est.validation_split_
    assert loaded.score(X, y) == est.score(X, y)


def test_save_refuses_what_json_cannot_hold_and_load_refuses_other_folders(tmp_path):
    X, y = make(n_stims=2, n_times=20)
    est = tiny(loss=lambda pred, responses: ((pred - responses.nanmean(2, keepdim=True)) ** 2).nanmean()).fit(X, y)
    with pytest.raises(ValueError, match="parameter loss=.*cannot be written to JSON"):
        est.save(tmp_path / "x")
    with pytest.raises(ValueError, match="No estimator.json"):
        STRFEstimator.load(tmp_path)
    with pytest.raises(NotFittedError):
        tiny().save(tmp_path / "y")


def test_pickle_round_trip_gives_identical_predictions():
    X, y = make(n_stims=1, n_times=30)
    est = tiny().fit(X[0], y[0])
    clone = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(clone.predict(X[0]), est.predict(X[0]))
    np.testing.assert_array_equal(clone.strfs_, est.strfs_)


def test_plot_strfs_draws_one_panel_per_neuron():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    X, y = make(n_stims=2, n_times=20)
    fig = tiny().fit(X, y).plot_strfs()
    # one image per neuron; the shared colour bar is an axes of its own
    assert sum(bool(ax.images) and ax.get_visible() for ax in fig.axes) == N
    import matplotlib.pyplot as plt

    plt.close(fig)


# ------------------------------------------------------------------ without scikit-learn
def test_works_without_scikit_learn(monkeypatch):
    for name in ("sklearn", "sklearn.base", "sklearn.exceptions"):
        monkeypatch.setitem(sys.modules, name, None)  # import now raises ImportError
    path = Path(__file__).resolve().parents[1] / "strfsolver" / "estimator" / "estimator.py"
    spec = importlib.util.spec_from_file_location("_estimator_without_sklearn", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.HAS_SKLEARN is False
    est = module.STRFEstimator(model="linear", n_lags=L, max_epochs=3, lr=0.05, random_state=0)
    assert est.get_params()["n_lags"] == L and est.get_params()["model"] == "linear"
    assert repr(est) == "STRFEstimator(lr=0.05, max_epochs=3, model='linear', n_lags=3, random_state=0)"
    with pytest.raises(ValueError, match="'bogus' is not a parameter"):
        est.set_params(bogus=1)
    with pytest.raises(module.NotFittedError) as info:
        est.predict(np.zeros((5, F)))
    assert isinstance(info.value, ValueError) and isinstance(info.value, AttributeError)
    X, y = make(n_stims=2, n_times=20)
    est.set_params(patience=2).fit(X, y)
    assert [p.shape for p in est.transform(X)] == [(20, N), (20, N)]
    assert np.isfinite(est.score(X, y))
    # same seed, same fit as the scikit-learn based class
    reference = STRFEstimator(model="linear", n_lags=L, max_epochs=3, lr=0.05, random_state=0, patience=2).fit(X, y)
    np.testing.assert_array_equal(est.strfs_, reference.strfs_)


# ------------------------------------------------------------------ fit quality
def test_linear_fit_recovers_synthetic_strfs_and_reaches_the_truths_cc_norm():
    pop = synthetic_population(n_neurons=4, n_stims=18, n_repeats=10, n_freqs=6, n_lags=5, n_times=200, noise=0.0, seed=1)
    # the dataset is (F, T) / (N, R, T); the estimator wants time first
    X = [s.numpy().T for s in pop.dataset.stims]
    y = [np.transpose(r.numpy(), (1, 2, 0)) for r in pop.dataset.responses]
    est = STRFEstimator(model="linear", n_lags=5, lr=0.1, batch_size=8, max_epochs=80, patience=10,
                        val_fraction=0.25, random_state=0).fit(X[:16], y[:16])
    true = pop.strfs[:, 0].numpy()
    similarity = [np.corrcoef(true[n].ravel(), est.strfs_[n].ravel())[0, 1] for n in range(4)]
    assert min(similarity) > 0.65 and np.mean(similarity) > 0.75, similarity
    truth = float(pop.truth_cc_norm(pop.dataset.subset([16, 17])).mean())
    score = est.score(X[16:], y[16:])
    assert abs(score - truth) < 0.12, (score, truth)


# ------------------------------------------------------------------ every registered solver
@pytest.mark.parametrize("solver", ["population", "single-cell", "per-cell-best", "multi-seed"])
def test_every_solver_fits_predicts_and_round_trips(solver, tmp_path):
    X, y = make(n_stims=4, n_times=20, n_repeats=2)
    est = tiny(solver=solver, max_epochs=3).fit(X, y)
    assert est.strfs_.shape == (N, F, L) and np.isfinite(est.strfs_).all()
    assert len(est.history_) == est.n_iter_ and est.best_epoch_ is not None
    if solver == "multi-seed":
        result = est.solver_.result_
        assert len(result.runs) == 3
        # the kept model is the best seed's
        best = result.best_run.state_dict
        for name, value in est.model_.state_dict().items():
            torch.testing.assert_close(value.cpu(), best[name].cpu())
    loaded = STRFEstimator.load(est.save(tmp_path / solver))
    for a, b in zip(est.predict(X), loaded.predict(X)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loaded.strfs_, est.strfs_, rtol=1e-5, atol=1e-7)


def test_scores_name_the_neurons_of_a_dataset(tmp_path):
    from strfsolver import STRFEstimator
    from strfsolver.data import load_npz, save_npz, synthetic_population

    population = synthetic_population(n_neurons=3, n_stims=6, n_repeats=3, n_freqs=5, n_lags=3, n_times=60, seed=4)
    save_npz(tmp_path / "d.npz", population.dataset, neuron_ids=["u7", "u9", "u12"])
    estimator = STRFEstimator(model="linear", n_lags=3, max_epochs=2, random_state=0).fit(load_npz(tmp_path / "d.npz"))
    assert estimator.scores_["neuron_id"].tolist() == ["u7", "u9", "u12"]
    estimator.save(tmp_path / "est")
    assert STRFEstimator.load(tmp_path / "est").scores_["neuron_id"].tolist() == ["u7", "u9", "u12"]
