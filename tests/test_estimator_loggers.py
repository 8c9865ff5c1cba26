"""Loggers chosen in the estimator: objects, names written into logdir, one set per seed."""

import csv

import numpy as np
import pytest

from strfsolver import STRFEstimator


def data(n_stims=4, n_times=30, seed=0):
    rng = np.random.default_rng(seed)
    X = [rng.random((n_times, 3)) for _ in range(n_stims)]
    y = [np.concatenate([[0.0], x[:-1, 1]])[:, None] * [1.0, 2.0] + 0.1 * rng.standard_normal((n_times, 2)) for x in X]
    return X, y


def estimator(**kwargs):
    options = dict(model="ln", solver="population", n_lags=2, lr=0.05, max_epochs=3, patience=None, batch_size=1, random_state=0)
    options.update(kwargs)
    return STRFEstimator(**options)


def test_named_and_object_loggers_see_every_epoch(tmp_path):
    seen = []
    est = estimator(loggers=["csv", seen.append], logdir=str(tmp_path)).fit(*data())
    rows = list(csv.DictReader((tmp_path / "history.csv").open()))
    assert len(rows) == est.n_iter_ == len(seen) == 3
    assert [float(r["train_loss"]) for r in rows] == pytest.approx(list(est.history_["train_loss"]), rel=1e-5)


def test_multi_seed_loggers_write_one_folder_per_seed(tmp_path):
    estimator(solver="multi-seed", loggers=["jsonl"], logdir=str(tmp_path)).fit(*data())
    assert sorted(p.parent.name for p in tmp_path.glob("*/history.jsonl")) == ["seed_0", "seed_1", "seed_2"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(loggers=["csv"]), "give logdir"),
        (dict(loggers="csv", logdir="x"), "must be a list"),
        (dict(loggers=["neptune"], logdir="x"), "unknown logger 'neptune'"),
        (dict(solver="multi-seed", loggers=[print], logdir="x"), "each seed needs loggers of its own"),
    ],
)
def test_bad_logger_choices_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        estimator(**kwargs).fit(*data())
