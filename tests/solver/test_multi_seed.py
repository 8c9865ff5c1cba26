"""The "multi-seed" solver: seeding, aggregation, files, best seed, bad arguments."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

import strfsolver
from strfsolver.utils import io
from strfsolver.data import make_loader
from strfsolver.solver import checkpoint
from strfsolver.solver.multi_seed import MultiSeedResult, derive_shuffle_seed

from solver_helpers import SIZES, make_linear

N = SIZES["n_neurons"]
FAST = dict(max_epochs=3, lr=1e-2)


def factory(seed):
    return make_linear(SIZES["n_freqs"], SIZES["n_lags"], N)


@pytest.fixture
def test_loader(splits):
    # the validation stimuli again: enough for a second split of metrics
    return make_loader(splits[1], batch_size=2)


def test_registered():
    assert "multi-seed" in strfsolver.solver.get_options()
    assert isinstance(strfsolver.solver.init("multi-seed", model_factory=factory), strfsolver.solver.MultiSeedSolver)


def test_files_and_summary_match_the_per_seed_files(loaders, test_loader, tmp_path):
    ms = strfsolver.solver.init("multi-seed", model_factory=factory, seeds=[4, 7], logdir=tmp_path, **FAST)
    result = ms.fit(*loaders, test_loader).result_
    assert isinstance(result, MultiSeedResult) and ms.result_ is result
    assert result.seeds == [4, 7]
    metrics = ("cc", "cc_norm")

    per_seed_values = {}
    for run in result.runs:
        folder = tmp_path / f"seed_{run.seed}"
        history = json.loads((folder / "history.json").read_text())
        assert len(history) == 3 == len(run.history)
        assert [row["train_loss"] for row in history] == [row["train_loss"] for row in run.history]
        final = json.loads((folder / "final.json").read_text())
        assert final["seed"] == run.seed and final["best_epoch"] == run.final["best_epoch"]
        assert final["best_score"] == pytest.approx(run.best_score, abs=0)
        assert final["best_score"] == pytest.approx(history[final["best_epoch"]]["val_cc_norm"], abs=0)
        tensors = io.load_tensors(folder / "final_neurons.safetensors")
        assert sorted(tensors) == sorted(f"{s}/{m}" for s in ("valid", "test") for m in metrics)
        for name, values in tensors.items():
            split, metric = name.split("/")
            assert values.shape == (N,) and values.dtype == torch.float64
            assert torch.equal(values, run.neurons[split][metric])
            # the best state's validation means are the ones final.json reports
            assert final[split][metric] == pytest.approx(float(values.nanmean()), rel=1e-12)
            per_seed_values.setdefault(name, []).append(values.numpy())
        best = checkpoint.load_checkpoint(folder / checkpoint.BEST)
        assert all(torch.equal(best["model"][k], v) for k, v in run.state_dict.items())
        assert (folder / checkpoint.LAST).is_file()

    summary = pd.read_csv(tmp_path / "summary.csv")
    assert list(summary.columns) == ["split", "metric", "neuron", "mean", "std", "min", "max", "n_seeds"]
    assert len(summary) == 2 * len(metrics) * N  # one row per split, metric and neuron
    for name, values in per_seed_values.items():
        split, metric = name.split("/")
        rows = summary[(summary.split == split) & (summary.metric == metric)].sort_values("neuron")
        stacked = np.stack(values)  # (seeds, N)
        np.testing.assert_allclose(rows["mean"].to_numpy(), stacked.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(rows["std"].to_numpy(), stacked.std(axis=0, ddof=0), rtol=1e-10)
        np.testing.assert_allclose(rows["max"].to_numpy(), stacked.max(axis=0), rtol=1e-12)
        assert (rows["n_seeds"] == 2).all()

    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["best_seed"] == result.best_seed and saved["seeds"] == [4, 7]
    assert len(saved["rows"]) == len(summary)
    assert saved["scores"] == {str(s): v for s, v in result.scores.items()}

    # the long table holds exactly the per-seed files' values
    assert list(result.per_seed.columns) == ["seed", "neuron", "split", "metric", "value"]
    assert len(result.per_seed) == 2 * 2 * len(metrics) * N
    one = result.per_seed.query("seed == 7 and split == 'test' and metric == 'cc_norm'").sort_values("neuron")
    np.testing.assert_array_equal(one["value"].to_numpy(), per_seed_values["test/cc_norm"][1])
    pd.testing.assert_frame_equal(
        result.summary.reset_index(drop=True), summary, check_dtype=False, rtol=1e-12
    )


def test_each_seed_is_seeded_before_its_model_and_gets_its_own_shuffle(loaders):
    built = {}

    def recording_factory(seed):
        model = factory(seed)
        built[seed] = {k: v.clone() for k, v in model.state_dict().items()}
        return model

    train, valid = loaders
    ms = strfsolver.solver.init("multi-seed", model_factory=recording_factory, n_seeds=2, **FAST)
    result = ms.fit(train, valid).result_
    assert result.seeds == [0, 1]
    for seed in (0, 1):
        strfsolver.set_random_seed(seed)
        expected = factory(seed).state_dict()
        assert all(torch.equal(built[seed][k], v) for k, v in expected.items())
    # different initialisations
    assert any(not torch.equal(built[0][k], built[1][k]) for k in built[0])
    # each seed shuffled its own copy: the caller's loader has not moved on
    assert train.epoch == 0 and train.seed == 1
    orders = [_shuffle_order(train, derive_shuffle_seed(1, seed)) for seed in (0, 1)]
    assert not torch.equal(orders[0], orders[1])

    # the same seed again gives the same parameters, bit for bit
    again = strfsolver.solver.init("multi-seed", model_factory=factory, seeds=[1], **FAST).fit(train, valid).result_
    assert all(torch.equal(again.runs[0].state_dict[k], v) for k, v in result.runs[1].state_dict.items())


def _shuffle_order(loader, seed):
    return make_loader(loader.dataset, batch_size=loader.batch_size, shuffle=True, seed=seed).order(0)


@pytest.mark.parametrize("monitor,mode", [("val_cc_norm", "max"), ("val_loss", "min")])
def test_best_seed_follows_the_monitor_and_mode(loaders, monitor, mode):
    ms = strfsolver.solver.init("multi-seed", model_factory=factory, n_seeds=3, monitor=monitor, mode=mode, **FAST)
    result = ms.fit(*loaders).result_
    scores = result.scores
    assert len(set(scores.values())) == 3  # distinct seeds, distinct scores: the choice is not a tie
    pick = max if mode == "max" else min
    assert result.best_seed == pick(scores, key=scores.get)
    assert result.monitor == monitor and result.mode == mode
    best_run = result.runs[result.seeds.index(result.best_seed)]
    assert result.best_state_dict is best_run.state_dict
    for seed, history in result.histories.items():
        values = [row[monitor] for row in history]
        assert scores[seed] == pick(values)


def test_loader_factory_is_called_per_seed(splits):
    calls = []

    def loader_factory(seed):
        calls.append(seed)
        train, valid = splits
        return make_loader(train, batch_size=3, shuffle=True, seed=100 + seed), make_loader(valid, batch_size=4)

    result = strfsolver.solver.init("multi-seed", model_factory=factory, seeds=[2, 5], **FAST).fit(loader_factory=loader_factory).result_
    assert calls == [2, 5]
    assert set(result.per_seed["split"]) == {"valid"}
    assert result.summary["n_seeds"].eq(2).all() and len(result.summary) == 2 * N


def test_bad_arguments(loaders):
    with pytest.raises(ValueError, match="seeds or n_seeds, not both"):
        strfsolver.solver.init("multi-seed", model_factory=factory, seeds=[0, 1], n_seeds=2)
    with pytest.raises(ValueError, match=r"seeds must be distinct; \[1\]"):
        strfsolver.solver.init("multi-seed", model_factory=factory, seeds=[1, 1])
    with pytest.raises(ValueError, match="n_seeds must be an integer >= 1, got 0"):
        strfsolver.solver.init("multi-seed", model_factory=factory, n_seeds=0)
    with pytest.raises(ValueError, match="Unknown name 'populaton'.*Did you mean 'population'"):
        strfsolver.solver.init("multi-seed", solver="populaton", model_factory=factory)
    with pytest.raises(ValueError, match="executor must have the concurrent.futures interface.*got list"):
        strfsolver.solver.init("multi-seed", model_factory=factory, executor=[])
    with pytest.raises(ValueError, match="model_factory must be a callable"):
        strfsolver.solver.init("multi-seed", model_factory=None)

    ms = strfsolver.solver.init("multi-seed", model_factory=lambda seed: 3, n_seeds=1, **FAST)
    with pytest.raises(ValueError, match=r"model_factory\(seed=0\) returned int \(3\); expected a torch.nn.Module"):
        ms.fit(*loaders)
    ms = strfsolver.solver.init("multi-seed", model_factory=factory, n_seeds=1, **FAST)
    with pytest.raises(ValueError, match=r"loader_factory\(seed=0\) returned a tuple of length 1; expected a tuple \(train_loader, valid_loader\)"):
        ms.fit(loader_factory=lambda seed: (loaders[0],))
    with pytest.raises(ValueError, match=r"loader_factory\(seed=0\) gave a str as valid_loader"):
        ms.fit(loader_factory=lambda seed: (loaders[0], "valid"))
    with pytest.raises(ValueError, match="not both"):
        ms.fit(*loaders, loader_factory=lambda seed: loaders)
    with pytest.raises(ValueError, match="logdir= is set per seed"):
        ms.fit(*loaders, logdir="somewhere")

    shared = factory(0)
    ms = strfsolver.solver.init("multi-seed", model_factory=lambda seed: shared, n_seeds=2, **FAST)
    with pytest.raises(ValueError, match="returned the same module for seeds 0 and 1"):
        ms.fit(*loaders)


def test_fit_returns_the_solver_which_predicts_with_the_best_seed(loaders, splits):
    ms = strfsolver.solver.init("multi-seed", model_factory=factory, seeds=[0, 3], **FAST)
    assert ms.fit(*loaders) is ms
    best = ms.result_.best_run
    model = factory(ms.result_.best_seed)
    model.load_state_dict(best.state_dict)
    stims = torch.stack(splits[1].stims[:2])
    with torch.no_grad():
        torch.testing.assert_close(ms.transform(stims), model(stims))
    scores = ms.validation(loaders[1])
    torch.testing.assert_close(scores["cc_norm"], best.neurons["valid"]["cc_norm"].cpu(), rtol=1e-6, atol=1e-9)
    assert ms.log == best.history
