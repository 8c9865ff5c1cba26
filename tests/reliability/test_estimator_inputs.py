"""The scikit-learn estimator: bad parameters and arrays named at fit or predict, and every edited
or broken field of a saved folder named at load, with the folder left as it was."""

import json
import math
import shutil

import numpy as np
import pytest

from reliability_cases import case_ids, snapshot
from strfsolver.estimator import NotFittedError, STRFEstimator

F, T, N = 6, 40, 3


def _x(n=4, t=T, f=F):
    rng = np.random.default_rng(0)
    return [rng.random((t, f)).astype(np.float32) for _ in range(n)]


def _y(n=4, t=T, neurons=N):
    rng = np.random.default_rng(1)
    return [rng.random((t, neurons)).astype(np.float32) for _ in range(n)]


def _estimator(**params):
    return STRFEstimator(**{"model": "linear", "solver": "population", "n_lags": 4, "max_epochs": 2, "random_state": 0, **params})


# (what, estimator parameters, X, y, error, message)
FIT_CASES = [
    ("lr negative", dict(lr=-1.0), _x(), _y(), ValueError, r"lr must be a number > 0 or None, got -1.0"),
    ("lr string", dict(lr="fast"), _x(), _y(), ValueError, r"lr must be a number > 0 or None, got 'fast'"),
    ("weight_decay negative", dict(weight_decay=-0.1), _x(), _y(), ValueError, r"weight_decay must be a number >= 0"),
    ("max_epochs zero", dict(max_epochs=0), _x(), _y(), ValueError, r"max_epochs must be an integer >= 1, got 0"),
    ("patience zero", dict(patience=0), _x(), _y(), ValueError, r"patience must be an integer >= 1 or None, got 0"),
    ("n_lags zero", dict(n_lags=0), _x(), _y(), ValueError, r"n_lags must be an integer >= 1, got 0"),
    ("n_lags too long", dict(n_lags=50), _x(), _y(), ValueError, r"n_lags=50 is longer than every training stimulus"),
    ("unknown loss", dict(loss="huber"), _x(), _y(), ValueError, r"Unknown name 'huber' in strfsolver.losses. Options are: mse, poisson"),
    ("model_kwargs a list", dict(model_kwargs=[1]), _x(), _y(), ValueError, r"model_kwargs must be a dict or None, got list"),
    ("unknown model", dict(model="LN2"), _x(), _y(), ValueError, r"'LN2'"),
    ("unknown solver", dict(solver="adam"), _x(), _y(), ValueError, r"'adam'"),
    ("device unknown", dict(device="tpu"), _x(), _y(), ValueError, r"device must name a torch device such as 'cpu' or 'cuda:0', got 'tpu'"),
    ("random_state negative", dict(random_state=-1), _x(), _y(), ValueError, r"random_state must be a non-negative integer"),
    ("random_state a string", dict(random_state="seed"), _x(), _y(), ValueError, r"random_state must be None, an integer"),
    ("X None", {}, None, _y(), ValueError, r"X is None; expected an array"),
    ("X empty list", {}, [], _y(), ValueError, r"X is an empty list"),
    ("X complex", {}, [x.astype(np.complex64) for x in _x()], _y(), ValueError, r"Complex data not supported: X\[0\]"),
    ("X with NaN", {}, [np.full((T, F), np.nan)] + _x(3), _y(), ValueError, r"X\[0\]"),
    ("X bands differ", {}, _x(3) + _x(1, f=F + 1), _y(), ValueError, r"X\[3\]"),
    ("X without bins", {}, [np.zeros((0, F))] + _x(3), _y(), ValueError, r"X\[0\] \(stimulus 0\) has 0 time bins"),
    ("y None", {}, _x(), None, ValueError, r"requires y to be passed, but the target y is None"),
    ("y fewer stimuli", {}, _x(), _y(3), ValueError, r"\by\b"),
    ("y too short", {}, _x(), _y(3) + _y(1, t=T - 1), ValueError, r"y\[3\]"),
    ("y with inf", {}, _x(), [np.full((T, N), np.inf)] + _y(3), ValueError, r"y\[0\] \(stimulus 0\) contains inf at index \(0, 0\)"),
    ("y no neuron", {}, _x(), [np.zeros((T, 0))] * 4, ValueError, r"y\[0\] \(stimulus 0\) has shape \(40, 0\) with no neuron"),
    ("y all NaN", {}, _x(), [np.full((T, N), np.nan)] * 4, ValueError, r"y has no recorded value \(all NaN\) for neuron\(s\) \[0, 1, 2\]"),
    ("y 4-D", {}, _x(), [np.zeros((1, 1, T, N))] * 4, ValueError, r"y\[0\] \(stimulus 0\) has shape \(1, 1, 40, 3\); expected \(40,\)"),
]


