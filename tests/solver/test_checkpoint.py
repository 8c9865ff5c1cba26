"""Checkpoints: files written with logdir, bit-exact resume, refusal of misfits."""

import json

import pytest
import torch
from torch.utils.data import DataLoader

import strfsolver
from strfsolver.data import make_loader, neural_collate
from strfsolver.solver import PopulationSolver, checkpoint, penalties, schedules


def _solver(model, **options):
    settings = dict(
        model=model,
        lr=1e-2,
        patience=None,
        progress=False,
        penalties=[penalties.init("l2-init", weight=1e-3)],
        schedule=schedules.init("exponential-rate", start=2e-2, gamma=0.9),
    )
    settings.update(options)
    return PopulationSolver(**settings)


def _params(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _strip_seconds(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def _assert_bit_equal(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.mark.parametrize("kind", ["padded", "dataloader"])
def test_resume_after_an_interruption_is_bit_exact(kind, splits, new_model, tmp_path):
    train, valid = splits

    def loaders():
        if kind == "padded":
            return make_loader(train, batch_size=2, shuffle=True, seed=4), make_loader(valid, batch_size=2)
        # a plain DataLoader draws its shuffle from the global torch RNG, which the checkpoint restores
        return (
            DataLoader(train, batch_size=2, shuffle=True, collate_fn=neural_collate),
            DataLoader(valid, batch_size=2, collate_fn=neural_collate),
        )

    torch.manual_seed(123)
    full = _solver(new_model(seed=7))
    full_history = full.fit(*loaders(), max_epochs=10, logdir=tmp_path / "full").log
    full_last = checkpoint.load_checkpoint(tmp_path / "full" / checkpoint.LAST)

    torch.manual_seed(123)
    first = _solver(new_model(seed=7))
    first.fit(*loaders(), max_epochs=5, logdir=tmp_path / "cut")
    # something else uses the random generators between the two runs
    torch.rand(17), torch.manual_seed(999)
    resumed = _solver(new_model(seed=1))  # other initial values, overwritten by the checkpoint
    history = resumed.fit(*loaders(), max_epochs=10, logdir=tmp_path / "cut", resume=True).log

    _assert_bit_equal(_params(resumed.model), _params(full.model))
    resumed_last = checkpoint.load_checkpoint(tmp_path / "cut" / checkpoint.LAST)
    _assert_bit_equal(resumed_last["model"], full_last["model"])
    assert _strip_seconds(history) == _strip_seconds(full_history)
    assert len(history) == 10 and resumed.best_epoch_ == full.best_epoch_
    # the schedule and the optimizer state continued where they were
    assert history[-1]["lr"] == pytest.approx(2e-2 * 0.9**9, rel=1e-12)
    assert resumed.optimizer.state_dict()["state"][0]["step"] == full.optimizer.state_dict()["state"][0]["step"]


def test_logdir_holds_safe_best_and_last_states(loaders, new_model, tmp_path):
    solver = _solver(new_model())
    saved_epochs = []
    solver.fit(*loaders, max_epochs=4, logdir=tmp_path, save_frequency=3, save_hook=lambda epoch, s: saved_epochs.append(epoch))
    assert saved_epochs == [2, 3]  # every 3 epochs, and at the end
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [checkpoint.BEST, checkpoint.LAST]  # no temporary file left behind
    # plain safetensors with a JSON header: no pickle anywhere
    raw = (tmp_path / checkpoint.LAST).read_bytes()
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    assert "strfsolver_state" in header["__metadata__"]
    last = checkpoint.load_checkpoint(tmp_path / checkpoint.LAST)
    best = checkpoint.load_checkpoint(tmp_path / checkpoint.BEST)
    assert last["progress"]["epoch"] == 4 and len(last["history"]) == 4
    assert best["progress"]["epoch"] == solver.best_epoch_ + 1
    _assert_bit_equal(best["model"], _params(solver.model))
    assert set(last["loaders"]) == {"train", "valid"} and last["loaders"]["train"]["epoch"] == 4
    assert {"python", "numpy", "torch"} <= set(last["rng"])


def test_save_and_load_round_trip(loaders, new_model, tmp_path):
    solver = _solver(new_model())
    solver.fit(*loaders, max_epochs=2)
    path = solver.save(tmp_path, filename="mine.safetensors")
    assert path == tmp_path / "mine.safetensors"
    other = _solver(new_model(seed=3))
    other.load(tmp_path, filename="mine.safetensors")
    _assert_bit_equal(_params(other.model), _params(solver.model))
    assert other.log == solver.log and other.best_epoch_ == solver.best_epoch_
    ref_a = solver.penalties[0].reference
    ref_b = other.penalties[0].reference
    _assert_bit_equal(ref_a, ref_b)


def test_loading_into_a_model_of_another_shape_names_the_tensors(loaders, new_model, tmp_path):
    solver = _solver(new_model())
    solver.fit(*loaders, max_epochs=1, logdir=tmp_path)
    wrong = PopulationSolver(model=new_model(n_neurons=4), progress=False)
    with pytest.raises(ValueError) as info:
        wrong.load(tmp_path, filename=checkpoint.LAST)
    message = str(info.value)
    own = wrong.model.state_dict()
    saved = solver.model.state_dict()
    mismatching = [name for name in own if own[name].shape != saved[name].shape]
    assert mismatching
    for name in mismatching:
        assert repr(name) in message
        assert str(tuple(saved[name].shape)) in message and str(tuple(own[name].shape)) in message
    # a resumed fit of that model is refused at its start, before the checkpoint is read: the data do not fit it either
    with pytest.raises(ValueError, match="the model has n_neurons=4 but the training data have 6 neurons"):
        wrong.fit(*loaders, max_epochs=2, logdir=tmp_path, resume=True)


def test_resume_without_a_checkpoint_starts_afresh_and_needs_a_logdir(loaders, new_model, tmp_path):
    solver = _solver(new_model())
    history = solver.fit(*loaders, max_epochs=2, logdir=tmp_path / "new", resume=True).log
    assert len(history) == 2
    with pytest.raises(ValueError, match="resume=True needs the logdir"):
        solver.fit(*loaders, max_epochs=2, resume=True)


def test_a_finished_run_resumed_trains_no_further(loaders, new_model, tmp_path):
    solver = _solver(new_model())
    solver.fit(*loaders, max_epochs=3, logdir=tmp_path)
    before = _params(solver.model)
    again = _solver(new_model(seed=5))
    history = again.fit(*loaders, max_epochs=3, logdir=tmp_path, resume=True).log
    assert len(history) == 3
    _assert_bit_equal(_params(again.model), before)


def test_not_a_checkpoint_is_refused(tmp_path):
    strfsolver.utils.io.save_state(tmp_path / "x.safetensors", {"a": torch.zeros(2)})
    with pytest.raises(ValueError, match="not a solver checkpoint"):
        checkpoint.load_checkpoint(tmp_path / "x.safetensors")
