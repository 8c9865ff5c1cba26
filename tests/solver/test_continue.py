"""recover(k, parts with "progress") then fit continues from epoch k: bit for bit, history kept, time summed;
recover("best", monitor=...) and strict=."""

import pytest
import torch
from torch import nn

import strfsolver
from solver_helpers import make_linear
from strfsolver.data import make_loader
from strfsolver.solver import PopulationSolver, checkpoint, penalties, recovery, schedules


class DroppedLinear(nn.Module):
    """The linear stand-in with dropout on its output: a fit that draws from the global RNG."""

    def __init__(self, seed):
        super().__init__()
        torch.manual_seed(seed)
        self.inner = make_linear(8, 6, 6)

    def forward(self, stims):
        return nn.functional.dropout(self.inner(stims), p=0.2, training=self.training)


def _loaders(splits):
    train, valid = splits
    return make_loader(train, batch_size=3, shuffle=True, seed=1), make_loader(valid, batch_size=4)


def _solver(seed=0, **options):
    # a schedule, a plateau rule and an activity penalty: everything that has a state must be recovered
    options = {"lr": 2e-2, "patience": None, "plateau_patience": 1, "progress": False,
               "penalties": [penalties.init("activity", baseline=0.5, weight=0.1, stop_iter=10)],
               "schedule": [schedules.init("milestones", values=(0.0, 1e-4), milestones=(3,), target="weight_decay")], **options}
    return PopulationSolver(model=DroppedLinear(seed), **options)


def _rows(log):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in log]


def _same_parameters(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))


def test_recover_then_fit_continues_the_run_bit_for_bit(splits, tmp_path):
    full = _solver()
    full.fit(*_loaders(splits), max_epochs=6, logdir=tmp_path / "run", keep_every=2)
    last = checkpoint.load_checkpoint(tmp_path / "run" / checkpoint.LAST)

    again = _solver(seed=9)  # another initial model: everything comes from the checkpoint
    again.recover(2, parts=recovery.PARTS, logdir=tmp_path / "run")
    assert again.training_state_.epoch == 2 and len(again.log) == 2 and isinstance(again.recovered_, recovery.Continuation)
    again.fit(*_loaders(splits), max_epochs=6)
    assert again.recovered_ is None  # the continuation is used once
    assert _same_parameters(again, full)
    assert _rows(again.log) == _rows(full.log) and [row["epoch"] for row in again.log] == list(range(6))
    assert again.training_state_.step == full.training_state_.step and again.best_epoch_ == full.best_epoch_
    # the epochs' seconds are summed over both fits: the recovered ones are the first run's
    assert again.time_trained_ == pytest.approx(sum(row["seconds"] for row in again.log))
    assert again.log[0]["seconds"] == full.log[0]["seconds"]
    assert last["progress"]["time_trained"] == pytest.approx(sum(row["seconds"] for row in full.log))

    # the test can fail: without the loaders' and generators' states the continued run draws other batches and masks
    loose = _solver(seed=9)
    loose.recover(2, parts=("model", "optimizer", "schedulers", "penalties", "progress", "monitor", "history"), logdir=tmp_path / "run")
    loose.fit(*_loaders(splits), max_epochs=6)
    assert len(loose.log) == 6 and not _same_parameters(loose, full)

    # continuing into the run's own folder drops the abandoned epochs' states and writes them anew
    into = _solver(seed=9)
    into.recover(2, parts=recovery.PARTS, logdir=tmp_path / "run")
    into.fit(*_loaders(splits), max_epochs=4, logdir=tmp_path / "run", keep_every=2)
    assert recovery.indexed_checkpoints(tmp_path / "run") == [0, 2, 4]
    four = checkpoint.load_checkpoint(recovery.indexed_path(tmp_path / "run", 4))
    assert _rows(four["history"])[:3] == _rows(full.log[:3])
    assert four["history"][3] == {**full.log[3], "seconds": four["history"][3]["seconds"], "stop_reason": "max_epochs"}


