"""The fit loop's contract at its edges: resumes, closed-form fits, hook names, options changed after construction."""

import pytest
import torch

import strfsolver
from strfsolver.data import make_loader, synthetic_population
from strfsolver.solver import HookAliases, PopulationSolver, checkpoint, recovery


@pytest.fixture(scope="module")
def data():
    pop = synthetic_population(n_neurons=4, n_stims=8, n_repeats=3, n_freqs=6, n_lags=4, n_times=60, seed=9)
    return pop.dataset.subset(range(6)), pop.dataset.subset([6, 7])


def linear(seed=0):
    torch.manual_seed(seed)
    return strfsolver.models.init("linear", n_freqs=6, n_lags=4, n_neurons=4)


def test_a_resume_with_another_monitor_goes_on_with_it_and_records_it(data, tmp_path):
    train, valid = data
    loaders = lambda: (make_loader(train, batch_size=2, shuffle=True, seed=0), make_loader(valid))
    PopulationSolver(model=linear(), monitor="val_cc", lr=1e-2, progress=False).fit(*loaders(), max_epochs=2, logdir=tmp_path)
    resumed = PopulationSolver(model=linear(), monitor="val_loss", lr=1e-2, progress=False)
    with pytest.warns(UserWarning, match="monitor: 'val_cc' in the checkpoint, 'val_loss' now"):
        resumed.fit(*loaders(), max_epochs=4, logdir=tmp_path, resume=True)
    assert (resumed.monitor_, resumed.mode_) == ("val_loss", "min")
    assert checkpoint.load_checkpoint(tmp_path / checkpoint.LAST)["monitor"] == ["val_loss", "min"]


def test_a_ridge_fit_with_resume_solves_afresh(data, tmp_path):
    train, valid = data
    ridge = lambda: strfsolver.solver.init("ridge", model=linear(), cv=2, progress=False)
    first = ridge().fit(make_loader(train), make_loader(valid), logdir=tmp_path)
    other = train.subset([0, 1, 2, 3])
    again = ridge().fit(make_loader(other), make_loader(valid), logdir=tmp_path, resume=True)
    fresh = ridge().fit(make_loader(other), make_loader(valid))
    assert torch.equal(again.model.strf(), fresh.model.strf()) and not torch.equal(again.model.strf(), first.model.strf())


@pytest.mark.parametrize("every", [1, 3])
def test_a_ridge_fit_keeps_its_solved_state_whatever_the_period(data, tmp_path, every):
    train, valid = data
    fitted = strfsolver.solver.init("ridge", model=linear(), cv=2, progress=False)
    fitted.fit(make_loader(train), make_loader(valid), logdir=tmp_path, keep_every=every)
    assert recovery.indexed_checkpoints(tmp_path) == [0, 1]
    solved = fitted.model.strf().clone()
    fitted.recover(1)
    assert torch.equal(fitted.model.strf(), solved)


def test_a_two_argument_on_epoch_end_of_a_ported_base_class_gets_the_epoch(data):
    train, valid = data
    seen = []

    class PortedBase(HookAliases, PopulationSolver):
        def on_epoch_end(self, epoch, epoch_dict):
            seen.append((epoch, epoch_dict["epoch"]))

    class Ported(PortedBase):
        pass

    Ported(model=linear(), max_epochs=2, progress=False).fit(make_loader(train), make_loader(valid))
    assert seen == [(0, 0), (1, 1)]


@pytest.mark.parametrize("body, message", [
    ({"_after_update": lambda self: None}, r"defines \['_after_update'\], which no fit calls any more"),
    ({"compute_loss": lambda self, pred, batch: pred.sum()}, r"defines \['compute_loss'\], the names of deepSTRF.*HookAliases"),
    ({"evaluate": lambda self, loader: {}}, r"defines \['evaluate'\]"),
    ({"on_epoch_end": lambda self, epoch, row: None}, r"on_epoch_end\(epoch, epoch_dict\)"),
])
def test_a_method_no_fit_would_call_is_refused_when_the_class_is_made(body, message):
    with pytest.raises(TypeError, match=message):
        type("Old", (PopulationSolver,), body)


def test_the_mixin_after_the_solver_is_refused():
    with pytest.raises(TypeError, match="has HookAliases after Solver among its bases"):
        type("Late", (PopulationSolver, HookAliases), {"compute_loss": lambda self, pred, batch: pred.sum()})


def test_an_unused_option_set_after_construction_is_refused_at_fit(data):
    train, valid = data
    ridge = strfsolver.solver.init("ridge", model=linear(), cv=2, progress=False, penalties=[], schedule=[])
    ridge.patience = 5
    with pytest.raises(ValueError, match="RidgeSolver does not use patience"):
        ridge.fit(make_loader(train), make_loader(valid))
    assert ridge.log == []


def test_a_steps_prediction_is_released_before_the_next_step(data):
    """The epoch loop holds no step's (B, N, T) prediction into the next step, where it would add to the peak."""
    import weakref

    alive_at_next_step = []

    class Watching(PopulationSolver):
        previous = None

        def step(self, batch):
            if self.previous is not None:
                alive_at_next_step.append(self.previous() is not None)
            out = super().step(batch)
            self.previous = weakref.ref(out["pred"])
            return out

    solver = Watching(model=linear(), max_epochs=2, patience=None, progress=False, monitor="train_loss")
    solver.fit(make_loader(data[0], batch_size=2, shuffle=True, seed=0))
    assert len(alive_at_next_step) == 5 and not any(alive_at_next_step)
