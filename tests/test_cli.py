"""The main job runs end to end (small) and writes its files with the right columns."""

import csv
import subprocess
import sys

import pytest
import torch

from strfsolver.app import cli, demo
from strfsolver.data import synthetic_population

SMALL = ["--quick", "--no-progress", "--n-neurons", "4", "--max-epochs", "5"]


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_demo_writes_its_report(tmp_path, capsys):
    out = tmp_path / "demo_out"
    assert cli.main(["demo", "--logdir", str(out), *SMALL]) == 0
    summary = _rows(out / "summary.csv")
    assert list(summary[0]) == ["neuron", "cc", "cc_norm", "truth_cc_norm", "strf_corr", "ridge_cc_norm"]
    assert [row["neuron"] for row in summary] == ["0", "1", "2", "3"]
    for row in summary:
        assert -1 <= float(row["cc"]) <= 1 and -1 <= float(row["strf_corr"]) <= 1
    # the generating model explains its own responses
    assert all(float(row["truth_cc_norm"]) > 0.8 for row in summary)
    history = _rows(out / "history.csv")
    assert len(history) == 5
    assert {"epoch", "train_loss", "train_penalty", "val_loss", "val_cc", "val_cc_norm", "lr", "seconds"} <= set(history[0])
    for name in ("strfs.png", "learning_curves.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "median" in printed and "cc_norm" in printed and "strf_corr" in printed and "summary.csv" in printed
    # it ends with a cross-validated comparison of ridge and ln on the same folds
    pairs = _rows(out / "comparison" / "pairs.csv")
    assert [(p["model_a"], p["model_b"]) for p in pairs] == [("ridge", "ln"), ("ln", "ridge")]
    assert "'ln' minus 'ridge' median cc_norm" in printed
    assert (out / "comparison" / "report.html").read_text().count("data:image/png;base64,") >= 3


def test_demo_without_matplotlib_skips_the_figures_with_a_note(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "_has_matplotlib", lambda: False)
    notes = []
    result = demo.run_demo(tmp_path, quick=True, progress=False, print_fn=notes.append, n_neurons=3, n_stims=4, n_times=80, n_freqs=6, n_lags=4, max_epochs=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["comparison", "history.csv", "summary.csv"]
    # the closing comparison keeps its tables and report, without figures
    assert sorted(p.name for p in (tmp_path / "comparison").glob("*.*")) == ["models.csv", "pairs.csv", "report.html", "scores.csv", "summary.csv"]
    assert any("matplotlib is not installed" in note for note in notes)
    assert len(result["summary"]) == 3 and len(result["history"]) == 2
    # the truth's column is the population's own cc_norm on the validation stimuli
    pop = synthetic_population(n_neurons=3, n_stims=4, n_repeats=6, n_freqs=6, n_lags=4, n_times=80, seed=0)
    _, valid = pop.dataset.split([0.8, 0.2], seed=0)
    truth = pop.truth_cc_norm(valid)
    assert [row["truth_cc_norm"] for row in result["summary"]] == pytest.approx(truth.tolist(), rel=1e-6)


def test_strf_correlation_is_pearson_per_neuron():
    truth = torch.randn(3, 1, 4, 5)
    fitted = torch.stack([truth[0] * 2 + 1, -truth[1], torch.zeros_like(truth[2])])
    corr = demo.strf_correlation(fitted, truth)
    assert corr[0].item() == pytest.approx(1.0) and corr[1].item() == pytest.approx(-1.0)
    assert torch.isnan(corr[2])
    with pytest.raises(ValueError, match=r"fitted STRFs have shape \(3, 1, 4, 5\) but the true ones \(3, 1, 4, 4\)"):
        demo.strf_correlation(fitted, truth[..., :4])


def test_bad_arguments_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["demo", "--logdir", str(tmp_path), "--n-neurons", "0"])
    assert "expected a positive integer, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main([])
    assert cli.main(["demo", "--logdir", str(tmp_path), *SMALL, "--smoothness", "-1"]) == 2
    assert "smoothness" in capsys.readouterr().err


def test_python_dash_m_runs_the_command_line():
    done = subprocess.run([sys.executable, "-m", "strfsolver", "demo", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--logdir" in done.stdout and "--quick" in done.stdout
