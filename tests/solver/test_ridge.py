"""The "ridge" solver: closed-form linear STRFs with per-neuron alphas chosen by cross-validation."""

import numpy as np
import pytest
import torch

import strfsolver
from strfsolver.data import NeuralDataset, make_loader, synthetic_population
from strfsolver.ridge import lagged_design
from strfsolver.solver import checkpoint

F, L, N = 6, 4, 5


def _population(seed=0, n_stims=10, nonlinearity="linear", n_times=(70, 110), n_repeats=4):
    return synthetic_population(n_neurons=N, n_stims=n_stims, n_repeats=n_repeats, n_freqs=F, n_lags=L, n_times=n_times,
                                nonlinearity=nonlinearity, seed=seed)


def _linear(n_channels=1):
    return strfsolver.models.init("linear", n_freqs=F, n_lags=L, n_neurons=N, n_channels=n_channels)


def _fit(dataset, valid=None, **options):
    solver = strfsolver.solver.init("ridge", model=_linear(dataset.n_channels if dataset.stim_ndim == 3 else 1), progress=False, **options)
    solver.fit(make_loader(dataset, batch_size=3), None if valid is None else make_loader(valid, batch_size=3))
    return solver


@pytest.mark.parametrize("channels", [1, 2])
def test_a_fixed_alpha_equals_scikit_learn_ridge_on_the_lagged_design(channels):
    sklearn = pytest.importorskip("sklearn.linear_model")
    pop = _population(seed=1)
    dataset = pop.dataset
    if channels == 2:  # a second channel: the stimulus squared
        dataset = NeuralDataset([torch.stack([s, s.square()]) for s in dataset.stims], dataset.responses, dataset.dt_ms)
    # on the stimuli as they are: scikit-learn sees the raw lagged design
    solver = _fit(dataset, alpha=3.0, standardize=False)
    design = np.concatenate([lagged_design(s.double().reshape(-1, s.shape[-1]), L).numpy() for s in dataset.stims])
    target = np.concatenate([r.double().nanmean(dim=1).T.numpy() for r in dataset.responses])
    reference = sklearn.Ridge(alpha=3.0).fit(design, target)
    got = solver.model.strf().detach().double().reshape(N, -1).numpy()
    np.testing.assert_allclose(got, reference.coef_, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(solver.model.bias.detach().double().numpy(), reference.intercept_, rtol=1e-4, atol=1e-6)


def _linear_neurons(seed=0, n_stims=12, n_times=300, n_repeats=5, noise=1.0):
    """Linear neurons with known STRFs on smoothed-noise stimuli, Gaussian trial noise."""
    g = torch.Generator().manual_seed(seed)
    strfs = torch.randn(N, 1, F, L, generator=g)
    stims, responses = [], []
    for _ in range(n_stims):
        x = torch.randn(F, n_times + 2, generator=g)
        x = (x[:, :-2] + x[:, 1:-1] + x[:, 2:]) / 3  # some temporal correlation, as in real sounds
        drive = strfsolver.nn.layers.causal_strf_conv(x[None, None], strfs)[0, :, 0]  # (N, T)
        stims.append(x)
        responses.append(drive[:, None] + 2.0 + noise * torch.randn(N, n_repeats, n_times, generator=g))
    return NeuralDataset(stims, responses, dt_ms=5.0), strfs


def test_linear_strfs_are_recovered_and_the_log_has_one_row():
    dataset, strfs = _linear_neurons()
    train, valid = dataset.split([0.75, 0.25], seed=0)
    solver = _fit(train, valid)
    truth = strfs.reshape(N, -1).double()
    fitted = solver.model.strf().detach().reshape(N, -1).double()
    corr = torch.nn.functional.cosine_similarity(fitted - fitted.mean(1, keepdim=True), truth - truth.mean(1, keepdim=True))
    assert corr.min() >= 0.95
    assert solver.alphas_.shape == (N,) and solver.cv_scores_.shape == (15, N) and solver.fold_scores_.shape == (5, 15, N)
    assert len(solver.log) == 1 and solver.log[0]["epoch"] == 0
    assert {"train_loss", "val_loss", "val_cc", "val_cc_norm", "alpha_median", "cv_score", "seconds"} <= set(solver.log[0])
    assert solver.stop_reason_ == "closed form"


def test_the_ridge_fit_reaches_the_truth_on_the_synthetic_population():
    pop = _population(seed=2, n_stims=40, n_times=300, n_repeats=10)
    train, valid = pop.dataset.split([0.8, 0.2], seed=0)
    solver = _fit(train, valid)
    assert float(solver.last_validation_["cc_norm"].median()) >= 0.95 * float(pop.truth_cc_norm(valid).median())


def test_rescaling_the_stimulus_changes_neither_predictions_nor_relative_alphas():
    pop = _population(seed=3)
    scaled = NeuralDataset([s * 1000 for s in pop.dataset.stims], pop.dataset.responses, pop.dataset.dt_ms)
    plain, big = _fit(pop.dataset), _fit(scaled)
    torch.testing.assert_close(plain.relative_alphas_, big.relative_alphas_)
    stims = pop.dataset.stims[:3]
    for a, b in zip(plain.transform(stims), big.transform([s * 1000 for s in stims])):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


def test_a_neuron_missing_from_one_stimulus_gets_the_fit_without_that_stimulus():
    pop = _population(seed=4)
    responses = [r.clone() for r in pop.dataset.responses]
    responses[2][1] = float("nan")  # neuron 1 not recorded during stimulus 2
    missing = NeuralDataset(pop.dataset.stims, responses, pop.dataset.dt_ms)
    # the same features for both fits (standardizing would use other statistics without stimulus 2)
    with_gap = _fit(missing, alpha=2.0, standardize=False)
    without = _fit(pop.dataset.subset([i for i in range(10) if i != 2]), alpha=2.0, standardize=False)
    torch.testing.assert_close(with_gap.model.strf()[1], without.model.strf()[1], rtol=1e-4, atol=1e-6)
    # the other neurons keep stimulus 2
    assert not torch.allclose(with_gap.model.strf()[0], without.model.strf()[0], rtol=1e-4, atol=1e-6)


def test_the_solver_contract_save_load_and_logdir(tmp_path):
    pop = _population(seed=5)
    train, valid = pop.dataset.split([0.7, 0.3], seed=0)
    solver = strfsolver.solver.init("ridge", model=_linear(), progress=False, cv="loso", penalty="laplacian")
    log = solver.fit(make_loader(train, batch_size=4), make_loader(valid, batch_size=4), logdir=tmp_path).log
    assert log is solver.log
    other = strfsolver.solver.init("ridge", model=_linear(), progress=False)
    other.load(tmp_path, checkpoint.BEST)
    stims = valid.stims[:2]
    for a, b in zip(solver.transform(stims), other.transform(stims)):
        torch.testing.assert_close(a, b)
    assert other.log == solver.log


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(model="ln"), "fits linear STRF models"),
        (dict(kernel="separable"), "needs a full kernel"),
        (dict(alphas=[]), "alphas must be a non-empty list"),
        (dict(relative_alphas=[1.0, -2.0]), "every value of relative_alphas must be a number > 0"),
        (dict(alpha=0.0), "alpha must be a number > 0"),
        (dict(cv="kfold"), r"cv must be one of \['loso', 'gcv'\]"),
        (dict(scoring="r2"), "scoring must be one of"),
        (dict(alpha=1.0, alphas=[1.0]), "at most one of alphas, relative_alphas and alpha"),
        (dict(cv="gcv", penalty="laplacian"), "cv='gcv' supports penalty='ridge' only"),
        (dict(search_dtype="half"), r"search_dtype must be one of \['float32', 'float64'\], got 'half'"),
    ],
)
def test_bad_options_are_refused_up_front(options, message):
    options = dict(options)
    name, kernel = options.pop("model", "linear"), options.pop("kernel", "full")
    model = strfsolver.models.init(name, n_freqs=F, n_lags=L, n_neurons=N, kernel=kernel)
    with pytest.raises(ValueError, match=message):
        strfsolver.solver.init("ridge", model=model, **options)