@pytest.mark.parametrize("what, params, X, y, error, message", FIT_CASES, ids=case_ids(FIT_CASES))
def test_bad_parameters_and_arrays_are_named_at_fit(what, params, X, y, error, message):
    estimator = _estimator(**params)
    with pytest.raises(error, match=message):
        estimator.fit(X, y)
    assert "model_" not in estimator.__dict__


def test_predict_before_fit_says_so():
    with pytest.raises(NotFittedError, match=r"STRFEstimator.*fit"):
        _estimator().predict(_x(1))


@pytest.fixture(scope="module")
def fitted():
    return _estimator().fit(_x(), _y())


def test_predict_with_other_bands_is_named(fitted):
    with pytest.raises(ValueError, match=r"X\[0\] has 7 (features|columns|bands)|7.*n_features_in_|expect"):
        fitted.predict(_x(1, f=F + 1))


@pytest.fixture(scope="module")
def saved(fitted, tmp_path_factory):
    folder = tmp_path_factory.mktemp("estimator") / "saved"
    fitted.save(folder)
    return folder


def _edit_json(name, change):
    def edit(folder):
        path = folder / name
        state = json.loads(path.read_text())
        change(state)
        path.write_text(json.dumps(state))

    return edit


def _set(*keys_and_value):
    *keys, value = keys_and_value

    def change(state):
        target = state
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return change


def _delete(*keys):
    def change(state):
        target = state
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]

    return change


def _five_neurons(state):
    state["fitted"]["n_neurons_"] = 5
    state["fitted"]["scores"] = {key: [0.0] * 5 for key in state["fitted"]["scores"]}


def _write(name, data):
    def edit(folder):
        (folder / name).write_bytes(data)

    return edit


def _remove(name):
    def edit(folder):
        target = folder / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()

    return edit


def _nan_weights(folder):
    import torch

    from strfsolver.utils import io

    path = folder / "model" / "model.safetensors"
    tensors, metadata = io.load_tensors(path, with_metadata=True)
    name = next(k for k, v in tensors.items() if v.is_floating_point() and "standardize" not in k)
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    io.save_tensors(path, tensors, metadata)


E, M = "estimator.json", "model/config.json"

