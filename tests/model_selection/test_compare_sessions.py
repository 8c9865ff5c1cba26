"""compare_sessions: shared-core and per-session models of several recordings on the same folds."""

import numpy as np
import pytest

from strfsolver.data import synthetic_multisession
from strfsolver.model_selection import LeaveOneStimulusOut, compare_sessions

NRF = {"model": "nrf", "model_options": {"n_lags": 4, "n_hidden": 2}, "solver_options": {"max_epochs": 3}}
SPECS = {"shared": {"sessions": "shared", **NRF}, "alone": {"sessions": "per-session", **NRF}}


@pytest.fixture(scope="module")
def sessions():
    return synthetic_multisession(n_neurons={"a": 3, "b": 4}, n_stims=6, n_subunits=2, n_freqs=6, n_lags=4, n_times=60, seed=0).datasets


def test_every_neuron_is_scored_once_per_model_and_the_pairs_follow(sessions):
    result = compare_sessions(SPECS, sessions, cv=2, n_boot=200)
    scores = result.scores
    assert len(scores) == 2 * 7 and list(scores[scores.model == "alone"]["session"]) == ["a"] * 3 + ["b"] * 4
    diff = scores[scores.model == "shared"]["cc_norm"].to_numpy() - scores[scores.model == "alone"]["cc_norm"].to_numpy()
    pair = result.pairs[(result.pairs.model_a == "shared") & (result.pairs.model_b == "alone")].iloc[0]
    assert pair["median_diff"] == pytest.approx(float(np.nanmedian(diff)))
    assert pair["wins"] == int((diff > 0).sum()) and pair["n_neurons"] == int(np.isfinite(diff).sum())
    assert list(result.models["sessions"]) == ["shared", "per-session"]
    again = compare_sessions(SPECS, sessions, cv=2, n_boot=200)
    assert np.array_equal(again.scores["cc"].to_numpy(), scores["cc"].to_numpy(), equal_nan=True)


def test_per_session_models_see_their_own_session_only(sessions):
    other = synthetic_multisession(n_neurons={"x": 4}, n_stims=6, n_subunits=2, n_freqs=6, n_lags=4, n_times=60, seed=9).datasets["x"]
    base = compare_sessions(SPECS, sessions, cv=2, n_boot=50).scores
    changed = compare_sessions(SPECS, {"a": sessions["a"], "b": other}, cv=2, n_boot=50).scores
    pick = lambda table, model: table[(table.model == model) & (table.session == "a")]["cc"].to_numpy()  # noqa: E731
    # session a's per-session model is the same fit whatever session b holds; the shared core is not
    assert np.array_equal(pick(base, "alone"), pick(changed, "alone"))
    assert not np.allclose(pick(base, "shared"), pick(changed, "shared"))


def test_bad_comparisons_are_refused_before_fitting(sessions):
    with pytest.raises(ValueError, match=r"'sessions' must be one of \['shared', 'per-session'\]"):
        compare_sessions({"x": {"sessions": "all", **NRF}, "y": SPECS["alone"]}, sessions)
    with pytest.raises(ValueError, match="at least two model names"):
        compare_sessions({"x": SPECS["shared"]}, sessions)
    with pytest.raises(ValueError, match="unknown key"):
        compare_sessions({"x": {**SPECS["shared"], "seeds": [1]}, "y": SPECS["alone"]}, sessions)
    uneven = {"a": sessions["a"], "b": sessions["b"].subset(range(4))}
    with pytest.raises(ValueError, match="different numbers of folds"):
        compare_sessions(SPECS, uneven, cv=LeaveOneStimulusOut())
    with pytest.raises(ValueError, match="metric must be one of"):
        compare_sessions(SPECS, sessions, metric="r2")


def test_summarised_sessions_score_as_all_their_repeats(sessions):
    from strfsolver.data import NeuralDataset

    summary = {name: NeuralDataset(d.stims, d.responses, dt_ms=d.dt_ms, repeats="summary") for name, d in sessions.items()}
    full = compare_sessions(SPECS, sessions, cv=2, n_boot=50).scores
    short = compare_sessions(SPECS, summary, cv=2, n_boot=50).scores
    for metric in ("cc", "cc_norm"):
        np.testing.assert_allclose(short[metric].to_numpy(), full[metric].to_numpy(), rtol=1e-5, atol=1e-6, equal_nan=True)
