"""Bad solver options and faults: a ValueError up front that names the option, nothing changed silently."""

import math
import warnings

import pytest
import torch

import strfsolver
from strfsolver.data import make_loader, synthetic_population
from strfsolver.solver import TrainingDivergedError


def _model():
    torch.manual_seed(0)
    return strfsolver.models.init("linear", n_freqs=6, n_lags=4, n_neurons=3)


@pytest.fixture(scope="module")
def loaders():
    pop = synthetic_population(n_neurons=3, n_stims=6, n_repeats=3, n_freqs=6, n_lags=4, n_times=50, seed=1)
    train, valid = pop.dataset.split([4 / 6, 2 / 6], seed=0)
    return make_loader(train, batch_size=2), make_loader(valid, batch_size=2)


CASES = [
    (dict(lr=-0.1), "lr must be a number > 0 or None, got -0.1"),
    (dict(lr="1e-3"), "lr must be a number > 0 or None, got '1e-3'"),
    (dict(lr=0.0), "lr must be a number > 0"),
    (dict(lr=math.nan), "lr must be a number > 0"),
    (dict(weight_decay=-1), "weight_decay must be a number >= 0, got -1"),
    (dict(patience=0), "patience must be an integer >= 1 or None"),
    (dict(patience=2.5), "patience must be an integer >= 1 or None"),
    (dict(max_epochs=0), "max_epochs must be an integer >= 1"),
    (dict(mode="maximum"), "mode must be 'max' or 'min'"),
    (dict(min_delta=-1.0), "min_delta must be a number >= 0"),
    (dict(grad_clip=0), "grad_clip must be a number > 0"),
    (dict(plateau_patience=-1), "plateau_patience must be an integer >= 0 or None"),
    (dict(lr_decay=1.5), r"lr_decay must be a number in \(0, 1\)"),
    (dict(standardize="yes"), "standardize must be True or False"),
    (dict(init="zeros"), "init must be None or 'ridge'"),
    (dict(metrics=("cc", "r2")), r"unknown metric\(s\) \['r2'\]"),
    (dict(criterion="huber"), "Unknown name 'huber' in strfsolver.losses"),
    (dict(criterion="MSE"), "Did you mean 'mse'"),
    (dict(device="tpu"), "device must name a torch device"),
]


@pytest.mark.parametrize("options, message", CASES, ids=[str(sorted(o)) for o, _ in CASES])
def test_bad_solver_options_fail_at_construction(options, message):
    with pytest.raises(ValueError, match=message):
        strfsolver.solver.init("population", model=_model(), progress=False, **options)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_cuda_is_named_at_construction():
    with pytest.raises(ValueError, match="device='cuda' but this torch has no usable CUDA device"):
        strfsolver.solver.init("population", model=_model(), device="cuda")


def test_a_registry_name_in_capitals_gets_its_lower_case_suggested():
    with pytest.raises(ValueError, match="Unknown name 'LN' in strfsolver.models. Did you mean 'ln'"):
        strfsolver.models.init("LN", n_freqs=4, n_lags=2, n_neurons=1)


def test_an_optimizer_of_other_parameters_is_refused(loaders):
    other = torch.nn.Linear(2, 2)
    solver = strfsolver.solver.init("population", model=_model(), optimizer=torch.optim.SGD(other.parameters(), lr=0.1), progress=False)
    with pytest.raises(ValueError, match="the optimizer updates 2 tensor\\(s\\) that are not the model's trainable parameters"):
        solver.fit(*loaders, max_epochs=1)


class NaNGradient(strfsolver.solver.PopulationSolver):
    """A finite loss whose gradient is NaN at the second step."""

    def _loss(self, pred, batch):
        loss = super()._loss(pred, batch)
        self._steps = getattr(self, "_steps", 0) + 1
        if self._steps == 2:
            # a finite value whose gradient is NaN: 0 * d sqrt(negative) reaches the parameters as NaN
            loss = loss + 0.0 * torch.sqrt(-pred.sum().abs() - 1)
            loss = torch.where(torch.isfinite(loss), loss, loss.detach().nan_to_num(0.0))
        return loss


