"""``strfsolver fit CONFIG`` and ``strfsolver list`` on small data."""

import csv
import json

import pytest

import strfsolver
from strfsolver.app import cli
from strfsolver.data import save_npz, synthetic_population
from strfsolver.app.fit_config import ConfigError, run_fit, validate_config


@pytest.fixture
def data_file(tmp_path):
    population = synthetic_population(n_neurons=4, n_stims=8, n_repeats=4, n_freqs=6, n_lags=4, n_times=80, seed=2)
    path = tmp_path / "data.npz"
    save_npz(path, population.dataset, neuron_ids=["a", "b", "c", "d"])
    return path


def write_config(tmp_path, **entries):
    config = {"data": "data.npz", "logdir": "results", "model_options": {"n_lags": 4},
              "solver_options": {"lr": 0.01, "max_epochs": 4, "patience": 2}}
    config.update(entries)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def test_fit_writes_the_report_and_per_seed_files(tmp_path, data_file, capsys):
    config = write_config(tmp_path, seeds=[0, 3], test_fraction=0.25, solver="population")
    assert cli.main(["fit", str(config), "--no-progress"]) == 0
    out = tmp_path / "results"
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert [r["neuron_id"] for r in rows] == ["a", "b", "c", "d"]
    assert {"cc", "cc_norm", "cc_std", "test_cc_norm", "snr"} <= set(rows[0])
    # the table's mean over seeds equals the per-seed files
    per_seed = list(csv.DictReader((out / "seeds" / "summary.csv").open()))
    mean = [r for r in per_seed if r["split"] == "valid" and r["metric"] == "cc_norm" and r["neuron"] == "1"][0]
    assert float(rows[1]["cc_norm"]) == pytest.approx(float(mean["mean"]), rel=1e-5, abs=1e-6)
    for seed in (0, 3):
        assert (out / "seeds" / f"seed_{seed}" / "final.json").is_file()
    history = list(csv.DictReader((out / "history.csv").open()))
    assert 1 <= len(history) <= 4 and "val_cc_norm" in history[0]
    assert (out / "strfs.png").stat().st_size > 1000
    assert (out / "learning_curves.png").stat().st_size > 1000
    assert "best seed" in capsys.readouterr().out


def test_yaml_config_and_models_without_strf(tmp_path, data_file):
    pytest.importorskip("yaml")
    (tmp_path / "c.yaml").write_text(
        "data: data.npz\nlogdir: deep\nmodel: cnn2d\nmodel_options: {n_lags: 4}\n"
        "solver_options: {max_epochs: 2}\nseeds: [1]\n"
    )
    result = run_fit(tmp_path / "c.yaml", progress=False, print_fn=lambda *_: None)
    assert result["result"].best_seed == 1
    assert "strfs" not in result["files"] and (tmp_path / "deep" / "summary.csv").is_file()


