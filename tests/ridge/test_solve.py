"""fit_ridge against scikit-learn and explicit refits on the lagged design."""

import doctest
import math

import numpy as np
import pytest
import torch

import strfsolver.ridge
from strfsolver.ridge import DEFAULT_RELATIVE_ALPHAS, RidgeStatistics, fit_ridge, lagged_design, laplacian_penalty

sklearn_linear = pytest.importorskip("sklearn.linear_model")
F64 = torch.float64


def make_stimuli(lengths, n_channels=1, n_bands=3, n_lags=3, n_neurons=4, noise=(0.3, 1.0, 3.0, 10.0), seed=0, weights=None):
    """Ragged stimuli ``[(x (P, T), y (N, T))]`` from known weights ``(N, D)`` plus Gaussian noise per neuron."""
    g = torch.Generator().manual_seed(seed)
    n_features = n_channels * n_bands
    if weights is None:
        weights = torch.randn(n_neurons, n_features * n_lags, generator=g, dtype=F64)
    noise = torch.as_tensor(noise, dtype=F64)[:n_neurons].view(-1, 1)
    stimuli = []
    for length in lengths:
        x = torch.randn(n_features, length, generator=g, dtype=F64) + 0.5
        y = weights @ lagged_design(x, n_lags).T + 2.0 + noise * torch.randn(n_neurons, length, generator=g, dtype=F64)
        stimuli.append((x, y))
    return stimuli, weights


def accumulate(stimuli, n_lags, n_channels=None, keep_data=False):
    stats = RidgeStatistics(n_lags, n_channels=n_channels, keep_data=keep_data)
    for x, y in stimuli:
        stats.add(x, y)
    return stats


def design_and_targets(stimuli, n_lags, neuron, indices=None):
    """Explicit design (stimuli concatenated, each with its own zero history) and one neuron's recorded targets."""
    indices = range(len(stimuli)) if indices is None else indices
    rows, targets = [], []
    for i in indices:
        x, y = stimuli[i]
        keep = ~torch.isnan(y[neuron])
        rows.append(lagged_design(x, n_lags)[keep])
        targets.append(y[neuron][keep])
    return torch.cat(rows).numpy(), torch.cat(targets).numpy()


def sklearn_fit(stimuli, n_lags, neuron, alpha, fit_intercept=True, indices=None):
    design, target = design_and_targets(stimuli, n_lags, neuron, indices)
    return sklearn_linear.Ridge(alpha=alpha, fit_intercept=fit_intercept).fit(design, target)


@pytest.mark.parametrize("n_channels", [1, 2])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_fixed_alpha_equals_sklearn_ridge(n_channels, fit_intercept):
    n_lags = 3
    stimuli, _ = make_stimuli([40, 7, 55, 2], n_channels=n_channels, n_lags=n_lags)
    fit = fit_ridge(accumulate(stimuli, n_lags, n_channels), alpha=3.5, fit_intercept=fit_intercept)
    assert fit.alpha_grid is None and fit.cv_scores is None
    assert fit.strf().shape == (4, n_channels, 3, n_lags)
    for neuron in range(4):
        ref = sklearn_fit(stimuli, n_lags, neuron, 3.5, fit_intercept)
        np.testing.assert_allclose(fit.coef[neuron].numpy(), ref.coef_, rtol=0, atol=1e-6)
        np.testing.assert_allclose(float(fit.intercept[neuron]), ref.intercept_, rtol=0, atol=1e-6)
    torch.testing.assert_close(fit.relative_alphas * fit.scale, torch.full((4,), 3.5, dtype=F64))


def test_per_neuron_alphas_and_both_methods_equal_sklearn():
    stimuli, _ = make_stimuli([30, 25, 40])
    stats = accumulate(stimuli, 3)
    alphas = torch.tensor([0.1, 50.0, 0.1, 7.0], dtype=F64)
    for method in ("cholesky", "eigh"):
        fit = fit_ridge(stats, alpha=alphas, method=method)
        assert torch.equal(fit.alphas, alphas)
        for neuron in range(4):
            ref = sklearn_fit(stimuli, 3, neuron, float(alphas[neuron]))
            np.testing.assert_allclose(fit.coef[neuron].numpy(), ref.coef_, rtol=0, atol=1e-8)


