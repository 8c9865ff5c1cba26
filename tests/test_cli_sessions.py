"""``strfsolver fit`` with ``sessions: {name: data file}``: one shared core, one per-neuron table."""

import csv
import json

import pytest
import torch

import strfsolver
from strfsolver.app import cli
from strfsolver.app.fit_config import ConfigError, run_fit
from strfsolver.data import load_npz, save_npz, synthetic_multisession


@pytest.fixture
def folder(tmp_path):
    truth = synthetic_multisession(n_neurons={"a": 3, "b": 4}, n_stims=8, n_subunits=2, n_freqs=6, n_lags=4, n_times=60, seed=0)
    for name, dataset in truth.datasets.items():
        save_npz(tmp_path / f"{name}.npz", dataset)
    return tmp_path


def write_config(folder, **entries):
    config = {"sessions": {"a": "a.npz", "b": "b.npz"}, "logdir": "results", "model": "nrf",
              "model_options": {"n_lags": 4, "n_hidden": 2}, "solver_options": {"max_epochs": 2}}
    config.update(entries)
    path = folder / "config.json"
    path.write_text(json.dumps(config))
    return path


def test_fit_of_several_sessions_writes_one_table_with_a_session_column(folder):
    assert cli.main(["fit", str(write_config(folder, test_fraction=0.25)), "--no-progress", "--no-plots"]) == 0
    out = folder / "results"
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert [(r["session"], r["neuron"]) for r in rows] == [("a", "0"), ("a", "1"), ("a", "2"), ("b", "0"), ("b", "1"), ("b", "2"), ("b", "3")]
    assert {"cc", "cc_norm", "test_cc_norm", "snr"} <= set(rows[0])
    model = strfsolver.models.from_pretrained(out / "model")
    assert model.n_neurons == {"a": 3, "b": 4}
    # the table's test scores are those of the saved model's readouts on the sessions' test stimuli
    result = run_fit(write_config(folder, test_fraction=0.25, logdir="again"), progress=False, print_fn=lambda *_: None)
    assert [r["test_cc"] for r in result["summary"]] == pytest.approx([float(r["test_cc"]) for r in rows], rel=1e-5, nan_ok=True)
    data = load_npz(folder / "b.npz")
    assert model(torch.stack(data.stims), session="b").shape == (8, 4, 1, 60)


@pytest.mark.parametrize("entries, message", [
    (dict(data="a.npz"), "config keys 'data' and 'sessions' exclude each other"),
    (dict(sessions=None), "config key 'data' is required"),
    (dict(valid_stimuli=[0]), "config key 'valid_stimuli' is not used with 'sessions'"),
    (dict(seeds=[0, 1]), "a fit of several sessions takes one seed"),
    (dict(solver="population"), "several sessions are fitted by 'multi-session'"),
    (dict(sessions={"a": "a.npz", "c": "missing.npz"}), "config key 'sessions.c': no file at"),
    (dict(sessions={"a.b": "a.npz"}), "a session name must be a non-empty string without '.'"),
])
def test_bad_session_configs_are_refused_before_anything_is_written(folder, entries, message):
    with pytest.raises(ConfigError, match=message):
        run_fit(write_config(folder, **entries), progress=False, print_fn=lambda *_: None)
    assert not (folder / "results").exists()


def test_compare_of_a_shared_core_with_per_session_models(folder):
    nrf = {"model": "nrf", "model_options": {"n_lags": 4, "n_hidden": 2}, "solver_options": {"max_epochs": 2}}
    config = {"sessions": {"a": "a.npz", "b": "b.npz"}, "logdir": "compared", "cv": 2, "n_boot": 100,
              "models": {"shared": {"sessions": "shared", **nrf}, "alone": {"sessions": "per-session", **nrf}}}
    (folder / "compare.json").write_text(json.dumps(config))
    assert cli.main(["compare", str(folder / "compare.json"), "--no-progress", "--no-plots"]) == 0
    rows = list(csv.DictReader((folder / "compared" / "scores.csv").open()))
    assert len(rows) == 14 and {r["session"] for r in rows} == {"a", "b"} and {r["model"] for r in rows} == {"shared", "alone"}
    pairs = list(csv.DictReader((folder / "compared" / "pairs.csv").open()))
    assert [(p["model_a"], p["model_b"]) for p in pairs] == [("shared", "alone"), ("alone", "shared")]
    config["models"]["alone"]["sessions"] = "each"
    (folder / "compare.json").write_text(json.dumps(config))
    assert cli.main(["compare", str(folder / "compare.json"), "--no-progress", "--no-plots"]) == 2