def test_without_progress_or_after_another_load_the_fit_starts_afresh(splits, tmp_path):
    _solver().fit(*_loaders(splits), max_epochs=3, logdir=tmp_path, keep_every=1)
    model_only = _solver(seed=4)
    model_only.recover(2, parts=("model",), logdir=tmp_path)
    assert model_only.recovered_ is None
    assert [row["epoch"] for row in model_only.fit(*_loaders(splits), max_epochs=2).log] == [0, 1]
    replaced = _solver(seed=4)
    replaced.recover(2, parts=recovery.PARTS, logdir=tmp_path)
    replaced.load(tmp_path, filename="checkpoints/000001.safetensors")  # a later load replaces what recover put back
    assert replaced.recovered_ is None and replaced.training_state_.epoch == 1
    assert [row["epoch"] for row in replaced.fit(*_loaders(splits), max_epochs=2).log] == [0, 1]


def test_resumed_fits_sum_their_training_time(splits, tmp_path):
    first = _solver()
    first.fit(*_loaders(splits), max_epochs=2, logdir=tmp_path)
    resumed = _solver()
    resumed.fit(*_loaders(splits), max_epochs=4, logdir=tmp_path, resume=True)
    assert len(resumed.log) == 4 and resumed.time_trained_ > first.time_trained_ > 0
    assert resumed.time_trained_ == pytest.approx(sum(row["seconds"] for row in resumed.log))


def test_recover_the_best_epoch_by_another_key(splits, tmp_path):
    snapshots = {}

    class Snapshot(PopulationSolver):
        def on_epoch_end(self, epoch):
            snapshots[epoch["epoch"]] = {k: v.clone() for k, v in self.model.state_dict().items()}

    # a high rate overshoots: the best epoch by val_cc_norm (the fit's monitor) is not the best by train_loss
    fitted = Snapshot(model=make_linear(8, 6, 6), lr=0.3, patience=None, plateau_patience=0, max_epochs=6, progress=False)
    fitted.fit(*_loaders(splits), logdir=tmp_path, keep_every=1)
    by_loss = min(fitted.log, key=lambda row: row["train_loss"])["epoch"]
    by_val_loss = min(fitted.log, key=lambda row: row["val_loss"])["epoch"]
    assert by_loss != fitted.best_epoch_, (by_loss, fitted.best_epoch_)
    for monitor, epoch in (("train_loss", by_loss), ("val_loss", by_val_loss), ("val_cc_norm", fitted.best_epoch_)):
        fitted.recover("best", monitor=monitor)
        assert all(torch.equal(v, snapshots[epoch][k]) for k, v in fitted.model.state_dict().items()), monitor
    # an epoch whose state was not kept is named, with the kept indices
    recovery.indexed_path(tmp_path, by_loss + 1).unlink()
    with pytest.raises(FileNotFoundError, match=rf"best epoch by 'train_loss' \(min\) is {by_loss} .*kept indices .* are \["):
        fitted.recover("best", monitor="train_loss")
    with pytest.raises(ValueError, match="use it with which='best'"):
        fitted.recover(2, monitor="val_loss")
    with pytest.raises(KeyError, match="no epoch of the history .* has a value of 'train_cc'"):
        fitted.recover("best", monitor="train_cc")


