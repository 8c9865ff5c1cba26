"""The command-line workflow around a fit: device key, named validation/test stimuli, loggers,
the saved model, ``strfsolver predict`` / ``evaluate`` and ``--resume``."""

import csv
import json

import numpy as np
import pytest
import torch

from strfsolver.app import cli
from strfsolver.data import load_npz, save_npz, synthetic_population
from strfsolver.models import from_pretrained

SOLVER = {"lr": 0.01, "max_epochs": 3, "patience": 10}


@pytest.fixture
def folder(tmp_path):
    population = synthetic_population(n_neurons=3, n_stims=6, n_repeats=3, n_freqs=4, n_lags=3, n_times=40, seed=4)
    save_npz(tmp_path / "data.npz", population.dataset, neuron_ids=["x", "y", "z"], stim_names=[f"song{i}" for i in range(6)])
    save_npz(tmp_path / "song2.npz", population.dataset.subset([2]), neuron_ids=["x", "y", "z"], stim_names=["song2"])
    return tmp_path


def write(folder, **entries):
    config = {"data": "data.npz", "logdir": "out", "model": "ln", "model_options": {"n_lags": 3}, "solver_options": dict(SOLVER)}
    config.update(entries)
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder / "config.json")


def test_named_stimuli_saved_model_predict_and_evaluate(folder, capsys):
    config = write(folder, valid_stimuli=["song2"], test_stimuli=[5], device="cpu", loggers=["csv", "jsonl"])
    assert cli.main(["fit", config, "--no-progress", "--no-plots"]) == 0
    out = folder / "out"
    fitted = {row["neuron_id"]: row for row in csv.DictReader((out / "summary.csv").open())}
    # the saved model is the best seed's, loadable on its own
    model = from_pretrained(out / "model")
    assert model.n_neurons == 3
    # evaluated on the validation stimulus alone, it gives the validation scores of the fit
    assert cli.main(["evaluate", str(out / "model"), str(folder / "song2.npz"), "--out", str(folder / "eval.csv")]) == 0
    evaluated = {row["neuron_id"]: row for row in csv.DictReader((folder / "eval.csv").open())}
    for metric in ("cc", "cc_norm"):
        got = [float(evaluated[n][metric]) for n in "xyz"]
        want = [float(fitted[n][metric]) for n in "xyz"]
        assert np.isfinite(want).any() and np.allclose(got, want, atol=1e-4, equal_nan=True)
    assert cli.main(["predict", str(out / "model"), str(folder / "data.npz"), "--out", str(folder / "pred.npz")]) == 0
    with np.load(folder / "pred.npz") as predictions:
        assert list(predictions["stim_names"]) == [f"song{i}" for i in range(6)]
        data = load_npz(folder / "data.npz")
        with torch.no_grad():
            expected = model.eval()(data.stims[4][None])[0, :, 0].numpy()
        assert np.allclose(predictions["pred_4"], expected, atol=1e-6)
    # the loggers the config names wrote into the seed's folder
    history = list(csv.DictReader((out / "seeds" / "seed_0" / "history.csv").open()))
    assert len(history) == 3
    assert len((out / "seeds" / "seed_0" / "history.jsonl").read_text().splitlines()) >= 3


def test_tensorboard_logger_from_the_config(folder):
    pytest.importorskip("tensorboard")
    config = write(folder, loggers=[{"kind": "tensorboard", "flush_secs": 1}])
    assert cli.main(["fit", config, "--no-progress", "--no-plots"]) == 0
    assert list((folder / "out" / "seeds" / "seed_0" / "tensorboard").glob("events.out.tfevents.*"))


def test_resume_continues_the_interrupted_fit(folder):
    assert cli.main(["fit", write(folder), "--no-progress", "--no-plots"]) == 0
    first = list(csv.DictReader((folder / "out" / "history.csv").open()))
    longer = write(folder, solver_options=dict(SOLVER, max_epochs=5))
    assert cli.main(["fit", longer, "--no-progress", "--no-plots", "--resume"]) == 0
    resumed = list(csv.DictReader((folder / "out" / "history.csv").open()))
    assert len(resumed) == 5
    assert [r["train_loss"] for r in resumed[:3]] == [r["train_loss"] for r in first]


@pytest.mark.parametrize(
    "entries, message",
    [
        ({"device": "gpu-please"}, "config key 'device' must name a torch device"),
        ({"solver_options": {"device": "cpu"}}, "use the config key 'device' instead"),
        ({"valid_stimuli": ["song9"]}, "no stimulus named 'song9'; did you mean"),
        ({"test_stimuli": [17]}, "stimulus 17 is out of range"),
        ({"valid_stimuli": [1], "test_stimuli": ["song1"]}, "share stimulus 1"),
        ({"loggers": ["mlflow"]}, "unknown logger 'mlflow'"),
    ],
)
def test_bad_workflow_keys_exit_2_with_one_line(folder, capsys, entries, message):
    assert cli.main(["fit", write(folder, **entries), "--no-progress", "--no-plots"]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1


def test_predict_refuses_a_missing_model_folder(folder, capsys):
    assert cli.main(["predict", str(folder / "nothing"), str(folder / "data.npz"), "--out", str(folder / "p.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("command, out, message", [
    ("predict", "adir", "is a folder; give a file name for predictions"),
    ("evaluate", "adir", "is a folder; give a file name for the per-neuron table"),
    ("predict", "p.csv", "written to a .npz file"),
])
def test_predict_and_evaluate_check_the_output_path_before_any_work(folder, capsys, command, out, message):
    (folder / "adir").mkdir()
    # the model folder is checked after the output path: a bad --out is named even without a model
    assert cli.main([command, str(folder / "nothing"), str(folder / "data.npz"), "--out", str(folder / out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in (folder / "adir").iterdir()) == []


def test_compare_refuses_an_output_path_that_is_a_file(folder, capsys):
    (folder / "afile").write_text("mine")
    config = {"data": "data.npz", "cv": 2, "models": {"ridge": {"model": "linear", "model_options": {"n_lags": 3}}}}
    (folder / "compare.json").write_text(json.dumps(config))
    assert cli.main(["compare", str(folder / "compare.json"), "--logdir", str(folder / "afile")]) == 2
    assert "is a file" in capsys.readouterr().err and (folder / "afile").read_text() == "mine"


@pytest.mark.parametrize("spec, message", [
    ({"model": "LN", "model_options": {"n_lags": 3}}, "Did you mean 'ln'"),
    ({"model": "ln", "model_options": {"n_lags": 3}, "solver_options": {"lr": -1}}, "lr must be a number > 0"),
])
def test_compare_refuses_a_model_that_does_not_build_before_any_fit(folder, capsys, spec, message):
    config = {"data": "data.npz", "cv": 2, "models": {"ridge": {"model": "linear", "model_options": {"n_lags": 3}}, "bad": spec}}
    (folder / "compare.json").write_text(json.dumps(config))
    assert cli.main(["compare", str(folder / "compare.json"), "--logdir", str(folder / "cmp"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "spec 'bad' does not build" in err and message in err and len(err.strip().splitlines()) == 1
    assert not (folder / "cmp").exists()
