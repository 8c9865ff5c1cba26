"""Custom solvers: a subclass that writes only _inference, one that replaces step."""

import json

import pytest
import torch

import strfsolver
from strfsolver.solver import Solver


class ExpSolver(Solver):
    """The model gives a log-rate; the prediction is its exponential."""

    def _inference(self, batch):
        return torch.exp(self.model(batch["stims"]))


def test_a_subclass_that_only_writes_inference(loaders, new_model):
    solver = ExpSolver(model=new_model(), criterion="poisson", lr=2e-2, max_epochs=8, patience=None, progress=False)
    history = solver.fit(*loaders).log
    assert len(history) == 8
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[solver.best_epoch_]["val_cc_norm"] == max(row["val_cc_norm"] for row in history)
    stims = torch.stack(loaders[0].dataset.stims[:2])
    with torch.no_grad():
        torch.testing.assert_close(solver.transform(stims), torch.exp(solver.model(stims)))


class HalfNeuronSolver(Solver):
    """Each step trains on a random half of the neurons (neuron dropout), its own way."""

    def _inference(self, batch):
        return self.model(batch["stims"])

    def step(self, batch):
        optimizer = self.ensure_optimizer()
        batch = self.prepare(batch)
        keep = torch.randperm(batch["responses"].shape[1])[: batch["responses"].shape[1] // 2]
        optimizer.zero_grad()
        pred = self._inference(batch)
        loss = self.criterion(pred[:, keep], batch["responses"][:, keep])
        loss.backward()
        optimizer.step()
        self.losses.append(loss.item())
        return {"loss": loss.item()}


def test_a_subclass_that_replaces_step(loaders, new_model):
    torch.manual_seed(0)
    solver = HalfNeuronSolver(model=new_model(), lr=2e-2, max_epochs=6, patience=None, progress=False)
    solver.losses = []
    history = solver.fit(*loaders).log
    steps = len(loaders[0])
    assert len(solver.losses) == 6 * steps
    # train_loss is the batch-size weighted mean of what step returned (batches of 3, 3 and 1 stimuli)
    sizes = [3, 3, 1]
    for epoch, row in enumerate(history):
        chunk = solver.losses[epoch * steps : (epoch + 1) * steps]
        assert row["train_loss"] == pytest.approx(sum(l * s for l, s in zip(chunk, sizes)) / 7, rel=1e-12)
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    # without "pred" in its result, train metrics cannot be tracked: said clearly
    solver.track_train_metrics = True
    with pytest.raises(ValueError, match="needs step\\(\\) to return the batch's prediction under 'pred'"):
        solver.fit(*loaders, max_epochs=1)


class Recorder:
    def __init__(self):
        self.rows, self.final, self.closed = [], None, False

    def __call__(self, row):
        self.rows.append(row)

    def finalize(self, final):
        self.final = final

    def close(self):
        self.closed = True


def test_loggers_and_the_epoch_hook(loaders, new_model, tmp_path):
    recorder = Recorder()
    seen = []

    class Hooked(strfsolver.solver.PopulationSolver):
        def on_epoch_end(self, row):
            seen.append(row["epoch"])

    csv_logger = strfsolver.loggers.CSVLogger(tmp_path / "h.csv")
    jsonl = strfsolver.loggers.JSONLinesLogger(tmp_path / "h.jsonl")
    solver = Hooked(model=new_model(), max_epochs=3, patience=None, progress=False, loggers=[recorder, csv_logger, jsonl])
    history = solver.fit(*loaders, valid_frequency=2).log
    assert recorder.rows == history and seen == [0, 1, 2] and recorder.closed
    assert recorder.final["best_epoch"] == solver.best_epoch_
    assert recorder.final["val_cc_norm"] == history[solver.best_epoch_]["val_cc_norm"]
    lines = (tmp_path / "h.csv").read_text().splitlines()
    assert lines[0].split(",") == ["epoch", "train_loss", "pred_mean", "pred_min", "pred_max", "lr", "seconds", "val_loss", "val_cc",
                                   "val_cc_norm", "stop_reason"]
    assert len(lines) == 4 and lines[1].endswith(",,,,")  # epoch 0 was not validated
    assert lines[-1].endswith(",max_epochs")  # the last epoch says why the fit ended
    lines = (tmp_path / "h.jsonl").read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[-1])["final"]["best_epoch"] == solver.best_epoch_


def test_loggers_are_closed_when_the_fit_fails(loaders, new_model):
    recorder = Recorder()
    def nan_loss(pred, responses):
        return pred.sum() * float("nan")

    solver = strfsolver.solver.PopulationSolver(model=new_model(), criterion=nan_loss, progress=False, loggers=[recorder])
    with pytest.raises(strfsolver.solver.TrainingDivergedError):
        solver.fit(*loaders)
    assert recorder.closed and recorder.final is None


def test_progress_bar_shows_loss_and_monitor(loaders, new_model, capsys):
    solver = strfsolver.solver.PopulationSolver(model=new_model(), max_epochs=2, progress=True)
    solver.fit(*loaders)
    err = capsys.readouterr().err
    assert "2/2" in err and "loss=" in err and "val_cc_norm=" in err
