"""The "single-cell" solver gives, all at once, what fitting each neuron alone gives."""

import warnings

import pytest
import torch

import strfsolver
from strfsolver.data import make_loader, synthetic_population
from strfsolver.solver import NeuronStack, SingleCellSolver
from strfsolver.solver.single_cell import FunctionalRNN, neuron_axes, single_neuron_replica

from solver_helpers import CausalLinear

F, L = 8, 6
TINY = {
    "linear": {},
    "ln": {},
    "nrf": dict(n_hidden=3),
    "cnn2d": dict(channels=(2,), freq_kernel=3),
    "statenet": dict(front_channels=3, hidden_size=4),
    "transformer": dict(d_model=4, n_heads=1, n_layers=1, dim_feedforward=8),
}


def build(name, n_neurons, seed=0, **extra):
    torch.manual_seed(seed)
    return strfsolver.models.init(name, n_freqs=F, n_lags=L, n_neurons=n_neurons, **TINY[name], **extra)


def data(n_neurons, seed=3, n_stims=10, n_times=60):
    pop = synthetic_population(n_neurons=n_neurons, n_stims=n_stims, n_repeats=4, n_freqs=F, n_lags=L, n_times=n_times, seed=seed)
    return pop.dataset.split([0.7, 0.3], seed=0)


def loaders(train, valid):
    return make_loader(train, batch_size=3, shuffle=True, seed=1), make_loader(valid, batch_size=4)


def test_registered_and_built_by_name():
    assert {"single-cell", "per-cell-best", "population"} <= set(strfsolver.solver.get_options())
    model = build("ln", 5)
    solver = strfsolver.solver.init("single-cell", model=model, progress=False)
    assert isinstance(solver, SingleCellSolver)
    assert isinstance(solver.model, NeuronStack) and solver.population_model is model
    # every trainable value of the population model, once per neuron
    assert solver.num_parameters == model.count_parameters()
    assert dict(solver.model.named_parameters())["readout.kernel.weight"].shape == (5, 1, 1, F, L)


def test_neuron_axes_found_by_rebuilding_with_one_neuron():
    axes = neuron_axes(build("ln", 4))
    assert axes["readout.kernel.weight"] == 0 and axes["readout.bias"] == 0
    assert axes["readout.activation.raw_gain"] == 0
    # "ln" shares nothing but the stimulus standardization, the same for every neuron
    assert all(axis is not None for name, axis in axes.items() if not name.startswith("standardize."))
    assert axes["standardize.mean"] is None and axes["standardize.scale"] is None
    # nrf with 3 hidden units and 3 neurons: the hidden STRFs are shared all the same
    nrf = neuron_axes(build("nrf", 3))
    assert nrf["core.0.kernel.weight"] is None and nrf["core.0.bias"] is None
    assert nrf["readout.projection.weight"] == 0 and nrf["readout.projection.bias"] == 0
    replica = single_neuron_replica(build("nrf", 3))
    assert replica.n_neurons == 1 and type(replica).__name__ == "NRFModel"


@pytest.mark.parametrize("name", sorted(TINY))
def test_stack_starts_as_the_population_model(name):
    model = build(name, 3)
    stack = NeuronStack(model)
    stims = torch.randn(2, F, 25)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # transformer: PyTorch's vmap fallback for attention warns
        model.eval(), stack.eval()
        expected, got = model(stims), stack(stims)
    assert got.shape == (2, 3, 1, 25)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    # neuron n's standalone model is the population model restricted to neuron n
    single = stack.neuron_model(2).eval()
    assert single.n_neurons == 1 and type(single) is type(model)
    torch.testing.assert_close(single(stims)[:, 0], expected[:, 2], atol=1e-5, rtol=1e-5)


def test_functional_rnn_matches_torch():
    torch.manual_seed(0)
    for rnn in (torch.nn.GRU(3, 5, 2, batch_first=True), torch.nn.LSTM(3, 4, 1, batch_first=True), torch.nn.RNN(3, 4)):
        x = torch.randn(2, 7, 3)
        ours = FunctionalRNN(rnn)
        for a, b in zip(torch.utils._pytree.tree_leaves(rnn(x)), torch.utils._pytree.tree_leaves(ours(x))):
            torch.testing.assert_close(b, a, atol=1e-6, rtol=1e-5)