@pytest.mark.parametrize(
    "entries, message",
    [
        ({"modle": "ln"}, "unknown config key 'modle'"),
        ({"model": "lnn"}, "config key 'model': unknown model 'lnn'; did you mean 'ln'"),
        ({"solver": "single_cell"}, "config key 'solver': unknown solver 'single_cell'; did you mean 'single-cell'"),
        ({"seeds": [0, 0]}, "config key 'seeds' repeats a seed"),
        ({"seeds": "0"}, "config key 'seeds' must be a list"),
        ({"valid_fraction": 1.5}, "config key 'valid_fraction' must lie in"),
        ({"batch_size": 0}, "config key 'batch_size' must be >= 1"),
        ({"data": "missing.npz"}, "config key 'data': no file at"),
        ({"data": "data.csv"}, "config key 'data' must name a .npz or .nwb file"),
        ({"model_options": {"n_lags": 4, "depth": 3}}, "config key 'model_options'"),
        ({"solver_options": {"criterion": "mse"}}, "config key 'solver_options' may not set 'criterion'"),
        ({"solver_options": {"learning_rate": 0.1}}, "config key 'solver_options'"),
    ],
)
def test_bad_configs_give_one_line_errors_naming_the_key(tmp_path, data_file, capsys, entries, message):
    config = write_config(tmp_path, **entries)
    assert cli.main(["fit", str(config), "--no-progress", "--no-plots"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("strfsolver fit: error: ")
    assert message in err
    assert "\n" not in err


def test_missing_required_key_and_unreadable_files(tmp_path, capsys):
    with pytest.raises(ConfigError, match="config key 'logdir' is required"):
        validate_config({"data": "x.npz"})
    (tmp_path / "broken.json").write_text("{not json")
    assert cli.main(["fit", str(tmp_path / "broken.json")]) == 2
    assert "is not valid JSON" in capsys.readouterr().err
    assert cli.main(["fit", str(tmp_path / "nothing.json")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_list_prints_every_registry(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    lines = dict(line.split(":", 1) for line in out.strip().splitlines() if not line.strip().startswith("also:"))
    # every registered name, in order: the built-in ones, and any a docs example or test registered before
    solvers = [n.strip() for n in lines["solver"].split(",")]
    assert solvers == strfsolver.solver.get_options()
    assert {"multi-seed", "multi-session", "per-cell-best", "population", "ridge", "single-cell"} <= set(solvers)
    assert "transformer" in lines["models"] and "willmore" in lines["prefilters"]
    # other libraries' names of the same entries, under their registry
    assert "models:" in out.split("LinearNonlinear=ln")[0].splitlines()[-2]
    losses = [n.strip() for n in lines["losses"].split(",")]
    assert losses == strfsolver.losses.get_options() and {"mse", "poisson"} <= set(losses)


@pytest.mark.parametrize("command", [[], ["demo"], ["fit"], ["list"]])
def test_help_everywhere(command, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(command + ["--help"])
    assert info.value.code == 0
    assert "usage: strfsolver" in capsys.readouterr().out


@pytest.mark.parametrize("solver", ["ridge", "auto"])
def test_a_linear_model_is_fitted_in_closed_form_once(tmp_path, data_file, solver):
    config = write_config(tmp_path, seeds=[0, 3], model="linear", solver=solver, solver_options={"penalty": "laplacian"})
    report = run_fit(config, progress=False, plots=False, print_fn=lambda line: None)
    result = report["result"]
    assert result.seeds == [0]  # the same fit under every seed: one is enough
    history = result.best_run.history
    assert len(history) == 1 and "alpha_median" in history[0]
    rows = list(csv.DictReader((tmp_path / "results" / "summary.csv").open()))
    assert len(rows) == 4 and "cc_std" not in rows[0] and all(float(r["cc"]) > 0.2 for r in rows)


def test_fit_reports_the_metrics_the_config_asks_for(tmp_path, data_file, capsys):
    config = write_config(tmp_path, model="ln", solver_options={"lr": 0.01, "max_epochs": 3, "patience": 2,
                                                                "metrics": ["cc", "fve"], "monitor": "val_fve"})
    assert cli.main(["fit", str(config), "--no-progress", "--no-plots"]) == 0
    rows = list(csv.DictReader((tmp_path / "results" / "summary.csv").open()))
    assert {"cc", "fve", "snr"} <= set(rows[0]) and "cc_norm" not in rows[0]
    assert (tmp_path / "results" / "model").is_dir()


def test_fit_on_a_dataset_folder_gives_the_scores_of_the_data_file(tmp_path):
    # the .npz is loaded and summarised (nothing reads each repeat); the folder stays on disk with every repeat
    import numpy as np

    from strfsolver.data import save_folder

    population = synthetic_population(n_neurons=3, n_stims=8, n_repeats=6, n_freqs=6, n_lags=4, n_times=150, seed=5)
    save_npz(tmp_path / "data.npz", population.dataset)
    save_folder(tmp_path / "folder", population.dataset)
    scores = []
    for data, logdir in (("data.npz", "from_file"), ("folder", "from_folder")):
        config = write_config(tmp_path, data=data, logdir=logdir, solver="population", seeds=[1])
        assert cli.main(["fit", str(config), "--no-progress", "--no-plots"]) == 0
        scores.append([[float(r["cc_norm"]), float(r["snr"])] for r in csv.DictReader((tmp_path / logdir / "summary.csv").open())])
    np.testing.assert_allclose(scores[0], scores[1], rtol=1e-5, atol=1e-6)
    assert all(snr > 0.1 and cc_norm > 0.2 for cc_norm, snr in scores[0])
