"""cross_validate: equal to fitting the folds by hand, nested search blind to held-out stimuli,
the same tables on any executor, and an interrupted run that resumes without refitting."""

import numpy as np
import pytest
import torch

import strfsolver
from strfsolver.workflow.experiment import build_experiment
from strfsolver.metrics import corrcoef, normalized_corrcoef
from strfsolver.model_selection import StimulusKFold, compare, cross_validate
from strfsolver.model_selection import crossval as crossval_module
from strfsolver.solver.ridge import RidgeSolver

RIDGE = {"model": "linear", "model_options": {"n_lags": 3}, "solver": "ridge", "solver_options": {"alpha": 1.0}}
LN = {"model": "ln", "model_options": {"n_lags": 3}, "solver_options": {"max_epochs": 3, "lr": 1e-2}}


@pytest.fixture(scope="module")
def population():
    return strfsolver.data.synthetic_population(n_neurons=3, n_stims=6, n_repeats=3, n_freqs=4, n_lags=3, n_times=40, seed=2)


def without_seconds(frame):
    return frame.drop(columns=["seconds"]).reset_index(drop=True)


def test_fixed_ridge_equals_folds_fitted_by_hand(population):
    dataset = population.dataset
    cv = StimulusKFold(3, shuffle=True, seed=5)
    result = cross_validate(RIDGE, dataset, cv=cv)
    preds = [None] * dataset.n_stims
    for train, test in cv.split(dataset):
        experiment = build_experiment(RIDGE, dataset.subset(train.tolist())).fit()
        for position, pred in zip(test, experiment.solver.transform([dataset.stims[i] for i in test])):
            preds[position] = pred
    # equal-length stimuli stacked as one batch: the metrics pool all (stimulus, bin) positions
    stacked_pred = torch.stack(preds).double()
    stacked_resp = torch.stack(dataset.responses).double()
    expected_cc = corrcoef(stacked_pred, stacked_resp).numpy()
    expected_norm = normalized_corrcoef(stacked_pred, stacked_resp).numpy()
    assert np.allclose(result.summary["cc"], expected_cc, atol=1e-6)
    assert np.allclose(result.summary["cc_norm"], expected_norm, atol=1e-6)
    assert np.allclose(np.stack(result.predictions), stacked_pred[:, :, 0].numpy(), atol=1e-6)
    # the long table: one row per fold and neuron, fold scores on that fold's stimuli only
    assert len(result.scores) == 3 * dataset.n_neurons
    first_test = next(iter(cv.split(dataset)))[1]
    fold0 = result.scores[result.scores["fold"] == 0]["cc"].to_numpy()
    assert np.allclose(fold0, corrcoef(stacked_pred[first_test], stacked_resp[first_test]).numpy(), atol=1e-6)
    assert np.allclose(result.scores["alpha"], 1.0)
    # the fold mean sits beside the pooled score, not in its place
    assert np.allclose(result.summary["cc_fold_mean"], result.scores.groupby("neuron")["cc"].mean().to_numpy())


SEEN = []


class RecordingRidge(RidgeSolver):
    """The ridge solver, noting the stimuli every fit is shown (training and early stopping)."""

    def fit(self, loader, valid_loader=None, **kwargs):
        shown = {m["index"] for batch in loader for m in batch["meta"]}
        if valid_loader is not None:
            shown |= {m["index"] for batch in valid_loader for m in batch["meta"]}
        SEEN.append(shown)
        return super().fit(loader, valid_loader, **kwargs)


@pytest.fixture
def recording_ridge():
    """The recording solver, registered for one test only (the registry is shared by the whole suite)."""
    strfsolver.solver.register("recording-ridge", override=True)(RecordingRidge)
    yield "recording-ridge"
    strfsolver.solver._registry_state.entries.pop("recording-ridge", None)


