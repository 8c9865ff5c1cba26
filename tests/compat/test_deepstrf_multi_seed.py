"""deepSTRF's fit_multi_seed: its dict, by value against single Fitter runs, and its files."""

import json

import numpy as np
import pytest
import torch

import strfsolver
from strfsolver.compat.deepstrf import Fitter, fit_multi_seed
from strfsolver.data import make_loader, synthetic_population

N, F, L = 3, 5, 3


@pytest.fixture(scope="module")
def data():
    population = synthetic_population(n_neurons=N, n_stims=12, n_repeats=4, n_freqs=F, n_lags=L, n_times=60, seed=1)
    return population.dataset.split([0.5, 0.25, 0.25], seed=0)


def factories(data):
    train, valid, test = data

    def model_factory(seed):
        return strfsolver.models.init("ln", n_freqs=F, n_lags=L, n_neurons=N)

    def loader_factory(seed):
        return make_loader(train, batch_size=2, shuffle=True, seed=seed), make_loader(valid, batch_size=2), make_loader(test, batch_size=2)

    return model_factory, loader_factory


def test_results_dict_matches_single_fitter_runs(data, tmp_path):
    model_factory, loader_factory = factories(data)
    kwargs = dict(max_epochs=3, ckpt_path=tmp_path / "ckpt" / "best.pt")
    results = fit_multi_seed(model_factory, loader_factory, seeds=[4, 7], fitter_kwargs=kwargs, output_dir=tmp_path / "out")

    assert results["seeds"] == [4, 7] and len(results["per_seed_histories"]) == 2
    for i, seed in enumerate([4, 7]):
        strfsolver.set_random_seed(seed)
        model = model_factory(seed)
        train_loader, valid_loader, test_loader = loader_factory(seed)
        fitter = Fitter(model, train_loader, valid_loader, max_epochs=3, log_fn=lambda d: None)
        fitter.fit()
        alone_val, alone_test = fitter.evaluate(valid_loader), fitter.evaluate(test_loader)
        assert torch.equal(results["per_seed_val_cc"][i], alone_val["cc"])
        assert torch.equal(results["per_seed_test_cc_norm"][i], alone_test["cc_norm"])
        assert results["per_seed_val_loss"][i, 0].item() == alone_val["loss"]
        assert (tmp_path / "ckpt" / f"best_seed{seed}.pt").is_file()

    for split in ("val", "test"):
        for metric in ("loss", "cc", "cc_norm"):
            stacked = results[f"per_seed_{split}_{metric}"].numpy()
            assert stacked.shape == ((2, 1) if metric == "loss" else (2, N))
            np.testing.assert_allclose(results[f"mean_{split}_{metric}"].numpy(), np.nanmean(stacked, axis=0), rtol=1e-12)
            np.testing.assert_allclose(results[f"std_{split}_{metric}"].numpy(), np.nanstd(stacked, axis=0, ddof=0), rtol=1e-9, atol=1e-15)

    means = results["per_seed_val_cc_norm"].nanmean(dim=1)
    assert not means.isnan().any() and means[0] != means[1]
    assert results["best_seed"] == [4, 7][int(means.argmax())]
    best_model = model_factory(0)
    best_model.load_state_dict(results["best_state_dict"])
    strfsolver.set_random_seed(0)
    check = Fitter(best_model, *loader_factory(0)[:2], log_fn=lambda d: None)
    assert float(check.evaluate(loader_factory(0)[1])["cc_norm"].nanmean()) == pytest.approx(float(means.max()), rel=1e-9)

    out = tmp_path / "out"
    for seed in (4, 7):
        for name in ("history.json", "final.json", "final_neurons.pt", "best.pt"):
            assert (out / f"seed{seed}" / name).is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best_seed"] == results["best_seed"] and summary["seeds"] == [4, 7]
    assert summary["mean_val_cc"]["mean"] == pytest.approx(float(results["mean_val_cc"].nanmean()))
    neurons = torch.load(out / "summary_neurons.pt")
    assert torch.equal(neurons["per_seed_val_cc"], results["per_seed_val_cc"])
    saved_state = torch.load(out / f"seed{results['best_seed']}" / "best.pt")
    assert all(torch.equal(saved_state[k], v) for k, v in results["best_state_dict"].items())
    history = json.loads((out / "seed4" / "history.json").read_text())
    assert set(history[0]["val_cc"]) == {"mean", "p10", "p50", "p90", "n_valid"}


def test_logger_factory_gets_every_epoch_and_the_final_values(data):
    model_factory, loader_factory = factories(data)

    class Logger:
        def __init__(self):
            self.rows, self.final, self.closed = [], None, False

        def __call__(self, epoch_dict):
            self.rows.append(epoch_dict)

        def finalize(self, final):
            self.final = final

        def close(self):
            self.closed = True

    made = {}
    results = fit_multi_seed(model_factory, loader_factory, n_seeds=1, fitter_kwargs={"max_epochs": 2},
                             logger_factory=lambda seed: made.setdefault(seed, Logger()))
    logger = made[0]
    assert logger.closed and len(logger.rows) == 2 and logger.rows[0]["val_cc"].shape == (N,)
    assert torch.equal(logger.final["val"]["cc"], results["per_seed_val_cc"][0])


def test_bad_arguments(data):
    model_factory, loader_factory = factories(data)
    with pytest.raises(ValueError, match="fitter_kwargs may not set"):
        fit_multi_seed(model_factory, loader_factory, n_seeds=1, fitter_kwargs={"train_loader": None})
    with pytest.raises(ValueError, match=r"must return \(train_loader, val_loader, test_loader\)"):
        fit_multi_seed(model_factory, lambda seed: loader_factory(seed)[:2], n_seeds=1, fitter_kwargs={"max_epochs": 1})
    with pytest.raises(ValueError, match="distinct"):
        fit_multi_seed(model_factory, loader_factory, seeds=[1, 1])
    with pytest.raises(ValueError, match="at least one seed"):
        fit_multi_seed(model_factory, loader_factory, n_seeds=0)
    # a monitor the final validation cannot have is refused before any seed trains
    built = []
    with pytest.raises(KeyError, match=r"monitor 'train_loss' is not a validation metric.*'val_cc', 'val_cc_norm', 'val_loss'"):
        fit_multi_seed(lambda seed: built.append(seed) or model_factory(seed), loader_factory, n_seeds=2,
                       fitter_kwargs={"max_epochs": 1, "monitor": "train_loss", "mode": "min"})
    assert built == []
