"""What the "multi-session" solver and its neighbours refuse up front, naming what was expected and what came."""

import pytest
import torch
from torch.utils.data import DataLoader, Subset

import strfsolver
from strfsolver.data import NeuralDataset, make_loader, neural_collate, session_loaders, synthetic_multisession

F, L = 8, 5


@pytest.fixture(scope="module")
def truth():
    return synthetic_multisession(n_neurons={"a": 4, "b": 6}, n_stims=4, n_subunits=2, n_freqs=F, n_lags=L, n_times=60, seed=0)


def model(sessions=None):
    torch.manual_seed(0)
    return strfsolver.models.init("ln", n_freqs=F, n_lags=L, n_neurons=sessions or {"a": 4, "b": 6})


def solver(**options):
    return strfsolver.solver.init("multi-session", model=model(), progress=False, max_epochs=1, monitor="train_loss", mode="min", **options)


class Unnamed:
    """A loader that says nothing of what it serves (no dataset)."""

    def __init__(self, loader):
        self.loader = loader

    def __iter__(self):
        return iter(self.loader)

    def __len__(self):
        return len(self.loader)


def other_bin_width(dataset):
    return NeuralDataset(dataset.stims, dataset.responses, dt_ms=2 * dataset.dt_ms)


def test_sessions_of_other_bin_widths_are_refused_at_fit_start(truth):
    a, b = truth.datasets["a"], other_bin_width(truth.datasets["b"])
    fitted = solver()
    before = {k: v.clone() for k, v in fitted.model.state_dict().items()}
    message = r"session 'b' has dt_ms=10.0 but session 'a' has 5.0"
    with pytest.raises(ValueError, match=message):
        fitted.fit({"a": make_loader(a), "b": make_loader(b)})
    with pytest.raises(ValueError, match=message):  # a plain DataLoader over the dataset says its bin width too
        solver().fit({"a": make_loader(a), "b": DataLoader(b, collate_fn=neural_collate)})
    with pytest.raises(ValueError, match=r"session 'b' \(validation data\) has dt_ms=10.0 but session 'a' has 5.0"):
        solver().fit(session_loaders(truth.datasets), {"a": make_loader(a), "b": make_loader(b)})
    assert all(torch.equal(before[k], v) for k, v in fitted.model.state_dict().items())  # nothing ran
    # a loader that says nothing of its data is not compared: it fits
    solver().fit({"a": make_loader(a), "b": Unnamed(make_loader(b))})


def test_wrong_neuron_counts_name_the_session_up_front_or_at_the_first_batch(truth):
    a = truth.datasets["a"]
    # a DataLoader over a Subset says its dataset's neurons: refused before anything runs
    with pytest.raises(ValueError, match="session 'b': the model's readout has 6 neurons but the training data have 4"):
        solver().fit({"a": make_loader(a), "b": DataLoader(Subset(a, range(3)), collate_fn=neural_collate)})
    # a loader that says nothing: refused at its first batch, naming the session and both counts
    with pytest.raises(ValueError, match=r"session 'b': a batch has responses of shape \(1, 4, .*4 neurons, but the session's readout has 6"):
        solver().fit({"a": make_loader(a), "b": Unnamed(make_loader(a))})
    with pytest.raises(ValueError, match="session 'b': a batch .* readout has 6"):
        solver().validation({"b": Unnamed(make_loader(a))})


def test_other_solvers_refuse_sessions_and_say_which_solver_fits_them(truth):
    with pytest.raises(ValueError, match=r"'per-cell-best' fits the neurons of one recording.*\['a', 'b'\].*'multi-session'"):
        strfsolver.solver.init("per-cell-best", model=model())
    for name in ("population", "per-cell-best"):
        one = strfsolver.models.init("ln", n_freqs=F, n_lags=L, n_neurons=4)
        fitted = strfsolver.solver.init(name, model=one, progress=False, max_epochs=1)
        with pytest.raises(ValueError, match=r"the training data are a mapping with keys \['a', 'b'\].*needs the 'multi-session' solver"):
            fitted.fit(session_loaders(truth.datasets))
        with pytest.raises(ValueError, match=r"the validation data are a mapping .*'multi-session'"):
            fitted.fit(make_loader(truth.datasets["a"]), session_loaders(truth.datasets))
