"""``strfsolver compare CONFIG --logdir DIR``: tables, figures, a self-contained report, resumption."""

import base64
import csv
import json
import re

import pytest

from strfsolver.app import cli
from strfsolver.data import save_npz, synthetic_population
from strfsolver.model_selection import crossval as crossval_module

MODELS = {
    "ridge": {"model": "linear", "model_options": {"n_lags": 3}},
    "ln": {"model": "ln", "model_options": {"n_lags": 3}, "solver_options": {"max_epochs": 4, "lr": 0.02}},
}


@pytest.fixture
def config(tmp_path):
    population = synthetic_population(n_neurons=3, n_stims=6, n_repeats=3, n_freqs=4, n_lags=3, n_times=40, seed=3)
    save_npz(tmp_path / "data.npz", population.dataset, neuron_ids=["u1", "u2", "u3"])
    path = tmp_path / "compare.json"
    path.write_text(json.dumps({"data": "data.npz", "cv": 3, "n_boot": 200, "models": MODELS}))
    return path


def test_compare_writes_tables_figures_and_a_self_contained_report(config, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "cmp"
    assert cli.main(["compare", str(config), "--logdir", str(out), "--no-progress"]) == 0
    scores = list(csv.DictReader((out / "scores.csv").open()))
    assert len(scores) == 2 * 3 * 3  # models x folds x neurons
    assert {"model", "fold", "neuron_id", "cc", "cc_norm", "fve", "signal_power", "params", "epochs", "seconds"} <= set(scores[0])
    summary = list(csv.DictReader((out / "summary.csv").open()))
    assert [(r["model"], r["neuron_id"]) for r in summary][:3] == [("ridge", "u1"), ("ridge", "u2"), ("ridge", "u3")]
    pairs = list(csv.DictReader((out / "pairs.csv").open()))
    assert [(p["model_a"], p["model_b"]) for p in pairs] == [("ridge", "ln"), ("ln", "ridge")]
    assert float(pairs[0]["median_diff"]) == pytest.approx(-float(pairs[1]["median_diff"]))
    assert int(pairs[0]["wins"]) + int(pairs[1]["wins"]) + int(pairs[0]["ties"]) == 3
    for png in ("cc_norm_distributions.png", "scatter_ridge_vs_ln.png", "best_strfs.png", "fold_learning_curves.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    report = (out / "report.html").read_text()
    assert report.startswith("<!DOCTYPE html>") and report.rstrip().endswith("</html>")
    images = re.findall(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', report)
    assert len(images) == 4
    assert all(base64.b64decode(image)[:4] == b"\x89PNG" for image in images)
    # opens from disk alone: nothing fetched from a server or another file
    assert not re.search(r'(src|href)="(?!data:)', report)
    assert "<script" not in report and "http://" not in report and "https://" not in report
    assert report.count("<table>") >= 3 and "u2" in report and "median_diff" in report
    assert "ridge" in capsys.readouterr().out


def test_interrupted_compare_resumes_without_refitting_finished_folds(config, tmp_path, monkeypatch, capsys):
    out = tmp_path / "cmp"
    real = crossval_module.fit_fold
    done = []

    def interrupted(*args, **kwargs):
        if len(done) == 4:
            raise KeyboardInterrupt  # as Ctrl-C during the fifth fit
        done.append(kwargs["fold"])
        return real(*args, **kwargs)

    monkeypatch.setattr(crossval_module, "fit_fold", interrupted)
    assert cli.main(["compare", str(config), "--logdir", str(out), "--no-progress", "--no-plots"]) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "strfsolver compare: interrupted"
    stored = sorted(p.relative_to(out / "folds").as_posix() for p in (out / "folds").rglob("*.safetensors"))
    assert stored == ["ln/fold-0.safetensors", "ridge/fold-0.safetensors", "ridge/fold-1.safetensors", "ridge/fold-2.safetensors"]
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "folds").rglob("*.safetensors")}

    refitted = []

    def counting(*args, **kwargs):
        refitted.append((args[0].model, kwargs["fold"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(crossval_module, "fit_fold", counting)
    assert cli.main(["compare", str(config), "--logdir", str(out), "--no-progress", "--no-plots"]) == 0
    assert refitted == [("ln", 1), ("ln", 2)]
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())
    resumed = (out / "summary.csv").read_text()

    monkeypatch.setattr(crossval_module, "fit_fold", real)
    assert cli.main(["compare", str(config), "--logdir", str(tmp_path / "fresh"), "--no-progress", "--no-plots"]) == 0
    assert (tmp_path / "fresh" / "summary.csv").read_text() == resumed


@pytest.mark.parametrize(
    "change, message",
    [
        ({"models": {}}, "'models' must map"),
        ({"models": {"a": {"model": "linear", "sover": "ridge"}}}, "unknown experiment key"),
        ({"cv": "half"}, "config key 'cv'"),
        ({"param_grids": {"nope": {"solver_options.lr": [1]}}}, "not among the models"),
        ({"metric": "r2"}, "'metric' must be"),
        ({"colour": 1}, "unknown config key 'colour'"),
    ],
)
def test_bad_compare_configs_exit_2_with_one_line(config, tmp_path, capsys, change, message):
    body = json.loads(config.read_text())
    body.update(change)
    config.write_text(json.dumps(body))
    assert cli.main(["compare", str(config), "--logdir", str(tmp_path / "x"), "--no-progress"]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1
