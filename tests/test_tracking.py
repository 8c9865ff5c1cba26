"""Experiment tracking: auto_config, slugs, TensorBoard and wandb loggers."""

import json
import math
import re
import sys
import types

import numpy as np
import pytest
import torch

import strfsolver
from strfsolver.loggers import tracking
from strfsolver.data import make_loader, synthetic_population
from strfsolver.loggers.tracking import TensorBoardLogger, WandbLogger, auto_config, slug_from_config


def small_model():
    return strfsolver.models.init("ln", n_freqs=6, n_lags=4, n_neurons=5)


def test_auto_config_is_json_and_names_every_knob():
    model = small_model()
    solver_kwargs = {
        "lr": 1e-2,
        "optimizer": lambda params: torch.optim.SGD(params, lr=0.1),
        "device": torch.device("cpu"),
        "patience": None,
        "min_delta": float("nan"),
        "penalties": [strfsolver.solver.penalties.init("l2", weight=1e-3)],
        "criterion": strfsolver.losses.init("poisson"),
        "init_weights": torch.zeros(100),
        "model": model,  # the model is described under "model", not repeated
    }
    config = auto_config(model, solver_kwargs, "synthetic-5", {"fold": 2, "tags": ("a", "b")})
    text = json.dumps(config, allow_nan=False)  # strict JSON: NaN became a string
    assert json.loads(text) == config
    assert config["model"]["name"] == "ln"
    assert config["model"]["class"] == "strfsolver.models.linear.LNModel"
    assert config["model"]["config"]["n_neurons"] == 5 and config["model"]["config"]["n_lags"] == 4
    assert config["model"]["n_parameters"] == sum(p.numel() for p in model.parameters())
    solver = config["solver"]
    assert "model" not in solver
    assert solver["lr"] == 0.01 and solver["patience"] is None and solver["min_delta"] == "nan"
    assert solver["device"] == "cpu"
    assert re.fullmatch(r"test_tracking\.test_auto_config_is_json_and_names_every_knob\.<locals>\.<lambda>", solver["optimizer"])
    assert solver["init_weights"] == "Tensor(shape=[100], dtype=float32)"
    # objects become their (address-free) repr: readable, and equal for equal settings
    assert solver["penalties"][0].startswith("L2Penalty(weight=0.001")
    assert solver["criterion"] == "PoissonLoss(log_input=False, reduction='mean', eps=1e-08)"
    assert " at 0x" not in text  # no memory address: the same knobs give the same config
    assert config["dataset"] == "synthetic-5"
    assert config["extra"] == {"fold": 2, "tags": ["a", "b"]}
    # the same knobs give the same config
    assert auto_config(model, solver_kwargs, "synthetic-5", {"fold": 2, "tags": ("a", "b")}) == config


def test_auto_config_rejects_non_dicts():
    with pytest.raises(ValueError, match="solver_kwargs must be a dict .* got list"):
        auto_config(small_model(), [("lr", 1)])
    with pytest.raises(ValueError, match="model must be an nn.Module, a registered model name or None, got int"):
        auto_config(3)


def test_slug_is_short_deterministic_and_safe():
    config = auto_config(small_model(), {"solver": "population", "lr": 0.01}, "synthetic", {"fold": 0, "note": "a b/c"})
    slug = slug_from_config(config)
    assert slug == slug_from_config(json.loads(json.dumps(config)))
    assert re.fullmatch(r"ln-population-fold=0-note=a_b_c-[0-9a-f]{8}", slug), slug
    other = dict(config, solver={"solver": "population", "lr": 0.02})
    assert slug_from_config(other) != slug and slug_from_config(other)[:-8] == slug[:-8]
    assert slug_from_config(config, keys=["solver.lr"]).startswith("ln-population-lr=0.01-")
    long = slug_from_config(dict(config, extra={"x" * 200: 1}), max_length=20)
    assert len(long) <= 20 + 9
    with pytest.raises(ValueError, match="slug key 'solver.momentum' is not in the config"):
        slug_from_config(config, keys=["solver.momentum"])
    with pytest.raises(ValueError, match="JSON-serialisable"):
        slug_from_config({"x": object()})


def test_csv_and_jsonl_loggers_are_the_solver_ones():
    assert tracking.CSVLogger is strfsolver.loggers.files.CSVLogger
    assert tracking.JSONLinesLogger is strfsolver.loggers.files.JSONLinesLogger


