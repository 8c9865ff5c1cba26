"""Indexed checkpoints, recover(), load(logdir) after fit(logdir), partial states, package version."""

import pytest
import torch

import strfsolver
from strfsolver.solver import PopulationSolver, checkpoint, recovery


def _solver(model, **options):
    return PopulationSolver(**{"model": model, "lr": 1e-2, "patience": None, "progress": False, **options})


def _params(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_recover_index_gives_that_epochs_parameters(loaders, new_model, tmp_path):
    train, valid = loaders
    after = {}

    class Snapshot(PopulationSolver):
        def on_epoch_end(self, epoch):
            after[epoch["epoch"] + 1] = _params(self.model)

    solver = Snapshot(model=new_model(), lr=1e-2, patience=None, progress=False)
    initial = {k: v.detach().clone() for k, v in solver.model.named_parameters()}
    solver.fit(train, valid, max_epochs=6, logdir=tmp_path, keep_every=2)
    assert recovery.indexed_checkpoints(tmp_path) == [0, 2, 4, 6]
    assert (tmp_path / "checkpoints" / "000004.safetensors").is_file()
    for index in (2, 4, 6):
        solver.recover(index)
        for name, value in _params(solver.model).items():
            assert torch.equal(value, after[index][name]), (index, name)
    solver.recover(0)
    # index 0 is the model before the first update (its standardization already fitted)
    assert all(torch.equal(v, initial[k]) for k, v in solver.model.named_parameters())
    # only the chosen parts move: the model alone leaves the optimizer's state as it is
    moments = {k: v.clone() for k, v in solver.optimizer.state[next(iter(solver.model.parameters()))].items()}
    solver.recover(2, parts=("model",))
    after_recover = solver.optimizer.state[next(iter(solver.model.parameters()))]
    assert all(torch.equal(after_recover[k], moments[k]) for k in moments)
    solver.recover(2, parts=("model", "optimizer", "progress"))
    assert solver.training_state_.epoch == 2
    with pytest.raises(FileNotFoundError, match=r"indices \[0, 2, 4, 6\]"):
        solver.recover(3)
    with pytest.raises(ValueError, match="parts must name"):
        solver.recover("best", parts=("weights",))


def test_load_logdir_after_fit_logdir_gives_the_fitted_solver(loaders, new_model, tmp_path):
    train, valid = loaders
    # a high rate overshoots, so the best epoch is not the last one
    fitted = _solver(new_model(), patience=3, lr=0.3, plateau_patience=0)
    fitted.fit(train, valid, max_epochs=10, logdir=tmp_path)
    assert fitted.best_epoch_ < len(fitted.log) - 1
    other = _solver(new_model(seed=5))
    other.load(tmp_path)
    # the best state, as fit leaves it, with the whole history
    for name, value in _params(fitted.model).items():
        assert torch.equal(_params(other.model)[name], value), name
    # the fit's closing advice ("diagnosis") is added to the log after its last checkpoint
    advice_free = [{k: v for k, v in row.items() if k != "diagnosis"} for row in fitted.log]
    assert other.log == advice_free and other.best_epoch_ == fitted.best_epoch_
    state = strfsolver.utils.io.load_state(tmp_path / checkpoint.LAST)
    assert state["package_version"] == strfsolver.__version__
    with pytest.raises(FileNotFoundError, match="checkpoint_last"):
        other.load(tmp_path / "nothing")


def test_load_state_dict_not_strict_loads_the_parts_present(new_model):
    source, target = _solver(new_model(seed=1)), _solver(new_model(seed=2))
    before = list(target.log)
    target.load_state_dict({"model": source.model.state_dict()}, strict=False)
    assert all(torch.equal(v, source.model.state_dict()[k]) for k, v in target.model.state_dict().items())
    assert target.log == before
    with pytest.raises(ValueError, match="no 'optimizer' entry"):
        target.load_state_dict({"model": source.model.state_dict()})


def test_a_fresh_fit_drops_an_earlier_runs_indexed_checkpoints_and_stale_temporaries(loaders, new_model, tmp_path):
    train, valid = loaders
    _solver(new_model()).fit(train, valid, max_epochs=4, logdir=tmp_path, keep_every=1)
    assert recovery.indexed_checkpoints(tmp_path) == [0, 1, 2, 3, 4]
    stale = tmp_path / "checkpoints" / ".000001.safetensors.0123456789ab.tmp"
    stale.write_bytes(b"half a file")
    fresh = _solver(new_model())
    fresh.fit(train, valid, max_epochs=1, logdir=tmp_path)  # a new run, nothing indexed
    assert recovery.indexed_checkpoints(tmp_path) == [] and not stale.exists()
    with pytest.raises(FileNotFoundError, match="the indices \\[\\]"):
        fresh.recover(4)


def test_the_ridge_solver_keeps_its_results_and_refuses_unknown_options(tmp_path):
    from strfsolver.data import make_loader, synthetic_population

    pop = synthetic_population(n_neurons=4, n_stims=8, n_repeats=3, n_freqs=6, n_lags=4, n_times=60, seed=3)
    train, valid = pop.dataset.split([0.75, 0.25], seed=0)

    def ridge():
        return strfsolver.solver.init("ridge", model=strfsolver.models.init("linear", n_freqs=6, n_lags=4, n_neurons=4), cv=2, progress=False)

    fitted = ridge()
    fitted.fit(make_loader(train), make_loader(valid), logdir=tmp_path, keep_every=1)
    assert recovery.indexed_checkpoints(tmp_path) == [0, 1]  # as every solver: 0 is the initial model
    fitted.recover(1)  # fit(logdir=...) is where recover looks
    loaded = ridge()
    loaded.load(tmp_path)
    assert torch.equal(loaded.alphas_, fitted.alphas_) and torch.equal(loaded.cv_scores_, fitted.cv_scores_)
    assert torch.equal(loaded.model.strf(), fitted.model.strf())
    with pytest.raises(TypeError, match="kep_every"):
        ridge().fit(make_loader(train), kep_every=1)
