"""The command line: every bad config, data file or output path ends in exit code 2 and one line
on stderr naming the key or the file, with no traceback and nothing written."""

import json

import pytest

from reliability_cases import N_LAGS, case_ids, population, snapshot
from strfsolver.app import cli
from strfsolver.data import save_npz


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli_data") / "data.npz"
    save_npz(path, population().dataset)
    return path


def base_config(data_file, folder):
    return {
        "data": str(data_file), "logdir": str(folder / "out"), "model": "linear", "model_options": {"n_lags": N_LAGS},
        "solver": "population", "solver_options": {"max_epochs": 2},
    }


def changed(**keys):
    def make(config, folder):
        for key, value in keys.items():
            if isinstance(value, dict) and isinstance(config.get(key), dict):
                config[key] = {**config[key], **value}
            else:
                config[key] = value
        return config

    return make


def removed(key):
    def make(config, folder):
        del config[key]
        return config

    return make


def with_file(name, content, key="data"):
    def make(config, folder):
        (folder / name).write_bytes(content)
        config[key] = str(folder / name)
        return config

    return make


# (what, change of a valid config, text the one line must hold)
CONFIG_CASES = [
    ("negative lr", changed(solver_options={"lr": -0.1}), "config key 'solver_options': lr must be a number > 0 or None, got -0.1"),
    ("string lr", changed(solver_options={"lr": "1e-3"}), "config key 'solver_options': lr must be a number > 0 or None, got '1e-3'"),
    ("unknown monitor", changed(solver_options={"monitor": "val_r2"}), "config key 'solver_options': monitor 'val_r2' is not in the epoch dict"),
    ("optimizer a name", changed(solver_options={"optimizer": "adam"}), "config key 'solver_options': optimizer must be a torch.optim.Optimizer"),
    ("unknown solver option", changed(solver_options={"learning_rate": 0.1}), "config key 'solver_options'"),
    ("negative patience", changed(solver_options={"patience": -1}), "config key 'solver_options': patience must be an integer >= 1 or None, got -1"),
    ("device in solver_options", changed(solver_options={"device": "cpu"}), "config key 'solver_options' may not set 'device'"),
    ("unknown model option", changed(model_options={"n_layers": 3}), "config key 'model_options'"),
    ("n_lags zero", changed(model_options={"n_lags": 0}), "config key 'model_options': n_lags must be an integer >= 1, got 0"),
    ("unknown key", changed(epochs=3), "unknown config key 'epochs'"),
    ("no data", removed("data"), "config key 'data' is required"),
    ("no logdir", removed("logdir"), "config key 'logdir' is required"),
    ("missing data file", changed(data="/nonexistent/data.npz"), "config key 'data': no file at /nonexistent/data.npz"),
    ("data of another kind", with_file("data.csv", b"a,b\n"), "config key 'data' must name a .npz or .nwb file"),
    ("data a number", changed(data=5), "config key 'data' must be a path to a .npz or .nwb file or a dataset folder, got int 5"),
    ("logdir a file", with_file("taken", b"keep", key="logdir"), "config key 'logdir' must be a folder, but"),
    ("corrupt npz", with_file("broken.npz", b"PK\x03\x04 no archive"), "config key 'data': "),
    ("corrupt nwb", with_file("broken.nwb", b"garbage"), "config key 'data': "),
    ("npz with data_options", changed(data_options={"units": [0]}), "config key 'data_options' applies to .nwb files only"),
    ("model in capitals", changed(model="LN"), "config key 'model': unknown model 'LN'; did you mean 'ln'?"),
    ("unknown solver", changed(solver="adam"), "config key 'solver': unknown solver 'adam'"),
    ("unknown loss", changed(loss="huber"), "config key 'loss': unknown loss 'huber'"),
    ("multi-seed solver", changed(solver="multi-seed"), "config key 'solver': name the inner solver"),
    ("no seeds", changed(seeds=[]), "config key 'seeds' must be a list of seeds (integers in [0, 2**63 - 1]), not empty, got list []"),
    ("negative seed", changed(seeds=[-1]), "config key 'seeds[0]' must be an integer in [0, 2**63 - 1] (a seed), got -1"),
    ("repeated seed", changed(seeds=[1, 1]), "config key 'seeds' repeats a seed: [1, 1]"),
    ("seeds a string", changed(seeds="0"), "config key 'seeds' must be a list of seeds (integers in [0, 2**63 - 1]), not empty, got str '0'"),
    ("valid_fraction zero", changed(valid_fraction=0), "config key 'valid_fraction' must be > 0"),
    ("valid_fraction above one", changed(valid_fraction=1.5), "config key 'valid_fraction' must lie in [0, 1), got 1.5"),
    ("fractions leave nothing", changed(valid_fraction=0.5, test_fraction=0.5), "config keys 'valid_fraction' + 'test_fraction' must leave stimuli to train on"),
    ("batch_size zero", changed(batch_size=0), "config key 'batch_size' must be >= 1, got 0"),
    ("batch_size a string", changed(batch_size="8"), "config key 'batch_size' must be an integer >= 1 or 'auto', got str '8'"),
    ("split_seed negative", changed(split_seed=-1), "config key 'split_seed' must be an integer in [0, 2**63 - 1] (a seed), got -1"),
    ("model_options a list", changed(model_options=[1]), "config key 'model_options' must be a mapping of keyword arguments, got list"),
]