class Plain(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = make_linear(8, 6, 6)

    def forward(self, stims):
        return self.inner(stims)


class WithGain(Plain):
    """Plain with one more tensor, which a Plain checkpoint lacks."""

    def __init__(self):
        super().__init__()
        self.gain = nn.Parameter(torch.full((6,), 2.0))

    def forward(self, stims):
        return self.inner(stims) * self.gain[:, None, None]


def test_strict_refuses_missing_parts_and_tensors_and_loads_what_exists_otherwise(splits, tmp_path):
    plain = PopulationSolver(model=Plain(), lr=1e-2, progress=False, patience=None)
    plain.fit(*_loaders(splits), max_epochs=1, logdir=tmp_path, keep_every=1)
    state = checkpoint.load_checkpoint(recovery.indexed_path(tmp_path, 1))
    del state["optimizer"]
    checkpoint.save_checkpoint(recovery.indexed_path(tmp_path, 1), state)  # a checkpoint without an optimizer part

    gained = PopulationSolver(model=WithGain(), progress=False)
    with pytest.raises(ValueError, match=r"has no \['optimizer'\] part"):
        gained.recover(1, parts=("model", "optimizer"), logdir=tmp_path)
    with pytest.raises(ValueError, match="missing.*gain"):  # the model's own tensor the checkpoint lacks
        gained.recover(1, parts=("model",), logdir=tmp_path)
    with pytest.warns(UserWarning, match="recovering the others"):
        gained.recover(1, parts=("model", "optimizer"), logdir=tmp_path, strict=False)
    assert all(torch.equal(gained.model.state_dict()[k], v) for k, v in state["model"].items())
    assert torch.equal(gained.model.gain, torch.full((6,), 2.0))


@pytest.mark.parametrize("name", ["single-cell", "per-cell-best"])
def test_per_neuron_solvers_continue_bit_for_bit_with_each_neurons_bookkeeping(name, splits, tmp_path):
    def build(seed):
        torch.manual_seed(seed)
        model = strfsolver.models.init("ln", n_freqs=8, n_lags=6, n_neurons=6)
        return strfsolver.solver.init(name, model=model, lr=2e-2, patience=3, progress=False)

    full = build(0)
    full.fit(*_loaders(splits), max_epochs=6, logdir=tmp_path, keep_every=1)
    again = build(7)
    again.recover(2, parts=recovery.PARTS, logdir=tmp_path)
    again.fit(*_loaders(splits), max_epochs=6)
    assert _same_parameters(again, full) and len(again.log) == len(full.log) > 3
    assert torch.equal(again.best_epochs_, full.best_epochs_)
    assert _rows(again.log) == _rows(full.log)


def test_recover_best_of_a_per_neuron_fit_gives_the_model_the_fit_ended_with(splits, tmp_path):
    """"best" of "per-cell-best" is each neuron at its own best epoch, as fit and load(logdir) leave it,
    not the best checkpoint alone (the epoch best over all neurons)."""
    def build():
        torch.manual_seed(0)
        model = strfsolver.models.init("ln", n_freqs=8, n_lags=6, n_neurons=6)
        return strfsolver.solver.init("per-cell-best", model=model, lr=5e-2, patience=None, progress=False)

    fitted = build().fit(*_loaders(splits), max_epochs=8, logdir=tmp_path)
    assert len(set(fitted.best_epochs_.tolist())) > 1  # the neurons peaked at different epochs
    recovered = build()
    recovered.recover("best", logdir=tmp_path)
    assert _same_parameters(recovered, fitted)
    epoch_best = build()
    epoch_best.load(tmp_path, filename=checkpoint.BEST)  # the file alone: one epoch for every neuron
    assert not _same_parameters(epoch_best, fitted)


def test_a_continued_fit_drops_the_abandoned_epochs_of_a_log_not_recovered(splits, tmp_path):
    whole = _solver()
    whole.fit(*_loaders(splits), max_epochs=4, logdir=tmp_path, keep_every=1)
    whole.recover(2, parts=("model", "optimizer", "progress"), logdir=tmp_path)  # the same solver, without "history"
    whole.fit(*_loaders(splits), max_epochs=4)
    assert [row["epoch"] for row in whole.log] == [0, 1, 2, 3]


def test_resume_and_a_pending_recover_are_not_both_taken(splits, tmp_path):
    _solver().fit(*_loaders(splits), max_epochs=3, logdir=tmp_path, keep_every=1)
    again = _solver()
    again.recover(1, parts=recovery.PARTS, logdir=tmp_path)
    with pytest.raises(ValueError, match="resume=True and the recover\\(\\) of .*000001.safetensors both say where this fit starts"):
        again.fit(*_loaders(splits), max_epochs=3, logdir=tmp_path, resume=True)
    assert [row["epoch"] for row in again.fit(*_loaders(splits), max_epochs=3).log] == [0, 1, 2]  # the recover still holds
