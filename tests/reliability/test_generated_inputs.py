"""Generated hostile inputs (hypothesis): every outcome is a correct result or an error raised up front.

Strategies build datasets, solver options, ``strfsolver fit`` configs and
saved estimator folders, each with random defects. The property: either the
call succeeds and its result is sound (finite losses, the same predictions
after a save and load), or it raises ``ValueError`` / ``TypeError`` /
``KeyError`` / ``OSError`` before any training (``solver.log`` empty), with
a message that names what was wrong; and a refused call leaves the disk as
it was. CI runs a bounded profile; ``HYPOTHESIS_PROFILE=thorough`` runs more
examples locally.
"""

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import strfsolver
from strfsolver.app import cli
from strfsolver.data import NeuralDataset, make_loader, save_npz, synthetic_population

settings.register_profile("ci", max_examples=12, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("thorough", max_examples=300, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
REFUSALS = (ValueError, TypeError, KeyError, OSError)
F, L, N = 5, 3, 3


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ datasets
DEFECTS = ["none", "nan_stim", "inf_stim", "huge_stim", "inf_response", "wrong_bands", "wrong_neurons",
           "wrong_length", "empty_stim", "three_dims", "all_nan_responses", "string", "ragged"]


@st.composite
def datasets(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_stims = draw(st.integers(2, 4))
    lengths = [draw(st.integers(8, 20)) for _ in range(n_stims)]
    stims = [rng.standard_normal((F, t)) for t in lengths]
    responses = [rng.poisson(2.0, (N, 2, t)).astype(float) for t in lengths]
    defect = draw(st.sampled_from(DEFECTS))
    i = draw(st.integers(0, n_stims - 1))
    if defect == "nan_stim":
        stims[i][0, 0] = np.nan
    elif defect == "inf_stim":
        stims[i][1, -1] = np.inf
    elif defect == "huge_stim":
        stims[i][2, 3] = 1e39
    elif defect == "inf_response":
        responses[i][0, 0, 1] = np.inf
    elif defect == "wrong_bands":
        stims[i] = stims[i][:-1]
    elif defect == "wrong_neurons":
        responses[i] = responses[i][:-1]
    elif defect == "wrong_length":
        responses[i] = responses[i][..., :-2]
    elif defect == "empty_stim":
        stims[i], responses[i] = stims[i][:, :0], responses[i][..., :0]
    elif defect == "three_dims":
        stims[i] = stims[i][None, None]
    elif defect == "all_nan_responses":
        responses = [np.full_like(r, np.nan) for r in responses]
    elif defect == "string":
        stims[i] = "spectrogram.wav"
    elif defect == "ragged":
        stims[i] = [list(row) for row in stims[i]][:-1] + [[1.0]]
    return defect, stims, responses


@settings(settings.get_profile(PROFILE))
@given(datasets())
@example(("huge_stim", [np.full((F, 10), 1e39)] * 2, [np.ones((N, 2, 10))] * 2))
@example(("none", [np.ones((F, 10)) * 1e-9, np.ones((F, 12)) * 2e-9], [np.ones((N, 2, 10)), np.ones((N, 2, 12))]))
def test_a_dataset_is_sound_or_refused_naming_the_input(case):
    defect, stims, responses = case
    try:
        data = NeuralDataset(stims, responses, dt_ms=5.0)
    except REFUSALS as error:
        assert defect != "none", f"a sound dataset was refused: {error}"
        assert any(word in str(error) for word in ("stim", "respons", "neuron", "band")), str(error)
        return
    assert defect in ("none",), f"defect {defect!r} was accepted"
    torch.manual_seed(0)
    model = strfsolver.models.init("linear", n_freqs=F, n_lags=L, n_neurons=N)
    solver = strfsolver.solver.init("population", model=model, max_epochs=2, progress=False)
    solver.fit(make_loader(data, batch_size=2))
    assert all(math.isfinite(row["train_loss"]) for row in solver.log)


# ------------------------------------------------------------------ solver options
OPTION_VALUES = {
    "lr": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just("1e-3"), st.just(None)),
    "weight_decay": st.one_of(st.floats(-1, 1), st.just(-0.5)),
    "patience": st.one_of(st.integers(-3, 5), st.none(), st.just(2.5)),
    "max_epochs": st.one_of(st.integers(-2, 3), st.just("3")),
    "monitor": st.sampled_from(["val_cc_norm", "val_loss", "train_loss", "seconds", "val_snr", "", "val_nope", 5]),
    "mode": st.sampled_from([None, "max", "min", "MAX", "up"]),
    "grad_clip": st.one_of(st.none(), st.floats(-1, 10)),
    "device": st.sampled_from([None, "cpu", "meta", "cuda:7", "gpu", 3]),
    "metrics": st.sampled_from([("cc", "cc_norm"), ("cc",), ("nope",), "cc", ()]),
}


@settings(settings.get_profile(PROFILE))
@given(st.dictionaries(st.sampled_from(sorted(OPTION_VALUES)), st.none(), max_size=4).flatmap(
    lambda keys: st.fixed_dictionaries({k: OPTION_VALUES[k] for k in keys})))
# the cases the generator has found before, kept so that every run tries them
@example({"device": "meta"})
@example({"device": "cuda:7"})
@example({"monitor": "val_loss", "mode": "max"})
@example({"monitor": "seconds"})
@example({"lr": float("nan")})
def test_solver_options_are_sound_or_refused_before_training(options):
    pop = synthetic_population(n_neurons=N, n_stims=4, n_repeats=2, n_freqs=F, n_lags=L, n_times=30, seed=1)
    train, valid = pop.dataset.subset([0, 1, 2]), pop.dataset.subset([3])
    model = strfsolver.models.init("linear", n_freqs=F, n_lags=L, n_neurons=N)
    try:
        solver = strfsolver.solver.init("population", model=model, progress=False, **options)
    except REFUSALS as error:
        message = str(error)
        assert any(key in message for key in options) or "device" in message or "metric" in message, message
        return
    try:
        solver.fit(make_loader(train, batch_size=2), make_loader(valid), max_epochs=2)
    except REFUSALS as error:
        assert solver.log == [], f"refused after training had started: {error}"
        return
    assert solver.log and all(math.isfinite(row["train_loss"]) for row in solver.log)


# ------------------------------------------------------------------ strfsolver fit configs
CONFIG_DEFECTS = {
    "none": {},
    "unknown key": {"learning_rate": 0.1},
    "model name": {"model": "LinearNonlinar"},
    "deepSTRF model name": {"model": "LinearNonlinear"},   # an alias of "ln": runs
    "model options list": {"model_options": [4]},
    "solver options type": {"solver_options": "fast"},
    "seeds": {"seeds": [-1]},
    "huge seed": {"seeds": [2**70]},
    "data path": {"data": "missing.npz"},
    "monitor": {"solver_options": {"max_epochs": 2, "monitor": "seconds"}},
    "val_loss monitor": {"solver_options": {"max_epochs": 2, "monitor": "val_loss"}},
    "n_lags": {"model_options": {"n_lags": "four"}},
}


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    pop = synthetic_population(n_neurons=N, n_stims=6, n_repeats=2, n_freqs=F, n_lags=L, n_times=30, seed=4)
    save_npz(folder / "data.npz", pop.dataset)
    return folder


@settings(settings.get_profile(PROFILE))
@given(st.sampled_from(sorted(CONFIG_DEFECTS)))
def test_a_fit_config_runs_or_exits_2_naming_the_key_and_writes_nothing(data_folder, defect):
    config = {"data": str(data_folder / "data.npz"), "logdir": str(data_folder / f"out_{abs(hash(defect))}"),
              "model": "linear", "solver": "population", "seeds": [0], "model_options": {"n_lags": L},
              "solver_options": {"max_epochs": 2}}
    config.update(CONFIG_DEFECTS[defect])
    path = data_folder / "config.json"
    path.write_text(json.dumps(config))
    before = snapshot(data_folder)
    code = cli.main(["fit", str(path), "--no-progress", "--no-plots"])
    if defect in ("none", "val_loss monitor", "deepSTRF model name"):
        assert code == 0
        assert (Path(config["logdir"]) / "summary.csv").is_file()
    else:
        assert code == 2, defect
        assert snapshot(data_folder) == before


# ------------------------------------------------------------------ saved estimator folders
@pytest.fixture(scope="module")
def saved_estimator(tmp_path_factory):
    from strfsolver.estimator import STRFEstimator

    pop = synthetic_population(n_neurons=N, n_stims=6, n_repeats=2, n_freqs=F, n_lags=L, n_times=30, seed=5)
    X = [s.T.numpy() for s in pop.dataset.stims]
    y = [r.permute(1, 2, 0).numpy() for r in pop.dataset.responses]
    est = STRFEstimator(model="ln", n_lags=L, max_epochs=2, random_state=0).fit(X, y)
    folder = tmp_path_factory.mktemp("est") / "saved"
    est.save(folder)
    return folder, X, est.predict(X)


@settings(settings.get_profile(PROFILE))
@given(st.data())
def test_a_corrupted_estimator_folder_loads_identically_or_is_refused(saved_estimator, tmp_path_factory, data):
    import shutil

    from strfsolver.estimator import STRFEstimator

    original, X, expected = saved_estimator
    folder = tmp_path_factory.mktemp("corrupt") / "saved"
    shutil.copytree(original, folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    target = data.draw(st.sampled_from(files))
    content = bytearray(target.read_bytes())
    position = data.draw(st.integers(0, len(content) - 1))
    content[position] = (content[position] + data.draw(st.integers(1, 255))) % 256
    target.write_bytes(bytes(content))
    try:
        loaded = STRFEstimator.load(folder)
    except REFUSALS:
        return
    got = loaded.predict(X)
    for a, b in zip(got if isinstance(got, list) else [got], expected if isinstance(expected, list) else [expected]):
        np.testing.assert_array_equal(a, b)