def fit_both(name, train, valid, **options):
    """The population solver and single-cell on the same 1-neuron model, data and seed."""
    results = []
    for solver_name in ("population", "single-cell"):
        model = build(name, 1)
        # no plateau: single-cell cannot lower one neuron's rate (see test_32_neurons_match_32_separate_fits)
        solver = strfsolver.solver.init(solver_name, model=model, lr=2e-2, max_epochs=10, patience=2, progress=False, plateau_patience=0, **options)
        log = solver.fit(*loaders(train, valid)).log
        results.append((solver, model, log))
    return results


@pytest.mark.parametrize(
    "name, options",
    [
        ("linear", dict(grad_clip=0.05, penalties=["l2", "smooth-strf"])),
        ("ln", {}),
        ("ln", dict(criterion="poisson", monitor="val_loss", mode="min")),
        ("nrf", {}),
        ("cnn2d", {}),
        ("statenet", {}),
    ],
)
def test_one_neuron_matches_the_population_solver(name, options):
    train, valid = data(1)
    (pop, pop_model, pop_log), (single, single_model, single_log) = fit_both(name, train, valid, **options)
    # same number of epochs, same stopping epoch, same best epoch
    assert len(single_log) == len(pop_log)
    assert single.stopped_epochs_.tolist() == [len(pop_log) - 1]
    assert single.best_epochs_.tolist() == [pop.best_epoch_]
    assert [row["train_loss"] for row in single_log] == pytest.approx([row["train_loss"] for row in pop_log], rel=1e-5)
    # with one neuron nothing is "shared between neurons": the fit is written back
    for key, value in pop_model.state_dict().items():
        torch.testing.assert_close(single_model.state_dict()[key], value, atol=1e-5, rtol=1e-4)
    cc_pop, cc_single = pop.validation(valid_loader(valid))["cc_norm"], single.validation(valid_loader(valid))["cc_norm"]
    torch.testing.assert_close(cc_single, cc_pop, atol=1e-5, rtol=0)


def valid_loader(valid):
    return make_loader(valid, batch_size=4)


@pytest.mark.parametrize("optimizer", [None, lambda params: torch.optim.SGD(params, lr=0.2, momentum=0.9)], ids=["adamw", "sgd"])
def test_32_neurons_match_32_separate_fits(optimizer):
    n_neurons = 32
    train, valid = data(n_neurons, seed=7, n_stims=8, n_times=50)
    # SGD is not invariant to the gradient's scale, as Adam nearly is: it checks the loss is a
    # sum over neurons and the clipping is per neuron
    # plateau_patience=0: a plateau halves the rate of the whole optimizer, which one neuron's plateau
    # cannot do in the stacked fit, so single-cell never does it and the separate fits must not either
    options = dict(lr=3e-2, max_epochs=8, patience=2, metrics=("cc_norm",), progress=False, optimizer=optimizer,
                   grad_clip=0.5, plateau_patience=0)  # clipping each neuron's own gradient norm
    model = build("ln", n_neurons)
    solver = strfsolver.solver.init("single-cell", model=model, **options)
    initial = [solver.model.neuron_model(n) for n in range(n_neurons)]  # each neuron's exact start
    history = solver.fit(*loaders(train, valid)).log
    together = solver.validation(valid_loader(valid))["cc_norm"]

    alone, stopped = [], []
    for n in range(n_neurons):
        one = strfsolver.solver.init("population", model=initial[n], **options)
        log = one.fit(*loaders(train.select_neurons([n]), valid.select_neurons([n]))).log
        alone.append(one.validation(valid_loader(valid.select_neurons([n])))["cc_norm"][0])
        stopped.append(len(log) - 1)
    alone = torch.stack(alone)
    assert torch.isfinite(together).all()
    assert (together - alone).abs().max() <= 1e-4
    assert solver.stopped_epochs_.tolist() == stopped
    # the neurons really did stop at different epochs, and the history counts them
    assert len(set(stopped)) > 1
    stopped_raw = solver.training_state_.neuron_stopped_epoch
    for row in history:
        assert row["n_active"] == int(((stopped_raw < 0) | (stopped_raw > row["epoch"])).sum())
    assert sum(row["n_stopped"] for row in history) == int((stopped_raw >= 0).sum())
    # no shared parameter: the population model now holds every neuron's own fit
    torch.testing.assert_close(model.strf(), solver.model.strf())
    torch.testing.assert_close(model(valid[0]["stim"][None]), solver.transform(valid[0]["stim"][None]))