def test_tensorboard_event_file_is_written_and_readable(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = synthetic_population(n_neurons=5, n_stims=8, n_repeats=4, n_freqs=6, n_lags=4, n_times=60, seed=2).dataset
    train, valid = data.split([0.75, 0.25], seed=0)
    model = small_model()
    config = auto_config(model, {"lr": 1e-2, "max_epochs": 3}, "synthetic", {"fold": 0})
    logger = TensorBoardLogger(tmp_path / "run", config=config)
    solver = strfsolver.solver.init("population", model=model, lr=1e-2, max_epochs=3, progress=False, loggers=[logger])
    history = solver.fit(make_loader(train, batch_size=2), make_loader(valid, batch_size=2)).log
    assert logger._closed  # the solver closed it

    # per-neuron values through finalize, as a user would after the fit
    extra = TensorBoardLogger(tmp_path / "neurons")
    per_neuron = torch.tensor([0.1, 0.5, float("nan"), 0.7, 0.2], dtype=torch.float64)
    extra.finalize({"best_epoch": 1, "val_cc": np.float64(0.4), "cc_norm": per_neuron, "fve": per_neuron.numpy()})
    extra.close()

    events = EventAccumulator(str(tmp_path / "run"), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    events.Reload()
    for key in ("train_loss", "val_loss", "val_cc", "val_cc_norm", "lr"):
        scalars = events.Scalars(key)
        assert [s.step for s in scalars] == [0, 1, 2]
        for scalar, row in zip(scalars, history):
            assert math.isclose(scalar.value, row[key], rel_tol=1e-6) or (math.isnan(scalar.value) and math.isnan(row[key]))
    best = solver.best_epoch_
    assert events.Scalars("final/best_epoch")[0].value == best
    assert math.isclose(events.Scalars("final/val_loss")[0].value, history[best]["val_loss"], rel_tol=1e-6)
    # hyperparameters with the final metrics, for the HPARAMS tab
    hparams = events.PluginTagToContent("hparams")
    assert set(hparams) >= {"_hparams_/experiment", "_hparams_/session_start_info", "_hparams_/session_end_info"}
    from tensorboard.plugins.hparams import plugin_data_pb2

    start = plugin_data_pb2.HParamsPluginData.FromString(hparams["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["solver/lr"].number_value == pytest.approx(0.01)
    assert start.hparams["model/name"].string_value == "ln"
    assert start.hparams["extra/fold"].number_value == 0

    hist = EventAccumulator(str(tmp_path / "neurons"), size_guidance={"histograms": 0, "scalars": 0})
    hist.Reload()
    for key in ("final/cc_norm", "final/fve"):
        value = hist.Histograms(key)[0].histogram_value
        assert value.num == 4  # the NaN neuron is left out
        assert value.min == pytest.approx(0.1) and value.max == pytest.approx(0.7)
        assert value.sum == pytest.approx(1.5)
    assert hist.Scalars("final/val_cc")[0].value == pytest.approx(0.4)


def test_tensorboard_missing_gives_the_install_hint(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match=r"pip install strfsolver\[tensorboard\]"):
        TensorBoardLogger(tmp_path)


def test_wandb_missing_gives_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ImportError, match=r"pip install strfsolver\[wandb\]"):
        WandbLogger("project")


class FakeRun:
    def __init__(self, **kwargs):
        self.init_kwargs, self.logged, self.summary, self.finished = kwargs, [], {}, 0

    def log(self, row, step=None):
        self.logged.append((row, step))

    def finish(self):
        self.finished += 1


def test_wandb_logger_offline_by_default(monkeypatch):
    fake = types.ModuleType("wandb")
    fake.init = lambda **kwargs: FakeRun(**kwargs)
    fake.Histogram = lambda values: ("histogram", list(values))
    monkeypatch.setitem(sys.modules, "wandb", fake)
    logger = WandbLogger("strf", config={"lr": 0.1}, name="run-1")
    run = logger.run
    assert run.init_kwargs["mode"] == "offline" and run.init_kwargs["project"] == "strf"
    assert run.init_kwargs["config"] == {"lr": 0.1} and run.init_kwargs["name"] == "run-1"
    logger({"epoch": 4, "train_loss": 0.5, "val_cc": torch.tensor(0.25), "note": "text"})
    assert run.logged == [({"train_loss": 0.5, "val_cc": 0.25}, 4)]
    logger.finalize({"best_epoch": 4, "val_cc": 0.25, "cc": torch.tensor([0.1, float("nan"), 0.3])})
    assert run.summary == {"final/best_epoch": 4.0, "final/val_cc": 0.25}
    (histograms, step), = run.logged[1:]
    kind, values = histograms["final/cc"]
    assert kind == "histogram" and values == pytest.approx([0.1, 0.3])
    logger.close()
    logger.close()
    assert run.finished == 1
    with pytest.raises(ValueError, match="mode must be 'offline', 'online' or 'disabled', got 'cloud'"):
        WandbLogger("strf", mode="cloud")
