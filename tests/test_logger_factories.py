"""The logger protocol as deepSTRF has it: per-seed TensorBoard and W&B loggers (tested with fakes), per-neuron summaries, finalize."""

import sys
import types

import numpy as np
import pytest
import torch

import strfsolver
from strfsolver.data import make_loader, synthetic_population
from strfsolver.loggers.logger_factories import tensorboard_logger_factory, wandb_logger_factory


class FakeWriter:
    instances = []

    def __init__(self, log_dir=None, flush_secs=30):
        self.log_dir, self.scalars, self.histograms, self.summaries, self.closed = log_dir, {}, {}, [], False
        self.file_writer = types.SimpleNamespace(add_summary=self.summaries.append)
        FakeWriter.instances.append(self)

    def add_scalar(self, key, value, global_step=None):
        self.scalars.setdefault(key, {})[global_step] = value

    def add_histogram(self, key, values, global_step=None):
        self.histograms.setdefault(key, {})[global_step] = np.asarray(values)

    def flush(self):
        pass

    def close(self):
        self.closed = True


@pytest.fixture
def fake_tensorboard(monkeypatch):
    FakeWriter.instances = []
    module = types.ModuleType("torch.utils.tensorboard")
    module.SummaryWriter = FakeWriter
    summary = types.ModuleType("torch.utils.tensorboard.summary")
    summary.hparams = lambda config, metrics: ("experiment", config, metrics)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", module)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard.summary", summary)
    return FakeWriter


class FakeRun:
    def __init__(self, **kwargs):
        self.init_kwargs, self.logged, self.summary, self.finished = kwargs, [], {}, 0

    def log(self, row, step=None):
        self.logged.append((row, step))

    def finish(self):
        self.finished += 1


@pytest.fixture
def fake_wandb(monkeypatch):
    module = types.ModuleType("wandb")
    module.runs = []
    module.init = lambda **kwargs: module.runs.append(FakeRun(**kwargs)) or module.runs[-1]
    module.Histogram = lambda values: ("histogram", np.asarray(values))
    monkeypatch.setitem(sys.modules, "wandb", module)
    return module


@pytest.fixture(scope="module")
def data():
    dataset = synthetic_population(n_neurons=5, n_stims=9, n_repeats=3, n_freqs=6, n_lags=4, n_times=50, seed=4).dataset
    train, valid, test = dataset.split([0.6, 0.2, 0.2], seed=0)
    return make_loader(train, batch_size=3), make_loader(valid, batch_size=2), make_loader(test, batch_size=2)


def _model(seed=0):
    return strfsolver.models.init("linear", n_freqs=6, n_lags=4, n_neurons=5)


def test_per_epoch_percentiles_over_neurons_and_final_per_neuron_results(fake_tensorboard, data, tmp_path):
    train, valid, test = data
    (logger,) = tensorboard_logger_factory(tmp_path, group="ln")(3)
    solver = strfsolver.solver.init("population", model=_model(), lr=1e-2, max_epochs=3, patience=None, progress=False, loggers=[logger])
    solver.fit(train, valid, test_loader=test, validate_initial=True)
    writer = fake_tensorboard.instances[-1]
    assert writer.log_dir == str(tmp_path / "ln" / "ln-seed3") and writer.closed
    history = solver.history_neurons_
    for row, epoch in enumerate(history["epoch"].tolist()):
        values = history["val_cc"][row].numpy()
        for stat, q in (("p10", 10), ("p50", 50), ("p90", 90)):
            assert writer.scalars[f"val_cc/{stat}"][epoch] == pytest.approx(np.nanpercentile(values, q), rel=1e-9)
        assert writer.scalars["val_cc/mean"][epoch] == pytest.approx(np.nanmean(values), rel=1e-9)
        np.testing.assert_allclose(np.sort(writer.histograms["val_cc/neurons"][epoch]), np.sort(values[np.isfinite(values)]))
    # finalize: the best state evaluated on validation and test, per neuron
    best = solver.best_epoch_
    for split, loader in (("valid", valid), ("test", test)):
        expected = solver.validation(loader)["cc"].numpy()
        (got,) = writer.histograms[f"final/neurons/{split}/val_cc"].values()
        np.testing.assert_allclose(np.sort(got), np.sort(expected[np.isfinite(expected)]), rtol=1e-12)
        (mean,) = writer.scalars[f"final/final_{split}_cc"].values()
        assert mean == pytest.approx(float(np.nanmean(expected)), rel=1e-9)
    torch.testing.assert_close(solver.final_validation_["valid"]["cc"], history["val_cc"][1 + best])


def test_wandb_factory_names_runs_per_seed_and_honours_wandb_mode(fake_wandb, data, monkeypatch, tmp_path):
    train, valid, test = data
    monkeypatch.setenv("WANDB_MODE", "disabled")
    factory = wandb_logger_factory("strf", group="ln", config={"lr": 1e-2}, logdir=tmp_path)
    ms = strfsolver.solver.init("multi-seed", model_factory=_model, n_seeds=2, logger_factory=factory, max_epochs=2, lr=1e-2)
    result = ms.fit(train, valid, test).result_
    assert [run.init_kwargs["name"] for run in fake_wandb.runs] == ["ln-seed0", "ln-seed1"]
    for run, seed_run in zip(fake_wandb.runs, result.runs):
        assert run.init_kwargs["mode"] == "disabled" and run.init_kwargs["group"] == "ln"
        assert run.init_kwargs["config"] == {"lr": 1e-2, "seed": seed_run.seed}
        assert run.init_kwargs["dir"] == str(tmp_path / "ln" / f"ln-seed{seed_run.seed}") and run.finished == 1
        # per epoch: the mean over neurons next to the epoch dict's value, at the same step
        stats = {step: row for row, step in run.logged if "val_cc/mean" in row}
        for entry in seed_run.history:
            assert stats[entry["epoch"]]["val_cc/mean"] == pytest.approx(entry["val_cc"], rel=1e-9)
        # finalize got the best state's per-neuron test values, the ones the multi-seed result keeps
        (final,) = [row for row, step in run.logged if "final/neurons/test/val_cc" in row]
        expected = seed_run.neurons["test"]["cc"].numpy()
        np.testing.assert_allclose(final["final/neurons/test/val_cc"][1], expected[np.isfinite(expected)], rtol=1e-12)
    monkeypatch.delenv("WANDB_MODE")
    (logger,) = wandb_logger_factory("strf", group="ln")(0)
    assert logger.run.init_kwargs["mode"] == "offline"
    with pytest.raises(ValueError, match="group must be"):
        wandb_logger_factory("strf", group="a/b")