# (what, edit of the saved folder, file named in the message, message)
LOAD_CASES = [
    ("no estimator.json", _remove(E), "saved", r"No estimator.json in .*; expected a folder written by STRFEstimator.save"),
    ("estimator.json not JSON", _write(E, b"{not json"), E, r"estimator.json is not valid JSON"),
    ("estimator.json a list", _write(E, b"[1, 2]"), E, r"estimator.json was not written by STRFEstimator.save"),
    ("other format", _edit_json(E, _set("format", "sklearn")), E, r"was not written by STRFEstimator.save"),
    ("newer format_version", _edit_json(E, _set("format_version", 99)), E, r"field 'format_version' is 99; this strfsolver reads versions 1 to 1"),
    ("format_version a string", _edit_json(E, _set("format_version", "1")), E, r"field 'format_version' is '1'"),
    ("params a list", _edit_json(E, _set("params", [])), E, r"field 'params' must be a mapping, got a list"),
    ("fitted missing", _edit_json(E, _delete("fitted")), E, r"field 'fitted' must be a mapping, got None"),
    ("unknown parameter", _edit_json(E, _set("params", "learning_rate", 0.1)), E, r"field 'params' has 'learning_rate', which STRFEstimator does not take"),
    ("params without device", _edit_json(E, _delete("params", "device")), E, r"field 'params' has no 'device'"),
    ("params lr a string", _edit_json(E, _set("params", "lr", "fast")), E, r"field 'params' does not build a solver: lr must be a number > 0 or None, got 'fast'"),
    ("n_neurons_ a string", _edit_json(E, _set("fitted", "n_neurons_", "three")), E, r"field 'fitted.n_neurons_' must be an integer >= 1, got 'three'"),
    ("n_neurons_ missing", _edit_json(E, _delete("fitted", "n_neurons_")), E, r"field 'fitted.n_neurons_' is missing"),
    ("n_neurons_ not the model's", _edit_json(E, _five_neurons), E, r"field 'fitted.n_neurons_' is 5 but the model in .* has 3 neurons"),
    ("n_features_in_ zero", _edit_json(E, _set("fitted", "n_features_in_", 0)), E, r"field 'fitted.n_features_in_' must be an integer >= 1, got 0"),
    ("dt_ms_ negative", _edit_json(E, _set("fitted", "dt_ms_", -1.0)), E, r"field 'fitted.dt_ms_' must be a positive number, got -1.0"),
    ("y_1d a string", _edit_json(E, _set("fitted", "y_1d", "yes")), E, r"field 'fitted.y_1d' must be true or false, got 'yes'"),
    ("n_iter_ negative", _edit_json(E, _set("fitted", "n_iter_", -2)), E, r"field 'fitted.n_iter_' must be an integer >= 0, got -2"),
    ("best_epoch_ a word", _edit_json(E, _set("fitted", "best_epoch_", "five")), E, r"field 'fitted.best_epoch_' must be an integer >= 0 or null, got 'five'"),
    ("monitor_ a number", _edit_json(E, _set("fitted", "monitor_", 5)), E, r"field 'fitted.monitor_' must be a key of the epoch dicts"),
    ("history a dict", _edit_json(E, _set("fitted", "history", {})), E, r"field 'fitted.history' must be a list of epoch dicts, got a dict"),
    ("scores of other lengths", _edit_json(E, _set("fitted", "scores", {"cc": [0.1]})), E, r"field 'fitted.scores' must hold 3 values \(one per neuron\)"),
    ("feature names too few", _edit_json(E, _set("fitted", "feature_names_in_", ["a"])), E, r"field 'fitted.feature_names_in_' has 1 names for n_features_in_=6"),
    ("batch_size_ zero", _edit_json(E, _set("fitted", "batch_size_", 0)), E, r"field 'fitted.batch_size_' must be an integer >= 1, got 0"),
    ("model folder missing", _remove("model"), "model", r"model' does not exist locally"),
    ("model config not JSON", _write(M, b"{"), M, r"config.json is not valid JSON"),
    ("model config other format", _edit_json(M, _set("format", "torch")), M, r"config.json was not written by NeuralModel.save_pretrained"),
    ("model name unknown", _edit_json(M, _set("name", "os.system")), M, r"config.json names the class .* under the registered name 'os.system', which strfsolver.models does not know"),
    ("model arguments a list", _edit_json(M, _set("arguments", [1])), M, r"config.json: field 'arguments' must be a mapping, got list"),
    ("model arguments unknown", _edit_json(M, _set("arguments", "n_layers", 3)), M, r"config.json: field 'arguments' does not build the model"),
    ("model weights missing", _remove("model/model.safetensors"), "model.safetensors", r"No safetensors file at .*model.safetensors"),
    ("model weights a pickle", _write("model/model.safetensors", b"\x80\x04\x95" + b"\x00" * 64), "model.safetensors", r"model.safetensors is truncated or not a safetensors file"),
    ("model weights NaN", _nan_weights, "model.safetensors", r"model.safetensors: weights tensor .* holds \d+ non-finite value"),
]


@pytest.mark.parametrize("what, edit, named, message", LOAD_CASES, ids=case_ids(LOAD_CASES))
def test_a_broken_saved_estimator_is_named_at_load_and_left_as_it_was(saved, tmp_path, what, edit, named, message):
    folder = tmp_path / "saved"
    shutil.copytree(saved, folder)
    edit(folder)
    before = snapshot(folder)
    with pytest.raises(ValueError if "missing" not in what else (ValueError, FileNotFoundError), match=message) as raised:
        STRFEstimator.load(folder)
    assert named in str(raised.value)
    assert snapshot(folder) == before


def test_the_saved_folder_loads_and_predicts_like_the_fitted_estimator(saved, fitted):
    loaded = STRFEstimator.load(saved)
    X = _x(1)
    np.testing.assert_allclose(loaded.predict(X)[0], fitted.predict(X)[0], rtol=1e-6)


def test_saving_onto_a_file_is_refused_and_the_file_kept(fitted, tmp_path):
    target = tmp_path / "taken"
    target.write_text("keep me")
    with pytest.raises((ValueError, FileExistsError, NotADirectoryError), match="taken"):
        fitted.save(target)
    assert target.read_text() == "keep me"


def test_a_nonfinite_learning_rate_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"lr must be a number > 0 or None, got nan"):
        _estimator(lr=math.nan).fit(_x(), _y())
