"""STRFEstimator on several recording sessions: {session: NeuralDataset}."""

import numpy as np
import pytest
import torch

from strfsolver.data import synthetic_multisession
from strfsolver.estimator import STRFEstimator


@pytest.fixture(scope="module")
def truth():
    return synthetic_multisession(n_neurons={"a": 4, "b": 6}, n_stims=6, n_subunits=3, n_freqs=8, n_lags=5, n_times=80, seed=0)


def estimator(**options):
    return STRFEstimator(**{"model": "ln", "n_lags": 5, "max_epochs": 3, "random_state": 0, **options})


def test_one_table_over_all_sessions_with_a_session_column(truth):
    est = estimator().fit(truth.datasets)
    assert est.sessions_ == {"a": 4, "b": 6} and est.model_.sessions == ("a", "b")
    table = est.scores_
    assert list(table["session"]) == ["a"] * 4 + ["b"] * 6 and list(table["neuron"]) == [0, 1, 2, 3, 0, 1, 2, 3, 4, 5]
    assert {"cc", "cc_norm", "snr"} <= set(table.columns) and table.attrs["data"] == "validation"
    # the scores are those of each session's own readout on its held-out stimuli
    held = est.validation_split_["held_out"]["b"]
    data = truth.datasets["b"].subset(held)
    pred = est.solver_.transform(torch.stack(data.stims), session="b")
    expected = torch.corrcoef(torch.stack([pred[:, 2, 0].flatten(), torch.stack(data.responses)[:, 2].mean(1).flatten()]))[0, 1]
    assert float(table[table.session == "b"]["cc"].iloc[2]) == pytest.approx(float(expected), abs=1e-5)
    # each session's STRFs shaped as a one-session fit's strfs_, (N_s, F, L)
    assert est.strfs_["a"].shape == (4, 8, 5) and est.strfs_["b"].shape == (6, 8, 5)
    with est.model_.using_session("b"):
        assert np.allclose(est.strfs_["b"], est.model_.strf()[:, 0].detach().numpy())
    assert len(est.history_) == est.n_iter_ <= 3
    again = estimator().fit(truth.datasets)
    assert np.array_equal(again.scores_["cc"].to_numpy(), table["cc"].to_numpy(), equal_nan=True)


def test_given_validation_sessions_and_refusals(truth):
    train = {s: d.subset(range(4)) for s, d in truth.datasets.items()}
    valid = {s: d.subset([4, 5]) for s, d in truth.datasets.items()}
    est = estimator(model="nrf", model_kwargs={"n_hidden": 2}).fit(train, X_val=valid)
    assert est.validation_split_["held_out"] == {"a": "given", "b": "given"} and len(est.scores_) == 10
    with pytest.raises(ValueError, match=r"X_val has the sessions \['a'\] but X has \['a', 'b'\]"):
        estimator().fit(train, X_val={"a": valid["a"]})
    with pytest.raises(ValueError, match="solver='population'"):
        estimator(solver="population").fit(train)
    with pytest.raises(ValueError, match="leave y out"):
        estimator().fit(train, np.zeros(3))
    with pytest.raises(ValueError, match=r"transform\(stims, session=...\)"):
        est.predict(truth.datasets["a"])
    with pytest.raises(ValueError, match="est.model_.save_pretrained"):
        est.save("unused_folder")


def test_summarised_sessions_are_scored_from_their_summaries(truth):
    full = estimator(model="auto").fit(truth.datasets)
    summarised = estimator(model="auto").fit({s: d.summarised() for s, d in truth.datasets.items()})
    assert summarised.model_name_ == full.model_name_ == "ln"
    # the noise-ceiling metrics follow from each stimulus' PSTH and repeat statistics alone
    for metric in ("cc", "cc_norm", "snr"):
        assert np.allclose(summarised.scores_[metric].to_numpy(), full.scores_[metric].to_numpy(), equal_nan=True, atol=1e-6)
    assert list(summarised.scores_["session"]) == ["a"] * 4 + ["b"] * 6