def test_frozen_neurons_stay_at_their_best():
    train, valid = data(6)
    solver = strfsolver.solver.init("single-cell", model=build("linear", 6), lr=5e-2, max_epochs=12, patience=1, progress=False)
    snapshots = []
    solver.loggers = [lambda row: snapshots.append(solver.model.readout.kernel.weight.detach().clone())]
    solver.fit(*loaders(train, valid))
    stopped = solver.training_state_.neuron_stopped_epoch
    assert (stopped >= 0).any()
    for n in torch.nonzero(stopped >= 0).flatten().tolist():
        after = snapshots[stopped[n]:]
        assert all(torch.equal(s[n], after[0][n]) for s in after)
        assert torch.equal(solver.model.readout.kernel.weight[n], after[0][n])


def test_shared_core_keeps_the_stack():
    train, valid = data(4)
    model = build("nrf", 4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    solver = strfsolver.solver.init("single-cell", model=model, lr=2e-2, max_epochs=3, progress=False)
    solver.fit(*loaders(train, valid))
    # four neurons, four different cores: the population model is left as it was
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert "core.0.kernel.weight" in solver.model.differing_shared()
    with pytest.raises(ValueError, match="core.0.kernel.weight"):
        solver.model.to_population()
    stims = valid[0]["stim"][None]
    pred = solver.transform(stims)
    assert pred.shape == (1, 4, 1, stims.shape[-1])
    torch.testing.assert_close(solver.model.neuron_model(3).eval()(stims)[:, 0], pred[:, 3])


def test_resume_gives_the_uninterrupted_run(tmp_path):
    train, valid = data(3)
    runs = []
    for stops in ([8], [4, 8]):
        solver = strfsolver.solver.init("single-cell", model=build("ln", 3), lr=5e-2, patience=2, progress=False)
        folder = tmp_path / str(len(stops))
        train_loader, valid_loader_ = loaders(train, valid)
        for stop in stops:
            if stop != stops[0]:  # a new process: a new solver, loaders, same folder
                solver = strfsolver.solver.init("single-cell", model=build("ln", 3, seed=9), lr=5e-2, patience=2, progress=False)
                train_loader, valid_loader_ = loaders(train, valid)
            solver.fit(train_loader, valid_loader_, max_epochs=stop, logdir=folder, resume=True)
        runs.append(solver)
    straight, resumed = runs
    assert resumed.stopped_epochs_.tolist() == straight.stopped_epochs_.tolist()
    for key, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value)


def test_without_validation_each_neuron_watches_its_train_loss():
    train, _ = data(3)
    solver = strfsolver.solver.init("single-cell", model=build("linear", 3), lr=2e-2, max_epochs=3, progress=False)
    with pytest.warns(UserWarning, match="train_loss"):
        history = solver.fit(make_loader(train, batch_size=3)).log
    assert solver.monitor_ == "train_loss" and len(history) == 3
    assert solver.best_scores_.shape == (3,) and torch.isfinite(solver.best_scores_).all()


def test_bad_arguments_say_what_is_wrong():
    with pytest.raises(ValueError, match="n_neurons=1"):
        SingleCellSolver(model=CausalLinear(F, L, 3))
    with pytest.raises(ValueError, match="stateful"):
        SingleCellSolver(model=build("statenet", 2, stateful=True))
    model = build("ln", 2)
    with pytest.raises(ValueError, match="factory"):
        SingleCellSolver(model=model, optimizer=torch.optim.Adam(model.parameters()))
    solver = SingleCellSolver(model=build("ln", 2), monitor="val_fve", progress=False)
    train, valid = data(2)
    with pytest.raises(KeyError, match="val_fve"):
        solver.fit(*loaders(train, valid), max_epochs=1)
    with pytest.raises(ValueError, match="index"):
        solver.model.neuron_model(5)