def test_a_nan_gradient_under_a_finite_loss_never_reaches_the_parameters(loaders, tmp_path):
    solver = NaNGradient(model=_model(), lr=1e-2, progress=False)
    with pytest.raises(TrainingDivergedError, match="epoch 0, step 1"):
        solver.fit(*loaders, max_epochs=3, logdir=tmp_path)
    assert all(torch.isfinite(p).all() for p in solver.model.parameters())


def test_a_nan_stimulus_given_to_transform_is_named():
    solver = strfsolver.solver.init("population", model=_model(), progress=False)
    stims = [torch.rand(6, 20), torch.rand(6, 30), torch.rand(6, 25)]
    stims[2][1, 3] = float("nan")
    with pytest.raises(ValueError, match="stimulus 2 of the input has NaN or infinite values"):
        solver.transform(stims, batch_size=2)


# further options, each refused at construction with a ValueError naming it
MORE_CASES = [
    (dict(lr=math.inf), "lr must be a number > 0 or None, got inf"),
    (dict(lr=True), "lr must be a number > 0 or None, got True"),
    (dict(weight_decay="0"), "weight_decay must be a number >= 0, got '0'"),
    (dict(weight_decay=math.nan), "weight_decay must be a number >= 0, got nan"),
    (dict(patience=-3), "patience must be an integer >= 1 or None, got -3"),
    (dict(patience="10"), "patience must be an integer >= 1 or None, got '10'"),
    (dict(max_epochs=2.0), "max_epochs must be an integer >= 1, got 2.0"),
    (dict(max_epochs=True), "max_epochs must be an integer >= 1, got True"),
    (dict(monitor="seconds"), "monitor must be a key of the epoch dicts"),
    (dict(monitor="val_snr"), "'val_snr' is not a score of the prediction"),
    (dict(monitor="val_loss", mode="max"), "'val_loss' is a loss, which is minimised, but mode='max'"),
    (dict(mode="MAX"), "mode must be 'max' or 'min', got 'MAX'"),
    (dict(monitor=""), "monitor must be a key of the epoch dicts"),
    (dict(monitor=5), "monitor must be a key of the epoch dicts such as 'val_cc_norm', got 5"),
    (dict(min_delta=math.nan), "min_delta must be a number >= 0, got nan"),
    (dict(min_delta="0"), "min_delta must be a number >= 0, got '0'"),
    (dict(grad_clip=-1.0), "grad_clip must be a number > 0 or None, got -1.0"),
    (dict(grad_clip="1"), "grad_clip must be a number > 0 or None, got '1'"),
    (dict(plateau_patience=1.5), "plateau_patience must be an integer >= 0 or None, got 1.5"),
    (dict(lr_decay=0.0), r"lr_decay must be a number in \(0, 1\), got 0.0"),
    (dict(lr_decay=1.0), r"lr_decay must be a number in \(0, 1\), got 1.0"),
    (dict(standardize=1), "standardize must be True or False, got 1"),
    (dict(init="Ridge"), "init must be None or 'ridge', got 'Ridge'"),
    (dict(metrics=("CC",)), r"unknown metric\(s\) \['CC'\]"),
    (dict(criterion=5), "criterion must be a loss name or a callable"),
    (dict(criterion="Poisson"), "Did you mean 'poisson'"),
    (dict(penalties=["smoothness-typo"]), "Unknown name 'smoothness-typo'"),
    (dict(penalties=[5]), r"penalties\[0\] must be a Penalty, a registered penalty name or a callable, got 5"),
    (dict(device=5), "device must name a torch device such as 'cpu' or 'cuda:0', got 5"),
    (dict(optimizer="adam"), "optimizer must be a torch.optim.Optimizer, a factory params -> optimizer, or None; got 'adam'"),
    (dict(optimizer=0.1), "optimizer must be a torch.optim.Optimizer, a factory params -> optimizer, or None; got 0.1"),
]


