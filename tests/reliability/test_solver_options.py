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
        strfsolver.solver.init("population", model=_model(), tqdm_on=False, **options)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_cuda_is_named_at_construction():
    with pytest.raises(ValueError, match="device='cuda' but this torch has no usable CUDA device"):
        strfsolver.solver.init("population", model=_model(), device="cuda")


def test_a_registry_name_in_capitals_gets_its_lower_case_suggested():
    with pytest.raises(ValueError, match="Unknown name 'LN' in strfsolver.models. Did you mean 'ln'"):
        strfsolver.models.init("LN", n_freqs=4, n_lags=2, n_neurons=1)


def test_an_optimizer_of_other_parameters_is_refused(loaders):
    other = torch.nn.Linear(2, 2)
    solver = strfsolver.solver.init("population", model=_model(), optimizer=torch.optim.SGD(other.parameters(), lr=0.1), tqdm_on=False)
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
    solver = NaNGradient(model=_model(), lr=1e-2, tqdm_on=False)
    with pytest.raises(TrainingDivergedError, match="epoch 0, step 1"):
        solver.fit(*loaders, max_epochs=3, logdir=tmp_path)
    assert all(torch.isfinite(p).all() for p in solver.model.parameters())


def test_a_nan_stimulus_given_to_transform_is_named():
    solver = strfsolver.solver.init("population", model=_model(), tqdm_on=False)
    stims = [torch.rand(6, 20), torch.rand(6, 30), torch.rand(6, 25)]
    stims[2][1, 3] = float("nan")
    with pytest.raises(ValueError, match="stimulus 2 of the input has NaN or infinite values"):
        solver.transform(stims, batch_size=2)