def test_nested_search_never_sees_the_held_out_stimuli(population, recording_ridge):
    dataset = population.dataset
    spec = dict(RIDGE, solver=recording_ridge)
    SEEN.clear()
    outer, inner = StimulusKFold(3), StimulusKFold(2)
    grid = {"solver_options.alpha": [0.01, 100.0]}
    result = cross_validate(spec, dataset, cv=outer, inner_cv=inner, param_grid=grid)
    fits_per_fold = 2 * 2 + 1  # two candidates x two inner folds, then the refit
    assert len(SEEN) == 3 * fits_per_fold
    for fold, (train, test) in enumerate(outer.split(dataset)):
        fits = SEEN[fold * fits_per_fold:(fold + 1) * fits_per_fold]
        for shown in fits:
            assert shown.isdisjoint(test.tolist())
        assert fits[-1] == set(train.tolist())  # the refit uses every training stimulus
    chosen = result.scores.groupby("fold")["solver_options.alpha"].first()
    assert set(chosen) <= {0.01, 100.0}
    assert result.folds[0]["inner"][0]["params"] == {"solver_options.alpha": 0.01}


def test_process_pool_and_dask_give_the_sequential_tables(population, spawn_pool):
    dataset = population.dataset
    specs = {"ridge": RIDGE, "ln": LN}
    sequential = compare(specs, dataset, cv=2, threads=1, n_boot=200)
    pooled = compare(specs, dataset, cv=2, executor=spawn_pool, threads=1, n_boot=200)
    assert without_seconds(pooled.scores).equals(without_seconds(sequential.scores))
    assert pooled.summary.equals(sequential.summary)
    assert pooled.pairs.equals(sequential.pairs)
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None)
    with cluster, distributed.Client(cluster) as client:
        dasked = compare(specs, dataset, cv=2, executor=client.get_executor(), threads=1, n_boot=200)
    assert without_seconds(dasked.scores).equals(without_seconds(sequential.scores))


def test_interrupted_run_resumes_without_refitting_finished_folds(population, tmp_path, monkeypatch):
    dataset = population.dataset
    real_fit_fold = crossval_module.fit_fold
    calls = []

    def interrupted_after_two(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(kwargs["fold"])
        return real_fit_fold(*args, **kwargs)

    monkeypatch.setattr(crossval_module, "fit_fold", interrupted_after_two)
    with pytest.raises(KeyboardInterrupt):
        cross_validate(RIDGE, dataset, cv=3, logdir=tmp_path)
    assert sorted(p.name for p in (tmp_path / "folds" / "model").iterdir()) == ["fold-0.safetensors", "fold-1.safetensors"]

    refitted = []

    def counting(*args, **kwargs):
        refitted.append(kwargs["fold"])
        return real_fit_fold(*args, **kwargs)

    monkeypatch.setattr(crossval_module, "fit_fold", counting)
    resumed = cross_validate(RIDGE, dataset, cv=3, logdir=tmp_path)
    assert refitted == [2]
    monkeypatch.setattr(crossval_module, "fit_fold", real_fit_fold)
    fresh = cross_validate(RIDGE, dataset, cv=3)
    assert without_seconds(resumed.scores).equals(without_seconds(fresh.scores))
    assert resumed.summary.equals(fresh.summary)
    # a stored fold of other settings is refused, not silently reused
    with pytest.raises(ValueError, match="fitted with other settings"):
        cross_validate(dict(RIDGE, solver_options={"alpha": 2.0}), dataset, cv=3, logdir=tmp_path)


def test_bad_specs_and_grids_are_refused_before_fitting(population):
    dataset = population.dataset
    with pytest.raises(ValueError, match="unknown experiment key"):
        cross_validate({"modle": "linear"}, dataset, cv=2)
    with pytest.raises(ValueError, match="does not name a spec field"):
        cross_validate(RIDGE, dataset, cv=2, param_grid={"lr": [0.1]})
    with pytest.raises(ValueError, match="non-empty list"):
        cross_validate(RIDGE, dataset, cv=2, param_grid={"solver_options.alpha": []})
    with pytest.raises(ValueError, match="NeuralDataset"):
        cross_validate(RIDGE, [np.zeros((3, 4))], cv=2)
    with pytest.raises(ValueError, match="not used in cross-validation"):
        cross_validate(dict(RIDGE, logdir="x"), dataset, cv=2)


def test_a_folds_fit_advice_is_kept_and_reported_with_its_fold(population):
    from strfsolver.solver.diagnostics import FitWarning

    spec = dict(LN, solver_options={"max_epochs": 6, "lr": 1e-3, "patience": None})  # stopped while still improving
    with pytest.warns(FitWarning, match=r"model 'short', fold \d: .*still improving"):
        result = cross_validate(spec, population.dataset, cv=2, name="short")
    assert all(any("still improving" in text for text in fold["advice"]) for fold in result.folds)