@pytest.mark.parametrize("options, message", MORE_CASES, ids=[f"{sorted(o)[0]}={o[sorted(o)[0]]!r}" for o, _ in MORE_CASES])
def test_more_bad_solver_options_fail_at_construction(options, message):
    with pytest.raises(ValueError, match=message):
        strfsolver.solver.init("population", model=_model(), progress=False, **options)


# bad arguments of fit(), refused before the first step: (what, fit keyword arguments, error, message)
FIT_CASES = [
    ("max_epochs=0", dict(max_epochs=0), ValueError, "max_epochs must be an integer >= 1, got 0"),
    ("valid_frequency=0", dict(valid_frequency=0), ValueError, "valid_frequency must be an integer >= 1, got 0"),
    ("save_frequency=-1", dict(save_frequency=-1), ValueError, "save_frequency must be an integer >= 1, got -1"),
    ("resume without logdir", dict(resume=True), ValueError, "resume=True needs the logdir of the run to continue"),
]


@pytest.mark.parametrize("what, kwargs, error, message", FIT_CASES, ids=[c[0] for c in FIT_CASES])
def test_bad_fit_arguments_are_named_before_training(loaders, what, kwargs, error, message):
    solver = strfsolver.solver.init("population", model=_model(), progress=False)
    before = [p.detach().clone() for p in solver.model.parameters()]
    with pytest.raises(error, match=message):
        solver.fit(*loaders, **kwargs)
    assert all(torch.equal(a, b) for a, b in zip(before, solver.model.parameters()))


def test_an_unknown_monitor_is_named_with_the_keys_before_training(loaders):
    solver = strfsolver.solver.init("population", model=_model(), monitor="val_r2", progress=False)
    with pytest.raises(KeyError, match=r"monitor 'val_r2' is not in the epoch dict; available keys: \['epoch', 'lr'"):
        solver.fit(*loaders, max_epochs=1)
    assert solver.log == []


def test_an_optimizer_factory_that_returns_something_else_is_named(loaders):
    solver = strfsolver.solver.init("population", model=_model(), optimizer=lambda params: "sgd", progress=False)
    with pytest.raises(ValueError, match="the optimizer factory returned str, expected a torch.optim.Optimizer"):
        solver.fit(*loaders, max_epochs=1)


class FloatStep(strfsolver.solver.PopulationSolver):
    """A custom step that returns the loss alone."""

    def step(self, batch):
        return float(super().step(batch)["loss"])


def test_a_custom_step_returning_a_float_is_told_to_return_a_dict(loaders):
    with pytest.raises(ValueError, match=r"step\(\) must return a dict with at least 'loss' \(a float\), got float"):
        FloatStep(model=_model(), progress=False).fit(*loaders, max_epochs=1)


@pytest.mark.parametrize("name", ["population", "single-cell", "per-cell-best"])
def test_an_overflowing_learning_rate_is_a_divergence_with_the_model_restored(loaders, tmp_path, name):
    solver = strfsolver.solver.init(name, model=_model(), lr=1e38, progress=False)
    start = {k: v.clone() for k, v in solver.model.state_dict().items()}
    with pytest.raises(TrainingDivergedError, match=r"epoch 0, step 0 .*the optimizer's update overflowed.*lr=1e\+38") as raised:
        solver.fit(*loaders, max_epochs=2, logdir=tmp_path)
    assert raised.value.cause.startswith("the optimizer's update overflowed")
    state = solver.model.state_dict()
    assert all(torch.equal(state[k], start[k]) for k in start if "standardize." not in k)
    assert not (tmp_path / "checkpoint_last.safetensors").exists()


def test_a_huge_but_representable_learning_rate_diverges_before_any_checkpoint_holds_it(loaders, tmp_path):
    solver = strfsolver.solver.init("population", model=_model(), lr=1e30, progress=False)
    with pytest.raises(TrainingDivergedError, match=r"training diverged at epoch 0"):
        solver.fit(*loaders, max_epochs=3, logdir=tmp_path)
    assert all(torch.isfinite(p).all() for p in solver.model.parameters())
    assert not (tmp_path / "checkpoint_last.safetensors").exists()