def test_fewer_stimuli_than_folds_is_named():
    pop = _population(seed=6, n_stims=4)
    solver = strfsolver.solver.init("ridge", model=_linear(), progress=False, cv=5)
    with pytest.raises(ValueError, match="cv=5 folds need at least 5 training stimuli, the loader has 4"):
        solver.fit(make_loader(pop.dataset, batch_size=2))


def test_the_ridge_initializer_gives_an_ln_fit_at_least_as_good_in_fewer_epochs():
    pop = synthetic_population(n_neurons=8, n_stims=14, n_repeats=6, n_freqs=F, n_lags=L, n_times=200, seed=7)
    train, valid = pop.dataset.split([10 / 14, 4 / 14], seed=0)

    def fit(init):
        torch.manual_seed(0)
        model = strfsolver.models.init("ln", n_freqs=F, n_lags=L, n_neurons=8)
        solver = strfsolver.solver.init("population", model=model, init=init, lr=1e-2, max_epochs=150, patience=10, progress=False)
        solver.fit(make_loader(train, batch_size=3, shuffle=True), make_loader(valid, batch_size=4))
        return solver

    random_start, ridge_start = fit(None), fit("ridge")
    # the ridge start is already good before the first gradient step
    assert ridge_start.log[0]["val_cc_norm"] > random_start.log[0]["val_cc_norm"] + 0.1
    assert ridge_start.best_score_ >= random_start.best_score_ - 0.02  # as good, within the noise of 4 validation stimuli
    assert ridge_start.best_epoch_ < random_start.best_epoch_


def test_the_ridge_initializer_needs_an_strf_model():
    model = strfsolver.models.init("nrf", n_freqs=F, n_lags=L, n_neurons=N)
    with pytest.raises(ValueError, match="init='ridge' fits linear STRF models"):
        strfsolver.solver.init("population", model=model, init="ridge")
    with pytest.raises(ValueError, match="init must be None or 'ridge'"):
        strfsolver.solver.init("population", model=_linear(), init="zeros")
