"""STRFEstimator inside scikit-learn: estimator checks, clone, Pipeline, GridSearchCV + GroupKFold."""

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV, GroupKFold, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer, StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import (  # noqa: E402
    check_methods_sample_order_invariance,
    check_methods_subset_invariance,
    parametrize_with_checks,
)
from sklearn.utils.validation import check_is_fitted  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402

from strfsolver.estimator import STRFEstimator  # noqa: E402

# Checks that do not apply to a time-lagged encoding model. Rows of X are
# consecutive time bins and the prediction at bin t depends on bins
# t - n_lags + 1 .. t, so the row order and the neighbours of a row are data.
EXPECTED_FAILED_CHECKS = {
    "check_methods_sample_order_invariance": (
        "rows are time bins: shuffling them changes every bin's past, so predictions of a time-lagged "
        "model are not a permutation of the unshuffled ones (they are when n_lags=1, tested below)"
    ),
    "check_methods_subset_invariance": (
        "predicting a subset of rows drops the earlier bins the lags read, so the first n_lags - 1 "
        "predictions of a subset differ from those in the full array (they agree when n_lags=1, tested below)"
    ),
}


def checked_estimator(n_lags=3):
    return STRFEstimator(model="linear", n_lags=n_lags, lr=0.01, max_epochs=3, patience=2, batch_size=4, random_state=0)


# xfail_strict: a listed check that starts to pass fails the suite, so the list stays honest
@parametrize_with_checks(
    [checked_estimator()], expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS, xfail_strict=True
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("check", [check_methods_sample_order_invariance, check_methods_subset_invariance])
def test_row_invariance_checks_hold_without_lags(check):
    # the two excluded checks fail because of the lags only: with one lag the model is row-wise
    check("STRFEstimator", checked_estimator(n_lags=1))


def data(n_stims=6, n_times=24, seed=0, F=4, N=2):
    rng = np.random.default_rng(seed)
    X = [rng.random((n_times, F)) for _ in range(n_stims)]
    y = [np.concatenate([[0.0], x[:-1, 0]])[:, None] * [1.0, -2.0][:N] + 0.2 * rng.standard_normal((n_times, N)) for x in X]
    return X, y


def test_clone_copies_parameters_not_the_fit():
    X, y = data()
    est = checked_estimator().set_params(model_kwargs={"kernel": "full"}).fit(X, y)
    copy = clone(est)
    assert copy.get_params() == est.get_params()
    assert copy.model_kwargs is not est.model_kwargs  # a deep copy of the dict
    assert not hasattr(copy, "model_")
    with pytest.raises(NotFittedError):
        check_is_fitted(copy)
    check_is_fitted(est)
    np.testing.assert_array_equal(copy.fit(X, y).strfs_, est.strfs_)


def test_pipeline_with_a_scaler_equals_scaling_by_hand():
    X, y = data(n_stims=1, n_times=60)
    X, y = X[0] * 5 + 3, y[0]
    pipe = make_pipeline(StandardScaler(), checked_estimator()).fit(X, y)
    scaled = StandardScaler().fit_transform(X)
    alone = checked_estimator().fit(scaled, y)
    np.testing.assert_allclose(pipe.predict(X), alone.predict(scaled), rtol=1e-6)
    assert pipe.score(X, y) == pytest.approx(alone.score(scaled, y))


def test_pipeline_with_a_function_transformer_on_a_list_of_stimuli():
    X, y = data()
    log_compress = FunctionTransformer(lambda stims: [np.log1p(s) for s in stims])
    pipe = make_pipeline(log_compress, checked_estimator()).fit(X, y)
    alone = checked_estimator().fit([np.log1p(s) for s in X], y)
    for a, b in zip(pipe.predict(X), alone.predict([np.log1p(s) for s in X])):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_grid_search_with_group_kfold_over_a_concatenated_array():
    X, y = data(n_stims=6, n_times=20)
    groups = np.repeat(np.arange(6), 20)  # the stimulus each row belongs to
    Xc, yc = np.concatenate(X), np.concatenate(y)
    search = GridSearchCV(checked_estimator(), {"n_lags": [1, 2], "lr": [0.01, 0.05]}, cv=GroupKFold(n_splits=3))
    search.fit(Xc, yc, groups=groups)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_params_ in search.cv_results_["params"]
    # the refit is the estimator with the best parameters, fitted on all rows
    refit = checked_estimator().set_params(**search.best_params_).fit(Xc, yc)
    np.testing.assert_array_equal(search.best_estimator_.predict(Xc), refit.predict(Xc))
    # each fold's score is the estimator's score on its held-out stimuli
    train, test = next(GroupKFold(n_splits=3).split(Xc, yc, groups))
    assert set(groups[train]).isdisjoint(groups[test])
    est = checked_estimator().set_params(**search.cv_results_["params"][0]).fit(Xc[train], yc[train])
    assert search.cv_results_["split0_test_score"][0] == pytest.approx(est.score(Xc[test], yc[test]))


def test_cross_validation_over_a_list_of_stimuli():
    # scikit-learn indexes a list by its first axis: one stimulus per sample, so folds hold whole stimuli
    X, y = data(n_stims=6, n_times=20)
    scores = cross_val_score(checked_estimator(), X, y, groups=np.arange(6), cv=GroupKFold(n_splits=3))
    assert scores.shape == (3,) and np.isfinite(scores).all()
    train, test = next(GroupKFold(n_splits=3).split(X, y, np.arange(6)))
    manual = checked_estimator().fit([X[i] for i in train], [y[i] for i in train])
    assert scores[0] == pytest.approx(manual.score([X[i] for i in test], [y[i] for i in test]))