def brute_force(stimuli, n_lags, grid, folds, scoring="corr", n_neurons=4):
    """``(K, A, N)`` held-out scores from sklearn refits on the explicit design."""
    scores = np.full((len(folds), len(grid), n_neurons), np.nan)
    for f, (train, test) in enumerate(folds):
        for neuron in range(n_neurons):
            design, target = design_and_targets(stimuli, n_lags, neuron, test)
            for a, alpha in enumerate(grid):
                if len(target) == 0:
                    continue
                pred = sklearn_fit(stimuli, n_lags, neuron, alpha, indices=train).predict(design)
                scores[f, a, neuron] = np.corrcoef(pred, target)[0, 1] if scoring == "corr" else np.mean((pred - target) ** 2)
    return scores


def best_alpha(scores, grid, scoring):
    key = scores if scoring == "corr" else -scores
    return np.array([grid[len(grid) - 1 - np.nanargmax(key[::-1, n])] for n in range(key.shape[1])])


@pytest.mark.parametrize("scoring", ["corr", "mse"])
def test_chosen_alphas_equal_a_brute_force_search(scoring):
    n_lags = 3
    stimuli, _ = make_stimuli([30, 22, 35, 18, 28, 25, 31], n_lags=n_lags, seed=1)
    stimuli[2][1][1] = math.nan  # neuron 1 not recorded in stimulus 2 (a fold of its own below)
    stimuli[4][1][2, 5:12] = math.nan  # neuron 2 partially recorded in stimulus 4
    stats = accumulate(stimuli, n_lags)
    fit = fit_ridge(stats, cv=3, scoring=scoring, search_dtype="float64")  # exact to rounding: see the float32 test below
    grid = fit.alpha_grid.numpy()
    np.testing.assert_allclose(grid, np.array(DEFAULT_RELATIVE_ALPHAS) * fit.scale, rtol=1e-12)
    folds = [([3, 4, 5, 6], [0, 1, 2]), ([0, 1, 2, 5, 6], [3, 4]), ([0, 1, 2, 3, 4], [5, 6])]
    assert fit.folds == folds
    reference = brute_force(stimuli, n_lags, grid, folds, scoring)
    np.testing.assert_allclose(fit.fold_scores.numpy(), reference, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(fit.cv_scores.numpy(), np.nanmean(reference, 0), rtol=1e-7, atol=1e-9)
    chosen = best_alpha(np.nanmean(reference, 0), grid, scoring)
    np.testing.assert_array_equal(fit.alphas.numpy(), chosen)
    assert len(set(chosen.tolist())) > 1  # the neurons' noise levels differ: so must their alphas
    for neuron in range(4):
        ref = sklearn_fit(stimuli, n_lags, neuron, chosen[neuron])
        np.testing.assert_allclose(fit.coef[neuron].numpy(), ref.coef_, rtol=0, atol=1e-6)


@pytest.mark.parametrize("scoring", ["corr", "mse"])
def test_the_float32_search_scores_as_the_float64_one_and_refits_exactly(scoring):
    # the default: the alpha search in float32, the chosen alphas refitted in float64
    stimuli, _ = make_stimuli([30, 22, 35, 18, 28, 25, 31], n_lags=3, seed=1)
    stimuli[4][1][2, 5:12] = math.nan
    stats = accumulate(stimuli, 3)
    fast, exact = fit_ridge(stats, cv=3, scoring=scoring), fit_ridge(stats, cv=3, scoring=scoring, search_dtype="float64")
    scale = exact.fold_scores.abs().nan_to_num().max()
    assert float((fast.fold_scores - exact.fold_scores).abs().nan_to_num().max()) < 1e-5 * float(scale)
    assert not torch.equal(fast.fold_scores, exact.fold_scores)  # it did run in float32
    assert torch.equal(fast.alphas, exact.alphas)
    torch.testing.assert_close(fast.coef, exact.coef, rtol=0, atol=1e-12)  # the refit: float64, the same alphas
    torch.testing.assert_close(fast.intercept, exact.intercept, rtol=0, atol=1e-12)


@pytest.mark.parametrize("scoring", ["corr", "mse"])
def test_the_float32_search_keeps_high_snr_scores_in_range_and_their_alphas(scoring):
    # white features, neurons from nearly noiseless to noisy: the best alphas are small, the differences
    # between neighbouring alphas' scores below float32's rounding of a held-out Gram (scored in float32,
    # correlations went above 1, MSEs below 0, and some neurons got a neighbouring alpha)
    g = torch.Generator().manual_seed(0)
    n_bands, n_lags, n_neurons = 8, 5, 8
    weights = torch.randn(n_neurons, n_bands * n_lags, generator=g, dtype=F64)
    noise = torch.logspace(-6, -2, n_neurons, dtype=F64).view(-1, 1)
    stats = RidgeStatistics(n_lags)
    for _ in range(6):
        x = torch.randn(n_bands, 600, generator=g, dtype=F64) + 0.5
        y = weights @ lagged_design(x, n_lags).T
        stats.add(x, y + noise * y.std() * torch.randn(y.shape, generator=g, dtype=F64))
    fast = fit_ridge(stats, cv=3, scoring=scoring)
    exact = fit_ridge(stats, cv=3, scoring=scoring, search_dtype="float64")
    assert torch.equal(fast.alphas, exact.alphas)
    if scoring == "corr":
        assert float(fast.fold_scores.max()) <= 1.0
    else:
        assert float(fast.fold_scores.min()) >= 0.0
    # a nearly noiseless neuron's MSE is ~1e-5 of the target variance (about 40): the float32 weights add ~1e-8 to it
    torch.testing.assert_close(fast.cv_scores, exact.cv_scores, rtol=1e-5, atol=1e-12 if scoring == "corr" else 1e-7)


def test_an_alpha_float32_cannot_resolve_is_searched_in_float64():
    # two copies of one band: the Gram is singular, so at a tiny alpha the system's condition is
    # about 1 / alpha; a float32 factor would fail or lose every digit there
    stimuli, _ = make_stimuli([40, 35, 45, 38], n_lags=3, seed=5)
    doubled = [(torch.cat([x, x[:1]], 0), y) for x, y in stimuli]
    stats = accumulate(doubled, 3)
    grid = [1e-9, 1e-2, 1.0]
    fast = fit_ridge(stats, relative_alphas=grid, cv=2, search_dtype="float32")
    exact = fit_ridge(stats, relative_alphas=grid, cv=2, search_dtype="float64")
    torch.testing.assert_close(fast.fold_scores, exact.fold_scores, rtol=0, atol=1e-5)
    assert torch.equal(fast.alphas, exact.alphas)


def test_pooled_scores_are_those_of_all_held_out_bins_together():
    stimuli, _ = make_stimuli([30, 22, 35, 18], seed=2)
    stats = accumulate(stimuli, 3)
    folds = [([1, 2, 3], [0]), ([0, 2, 3], [1]), ([0, 1, 3], [2]), ([0, 1, 2], [3])]
    fit = fit_ridge(stats, cv="loso", relative_alphas=[0.01, 1.0], selection="pooled", search_dtype="float64")
    assert fit.folds == folds
    for a, alpha in enumerate(fit.alpha_grid.tolist()):
        for neuron in range(4):
            preds, targets = [], []
            for train, test in folds:
                design, target = design_and_targets(stimuli, 3, neuron, test)
                preds.append(sklearn_fit(stimuli, 3, neuron, alpha, indices=train).predict(design))
                targets.append(target)
            expected = np.corrcoef(np.concatenate(preds), np.concatenate(targets))[0, 1]
            assert float(fit.pooled_scores[a, neuron]) == pytest.approx(expected, abs=1e-10)
    assert torch.equal(fit.alphas, fit.alpha_grid[torch.tensor([1 - int(torch.argmax(fit.pooled_scores[:, n].flip(0))) for n in range(4)])])


def explicit_loo(stimuli, n_lags, neuron, alpha, fit_intercept):
    design, target = design_and_targets(stimuli, n_lags, neuron)
    loo = np.empty_like(target)
    for i in range(len(target)):
        keep = np.arange(len(target)) != i
        model = sklearn_linear.Ridge(alpha=alpha, fit_intercept=fit_intercept).fit(design[keep], target[keep])
        loo[i] = model.predict(design[i : i + 1])[0]
    return loo, target


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_gcv_equals_explicit_leave_one_bin_out(fit_intercept):
    stimuli, _ = make_stimuli([34, 26], n_bands=2, n_lags=3, n_neurons=2, seed=3)  # 60 bins, 6 features
    stimuli[1][1][1, 5:15] = math.nan  # neuron 1: its own bins, its own hat matrix
    stats = accumulate(stimuli, 3, keep_data=True)
    grid = [0.01, 1.0, 30.0]
    for scoring in ("corr", "mse"):
        fit = fit_ridge(stats, alphas=grid, cv="gcv", scoring=scoring, fit_intercept=fit_intercept)
        for a, alpha in enumerate(grid):
            for neuron in range(2):
                loo, target = explicit_loo(stimuli, 3, neuron, alpha, fit_intercept)
                expected = np.corrcoef(loo, target)[0, 1] if scoring == "corr" else np.mean((loo - target) ** 2)
                assert float(fit.cv_scores[a, neuron]) == pytest.approx(expected, rel=1e-9)
        assert fit.fold_scores.shape == (1, 3, 2)


def test_a_neuron_missing_a_whole_stimulus_fits_as_without_it():
    stimuli, _ = make_stimuli([30, 22, 35, 18, 28], seed=4)
    stimuli[1][1][0] = math.nan
    without = [(x, y[:1]) for i, (x, y) in enumerate(stimuli) if i != 1]
    stats, stats_without = accumulate(stimuli, 3), accumulate(without, 3)
    fixed, fixed_without = fit_ridge(stats, alpha=2.0), fit_ridge(stats_without, alpha=2.0)
    torch.testing.assert_close(fixed.coef[0], fixed_without.coef[0], rtol=0, atol=1e-10)
    torch.testing.assert_close(fixed.intercept[0], fixed_without.intercept[0], rtol=0, atol=1e-10)
    grid = [0.1, 3.0, 100.0, 3000.0]  # absolute: the relative reference sees every stimulus' features
    cv, cv_without = (fit_ridge(s, alphas=grid, cv="loso", search_dtype="float64") for s in (stats, stats_without))
    assert bool(torch.isnan(cv.fold_scores[1, :, 0]).all())  # its held-out stimulus: no score, ignored
    torch.testing.assert_close(cv.cv_scores[:, 0], cv_without.cv_scores[:, 0], rtol=0, atol=1e-10)
    assert float(cv.alphas[0]) == float(cv_without.alphas[0])
    torch.testing.assert_close(cv.coef[0], cv_without.coef[0], rtol=0, atol=1e-10)


@pytest.mark.parametrize("options", [dict(cv=3), dict(cv="loso", method="eigh"), dict(cv="gcv"), dict(alpha=2.0), dict(cv=3, penalty="laplacian")])
def test_fitting_leaves_the_statistics_unchanged_and_repeats_exactly(options):
    # the search centers and factors its Grams in place: never those the statistics hold
    stimuli, _ = make_stimuli([20, 15, 18, 22, 17], seed=21)
    stimuli[1][1][2, 3:8] = math.nan  # a partial class
    stimuli[3][1][1] = math.nan  # a neuron missing a stimulus
    stats = accumulate(stimuli, 3, keep_data=True)
    held = [t.clone() for g in stats.groups for c in [g.all_bins, *g.classes] for t in (c.gram, c.total)]
    held += [t.clone() for g in stats.groups for t in (g.cross, g.target_sum, g.target_sq)]
    first, second = fit_ridge(stats, **options), fit_ridge(stats, **options)
    now = [t for g in stats.groups for c in [g.all_bins, *g.classes] for t in (c.gram, c.total)]
    now += [t for g in stats.groups for t in (g.cross, g.target_sum, g.target_sq)]
    assert all(torch.equal(a, b) for a, b in zip(held, now))
    assert torch.equal(first.coef, second.coef) and torch.equal(first.intercept, second.intercept)
    if first.cv_scores is not None:
        assert torch.equal(first.cv_scores.nan_to_num(-9.0), second.cv_scores.nan_to_num(-9.0))


def test_pooling_stimuli_into_groups_equals_folds_over_those_stimuli():
    stimuli, _ = make_stimuli([20, 15, 18, 22, 17, 19], seed=15)
    stimuli[1][1][2, 3:8] = math.nan
    stimuli[4][1][3] = math.nan
    pooled = RidgeStatistics(3)
    for i, (x, y) in enumerate(stimuli):
        pooled.add(x, y, group=f"fold {i // 2}")  # three groups of two stimuli
    per_stimulus = accumulate(stimuli, 3)
    folds = [([2, 3, 4, 5], [0, 1]), ([0, 1, 4, 5], [2, 3]), ([0, 1, 2, 3], [4, 5])]
    fit_pooled, fit = fit_ridge(pooled, cv=3), fit_ridge(per_stimulus, cv=folds)
    assert pooled.n_groups == 3 and pooled.n_stimuli == 6
    torch.testing.assert_close(fit_pooled.fold_scores, fit.fold_scores, rtol=0, atol=1e-10)
    assert torch.equal(fit_pooled.relative_alphas, fit.relative_alphas)  # absolute ones: the same up to rounding of the scale
    torch.testing.assert_close(fit_pooled.coef, fit.coef, rtol=0, atol=1e-10)


def test_a_partially_recorded_neuron_fits_exactly():
    stimuli, _ = make_stimuli([30, 22, 35], seed=5)
    stimuli[0][1][3, 4:9] = math.nan
    stimuli[2][1][3, 20:] = math.nan
    fit = fit_ridge(accumulate(stimuli, 3), alpha=0.7)
    ref = sklearn_fit(stimuli, 3, 3, 0.7)
    np.testing.assert_allclose(fit.coef[3].numpy(), ref.coef_, rtol=0, atol=1e-8)
    np.testing.assert_allclose(float(fit.intercept[3]), ref.intercept_, rtol=0, atol=1e-8)


def test_a_fold_without_training_data_for_a_neuron_scores_nan_there():
    stimuli, _ = make_stimuli([30, 22, 35, 25], seed=6)
    stimuli[0][1][2] = stimuli[1][1][2] = math.nan
    folds = [(np.array([0, 1]), np.array([2, 3])), ([2, 3], [0, 1]), ([0, 2], [1, 3])]  # numpy indices, as a splitter gives
    fit = fit_ridge(accumulate(stimuli, 3), cv=folds)
    assert bool(torch.isnan(fit.fold_scores[:2, :, 2]).all()) and bool(torch.isfinite(fit.fold_scores[2, :, 2]).all())
    torch.testing.assert_close(fit.cv_scores[:, 2], fit.fold_scores[2, :, 2])


def test_rescaled_features_give_the_same_predictions_and_relative_alphas():
    stimuli, _ = make_stimuli([40, 30, 45, 35, 38], seed=7)
    fit = fit_ridge(accumulate(stimuli, 3))
    fit_big = fit_ridge(accumulate([(1000 * x, y) for x, y in stimuli], 3))
    assert torch.equal(fit.relative_alphas, fit_big.relative_alphas)
    design = torch.cat([lagged_design(x, 3) for x, _ in stimuli])
    torch.testing.assert_close(design @ fit.coef.T + fit.intercept, (1000 * design) @ fit_big.coef.T + fit_big.intercept, rtol=0, atol=1e-8)


def test_coefficients_recover_known_weights():
    stimuli, weights = make_stimuli([400, 350, 500, 450, 380], n_bands=4, n_lags=5, noise=(1.0, 2.0, 1.0), n_neurons=3, seed=8)
    fit = fit_ridge(accumulate(stimuli, 5))
    for neuron in range(3):
        r = np.corrcoef(fit.coef[neuron].numpy(), weights[neuron].numpy())[0, 1]
        assert r >= 0.95, (neuron, r)


def test_laplacian_with_a_fixed_alpha_is_the_dense_closed_form():
    n_lags = 4
    stimuli, _ = make_stimuli([30, 25, 20], n_channels=2, n_bands=3, n_lags=n_lags, seed=9)
    fit = fit_ridge(accumulate(stimuli, n_lags, n_channels=2), alpha=5.0, penalty="laplacian")
    pen = laplacian_penalty(2, 3, n_lags)
    for neuron in range(4):
        design, target = (torch.from_numpy(a) for a in design_and_targets(stimuli, n_lags, neuron))
        mu, ybar = design.mean(0), target.mean()
        centered = design - mu
        w = torch.linalg.solve(centered.T @ centered + 5.0 * pen, centered.T @ (target - ybar))
        torch.testing.assert_close(fit.coef[neuron], w, rtol=0, atol=1e-10)
        torch.testing.assert_close(fit.intercept[neuron], ybar - mu @ w, rtol=0, atol=1e-10)


def test_laplacian_penalty_is_the_sum_of_squared_second_differences():
    w = torch.randn(2, 4, 5, dtype=F64)  # (C, F, L)
    lag_diff = w[:, :, :-2] - 2 * w[:, :, 1:-1] + w[:, :, 2:]
    band_diff = w[:, :-2] - 2 * w[:, 1:-1] + w[:, 2:]
    expected = (lag_diff**2).sum() + (band_diff**2).sum()
    flat = w.reshape(-1)
    assert float(flat @ laplacian_penalty(2, 4, 5) @ flat) == pytest.approx(float(expected), rel=1e-12)


def test_laplacian_recovers_a_smooth_strf_better_than_ridge():
    n_bands, n_lags = 8, 8
    bands, lags = torch.arange(n_bands, dtype=F64), torch.arange(n_lags, dtype=F64)
    centres = torch.tensor([2.0, 4.0, 5.5])
    smooth = torch.exp(-((bands.view(1, -1, 1) - centres.view(-1, 1, 1)) ** 2) / 4) * torch.sin(lags / 2.5) * torch.exp(-lags / 4)
    weights = smooth.reshape(3, -1)
    stimuli, _ = make_stimuli([30, 25, 35, 28, 32], n_bands=n_bands, n_lags=n_lags, n_neurons=3, noise=(1.5, 1.5, 1.5), seed=10, weights=weights)
    stats = accumulate(stimuli, n_lags)
    recovery = {}
    for penalty in ("ridge", "laplacian"):
        coef = fit_ridge(stats, penalty=penalty, relative_alphas=10.0 ** torch.arange(-3.0, 4.0)).coef
        recovery[penalty] = np.mean([np.corrcoef(coef[n].numpy(), weights[n].numpy())[0, 1] for n in range(3)])
    assert recovery["laplacian"] > recovery["ridge"] + 0.05, recovery


def test_ties_go_to_the_larger_alpha():
    stimuli, _ = make_stimuli([20, 20, 20], seed=11)
    for x, y in stimuli:
        y[1] = 4.0  # a constant neuron: no correlation at any alpha
    fit = fit_ridge(accumulate(stimuli, 3), cv=3)
    assert bool(torch.isnan(fit.cv_scores[:, 1]).all()) and float(fit.alphas[1]) == float(fit.alpha_grid[-1])


@pytest.fixture(scope="module")
def small_stats():
    stimuli, _ = make_stimuli([20, 15, 18, 22], seed=12)
    return accumulate(stimuli, 3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"alphas": []}, "alphas is empty"),
        ({"alphas": [1.0, -1.0]}, r"alphas must be finite and > 0"),
        ({"relative_alphas": [math.nan]}, r"relative_alphas must be finite and > 0"),
        ({"relative_alphas": [[1.0]]}, "relative_alphas must be one-dimensional"),
        ({"alpha": 0.0}, r"alpha must be finite and > 0"),
        ({"alpha": torch.ones(5)}, r"alpha must be a float or have shape \(4,\)"),
        ({"alpha": 1.0, "alphas": [1.0]}, "at most one of alphas"),
        ({"scoring": "r2"}, r"unknown scoring='r2'; expected one of \['corr', 'mse'\]"),
        ({"penalty": "lasso"}, "unknown penalty='lasso'"),
        ({"method": "qr"}, "unknown method='qr'"),
        ({"selection": "best"}, "unknown selection='best'"),
        ({"cv": "kfold"}, "cv must be an integer >= 2, 'loso', 'gcv'"),
        ({"cv": 1}, "cv must be >= 2 folds"),
        ({"cv": 5}, r"cv=5 folds but the statistics hold only 4 stimuli"),
        ({"cv": [([0, 1], [1])]}, "cv fold 0 has train=.*disjoint"),
        ({"cv": [([0], [7])]}, r"cv fold 0 .*\[0, 4\)"),
        ({"cv": 3.5}, "cv must be an integer"),
        ({"cv": [([0.5], [1])]}, "iterable of \\(train, test\\) stimulus indices"),
        ({"cv": "gcv"}, "keep_data=True"),
        ({"penalty": "laplacian", "method": "eigh"}, "method='eigh' does not apply"),
        ({"search_dtype": "bfloat16"}, "unknown search_dtype='bfloat16'"),
    ],
)
def test_bad_arguments_raise(small_stats, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_ridge(small_stats, **kwargs)


def test_neurons_without_any_data_and_empty_statistics_raise():
    stimuli, _ = make_stimuli([20, 15], seed=13)
    for _, y in stimuli:
        y[1] = math.nan
    with pytest.raises(ValueError, match=r"neurons \[1\] have no recorded bin"):
        fit_ridge(accumulate(stimuli, 3), alpha=1.0)
    with pytest.raises(ValueError, match="at least one stimulus"):
        fit_ridge(RidgeStatistics(3))
    with pytest.raises(ValueError, match="at least 3 lags or 3 bands"):
        fit_ridge(accumulate([(x[:2], y) for x, y in make_stimuli([20, 15], seed=14)[0]], 2), penalty="laplacian", alpha=1.0)


def test_the_package_example_runs():
    result = doctest.testmod(strfsolver.ridge)
    assert result.attempted > 0 and result.failed == 0