@pytest.mark.parametrize("what, change, text", CONFIG_CASES, ids=case_ids(CONFIG_CASES))
def test_a_bad_config_exits_2_with_one_line_and_writes_nothing(data_file, tmp_path, capsys, what, change, text):
    config = change(base_config(data_file, tmp_path), tmp_path)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    before = snapshot(tmp_path)
    assert cli.main(["fit", str(path), "--no-progress", "--no-plots"]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("strfsolver fit: error: "), err
    assert text in lines[0]
    assert snapshot(tmp_path) == before


# (what, config file content, text)
FILE_CASES = [
    ("config not JSON", "{not json", "is not valid JSON"),
    ("config a list", "[1, 2]", "must hold a mapping of keys to values, got list"),
    ("config empty", "", "is not valid JSON"),
]


@pytest.mark.parametrize("what, content, text", FILE_CASES, ids=case_ids(FILE_CASES))
def test_a_broken_config_file_exits_2_naming_it(tmp_path, capsys, what, content, text):
    path = tmp_path / "config.json"
    path.write_text(content)
    before = snapshot(tmp_path)
    assert cli.main(["fit", str(path)]) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and str(path) in line and text in line
    assert snapshot(tmp_path) == before


def test_a_missing_config_file_exits_2_naming_it(tmp_path, capsys):
    assert cli.main(["fit", str(tmp_path / "absent.json")]) == 2
    assert capsys.readouterr().err.strip() == f"strfsolver fit: error: config file {tmp_path / 'absent.json'} does not exist"


def test_a_yaml_python_tag_runs_nothing(data_file, tmp_path, capsys):
    pytest.importorskip("yaml")
    marker = tmp_path / "ran"
    path = tmp_path / "config.yaml"
    path.write_text(f"data: {data_file}\nlogdir: out\nseeds: !!python/object/apply:os.system ['touch {marker}']\n")
    assert cli.main(["fit", str(path)]) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and "is not valid YAML" in line and str(path) in line
    assert not marker.exists() and not (tmp_path / "out").exists()


# failures once fitting has begun: still one line and exit code 2
RUN_CASES = [
    ("learning rate overflows", changed(solver_options={"lr": 1e38}), "training diverged at epoch 0, step 0"),
    ("n_lags longer than the stimuli", changed(model_options={"n_lags": 60}), "n_lags=60 is longer than every training stimulus"),
]


@pytest.mark.parametrize("what, change, text", RUN_CASES, ids=case_ids(RUN_CASES))
def test_a_fit_that_cannot_run_exits_2_with_one_line(data_file, tmp_path, capsys, what, change, text):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(change(base_config(data_file, tmp_path), tmp_path)))
    assert cli.main(["fit", str(path), "--no-progress", "--no-plots"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("strfsolver fit: error: ") and text in lines[-1]
    assert not any("Traceback" in line for line in lines)


def test_demo_onto_a_file_exits_2_naming_it(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("keep")
    assert cli.main(["demo", "--logdir", str(target), "--quick", "--no-progress", "--no-plots"]) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and line.startswith("strfsolver demo: error: ") and "taken" in line
    assert target.read_text() == "keep"


def test_bad_command_line_arguments_exit_2(capsys):
    with pytest.raises(SystemExit) as raised:
        cli.main(["demo", "--logdir", "x", "--lr", "-1"])
    assert raised.value.code == 2 and "expected a positive number, got -1.0" in capsys.readouterr().err
