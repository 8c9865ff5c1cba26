"""One name per setting: ``progress`` and ``logdir``. Every old spelling (``verbose``, ``log_dir``,
``output_dir``, ``out``, ``--out``) still works for one release with a DeprecationWarning naming the
new one; both spellings together are an error; an estimator folder of 0.1 loads."""

import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest

import strfsolver
from strfsolver.app import cli
from strfsolver.app.compare_config import run_compare, validate_compare_config
from strfsolver.app.demo import run_demo
from strfsolver.app.fit_config import CONFIG_KEYS, ConfigError, complete_config, load_config
from strfsolver.estimator import STRFEstimator
from strfsolver.loggers.logger_factories import tensorboard_logger_factory, wandb_logger_factory
from strfsolver.model_selection import compare, cross_validate
from strfsolver.model_selection.crossval import run_folds
from strfsolver.solver.seed_runs import MultiSeedResult, make_task
from strfsolver.utils.deprecation import renamed
from strfsolver.workflow import distributed
from strfsolver.workflow.experiment import ExperimentSpec

RIDGE = {"model": "linear", "model_options": {"n_lags": 3}, "solver": "ridge", "solver_options": {"alpha": 1.0}}


def renamed_warning(old, new):
    return pytest.warns(DeprecationWarning, match=rf"'{old}' is now called '{new}'")


def both_error(old, new, error=TypeError):
    return pytest.raises(error, match=rf"'{old}' and '{new}' are the same setting.*give only '{new}'")


@pytest.fixture
def no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        yield


# ------------------------------------------------------------------ the helper
def test_the_helper_takes_the_new_name_warns_for_the_old_and_refuses_both(no_warning):
    assert renamed("a", None, "logdir", "out") == "a"
    assert renamed(None, None, "logdir", "out") is None
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        with renamed_warning("out", "logdir"):
            assert renamed(None, "b", "logdir", "out") == "b"
        with pytest.warns(DeprecationWarning, match=r"^compare\(\): 'out' is now called 'logdir'; 'out' will be removed"):
            renamed(None, "b", "logdir", "out", where="compare()")
        with renamed_warning("verbose", "progress"):
            assert renamed(False, True, "progress", "verbose", default=False) is True
    with both_error("out", "logdir"):
        renamed("a", "b", "logdir", "out")
    with both_error("verbose", "progress", ValueError):
        renamed(True, True, "progress", "verbose", default=False, error=ValueError)


# ------------------------------------------------------------------ the estimator
def _data(n_stims=3, n_times=30):
    rng = np.random.default_rng(0)
    X = [rng.random((n_times, 4)) for _ in range(n_stims)]
    y = [np.concatenate([[0.0], x[:-1, 1]])[:, None] + 0.1 * rng.standard_normal((n_times, 1)) for x in X]
    return X, y


def _estimator(**params):
    return STRFEstimator(model="linear", solver="population", n_lags=3, max_epochs=2, random_state=0, **params)


def test_estimator_verbose_and_log_dir_are_kept_as_given_and_used_as_progress_and_logdir_at_fit(tmp_path):
    est = _estimator(verbose=True, loggers=["csv"], log_dir=str(tmp_path))
    params = est.get_params()
    assert params["verbose"] is True and params["log_dir"] == str(tmp_path)
    assert params["progress"] is False and params["logdir"] is None
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        with renamed_warning("verbose", "progress"), renamed_warning("log_dir", "logdir"):
            est.fit(*_data())
    assert est.solver_.progress is True
    assert (tmp_path / "history.csv").is_file()
    # fit leaves the constructor's arguments as they were (scikit-learn's rule)
    assert est.get_params() == params


def test_estimator_clone_keeps_the_old_names():
    sklearn = pytest.importorskip("sklearn")
    from sklearn.base import clone

    assert sklearn
    copy = clone(_estimator(verbose=True, log_dir="x"))
    assert copy.verbose is True and copy.log_dir == "x" and copy.progress is False and copy.logdir is None


@pytest.mark.parametrize("params, old, new", [
    (dict(verbose=True, progress=True), "verbose", "progress"),
    (dict(log_dir="a", logdir="b"), "log_dir", "logdir"),
])
def test_estimator_refuses_both_spellings_at_fit(params, old, new):
    with both_error(old, new, ValueError):
        _estimator(**params).fit(*_data())


def _as_saved_by_0_1(folder: Path, verbose, log_dir) -> None:
    """Rewrite ``estimator.json`` as strfsolver 0.1 wrote it: ``verbose`` and ``log_dir``, no ``progress``/``logdir``."""
    file = folder / "estimator.json"
    state = json.loads(file.read_text())
    params = state["params"]
    for name in ("progress", "logdir", "verbose", "log_dir"):
        params.pop(name, None)
    params.update(verbose=verbose, log_dir=log_dir)
    file.write_text(json.dumps(state))


@pytest.mark.parametrize("verbose, log_dir", [(False, None), (True, "runs")])
def test_an_estimator_folder_of_the_previous_version_loads_under_the_new_names(tmp_path, no_warning, verbose, log_dir):
    X, y = _data()
    fitted = _estimator().fit(X, y)
    folder = fitted.save(tmp_path / "saved")
    assert {"progress", "logdir"} <= set(json.loads((folder / "estimator.json").read_text())["params"])
    _as_saved_by_0_1(folder, verbose, log_dir)
    loaded = STRFEstimator.load(folder)
    assert loaded.progress is verbose and loaded.logdir == log_dir
    assert loaded.verbose is None and loaded.log_dir is None
    np.testing.assert_allclose(loaded.predict(X[0]), fitted.predict(X[0]), rtol=1e-6)
    # saved again, the folder holds the new names only
    again = json.loads((loaded.save(tmp_path / "again") / "estimator.json").read_text())["params"]
    assert again["progress"] is verbose and "verbose" not in again and "log_dir" not in again


# ------------------------------------------------------------------ multi-seed, make_task, run_many, ExperimentSpec
def _factory(seed):
    return strfsolver.models.init("linear", n_freqs=4, n_lags=3, n_neurons=2)


def test_multi_seed_output_dir_is_logdir(tmp_path):
    with renamed_warning("output_dir", "logdir"):
        ms = strfsolver.solver.init("multi-seed", model_factory=_factory, seeds=[0], output_dir=tmp_path)
    assert ms.logdir == tmp_path and "output_dir" not in ms.solver_kwargs
    with renamed_warning("output_dir", "logdir"):
        assert ms.output_dir == tmp_path
    with both_error("output_dir", "logdir"):
        strfsolver.solver.init("multi-seed", model_factory=_factory, seeds=[0], output_dir=tmp_path, logdir=tmp_path)


def test_multi_seed_result_output_dir_is_logdir_and_old_pickles_load(tmp_path):
    result = MultiSeedResult(seeds=[0], runs=[], per_seed=None, summary=None, best_seed=0, best_score=0.0,
                             monitor="val_cc", mode="max", logdir=tmp_path)
    with renamed_warning("output_dir", "logdir"):
        assert result.output_dir == tmp_path
    old = MultiSeedResult.__new__(MultiSeedResult)
    state = {k: v for k, v in vars(result).items() if k != "logdir"}
    old.__setstate__(dict(state, output_dir=tmp_path))  # as a pickle of 0.1 restores it
    assert pickle.loads(pickle.dumps(old)).logdir == tmp_path


def test_make_task_and_run_many_configs_take_output_dir_as_logdir(tmp_path):
    with renamed_warning("output_dir", "logdir"):
        task = make_task(model_factory=_factory, loader_factory=lambda seed: None, output_dir=tmp_path)
    assert task.seed_dir == str(tmp_path)
    with both_error("output_dir", "logdir", TypeError):
        make_task(model_factory=_factory, loader_factory=lambda seed: None, output_dir=tmp_path, logdir=tmp_path)
    assert "logdir" in distributed.CONFIG_KEYS and "output_dir" not in distributed.CONFIG_KEYS
    with renamed_warning("output_dir", "logdir"):
        _, (task,), _ = distributed._config_call(0, {"model_factory": _factory, "loader_factory": lambda s: None, "output_dir": tmp_path})
    assert task.seed_dir == str(tmp_path)


def test_experiment_spec_output_dir_is_logdir():
    with renamed_warning("output_dir", "logdir"):
        spec = ExperimentSpec(output_dir="runs")
    assert spec.logdir == "runs" and spec.output_dir is None
    with renamed_warning("output_dir", "logdir"):
        assert ExperimentSpec.from_mapping({"output_dir": "runs"}).logdir == "runs"
    with both_error("output_dir", "logdir"):
        ExperimentSpec(output_dir="a", logdir="b")


# ------------------------------------------------------------------ logger factories
def test_logger_factories_take_log_dir_as_logdir(tmp_path):
    with renamed_warning("log_dir", "logdir"):
        tensorboard_logger_factory(log_dir=tmp_path, group="ln")
    with renamed_warning("log_dir", "logdir"):
        wandb_logger_factory("strf", group="ln", log_dir=tmp_path)
    with both_error("log_dir", "logdir"):
        tensorboard_logger_factory(tmp_path, "ln", log_dir=tmp_path)
    with both_error("log_dir", "logdir"):
        wandb_logger_factory("strf", "ln", logdir=tmp_path, log_dir=tmp_path)
    with pytest.raises(TypeError, match="needs logdir"):
        tensorboard_logger_factory(group="ln")


# ------------------------------------------------------------------ cross-validation and the app's functions
@pytest.fixture(scope="module")
def dataset():
    return strfsolver.data.synthetic_population(n_neurons=2, n_stims=4, n_repeats=2, n_freqs=4, n_lags=3, n_times=30, seed=1).dataset


def test_cross_validate_compare_and_run_folds_take_out_as_logdir(dataset, tmp_path):
    with renamed_warning("out", "logdir"):
        cross_validate(RIDGE, dataset, cv=2, out=tmp_path / "cv")
    assert list((tmp_path / "cv" / "folds").rglob("*.safetensors"))
    with renamed_warning("out", "logdir"):
        compare({"a": RIDGE, "b": RIDGE}, dataset, cv=2, n_boot=10, out=tmp_path / "cmp")
    assert list((tmp_path / "cmp" / "folds").rglob("*.safetensors"))
    with renamed_warning("out", "logdir"):
        run_folds({"a": RIDGE}, dataset, cv=2, out=tmp_path / "folds")
    assert list((tmp_path / "folds" / "folds").rglob("*.safetensors"))
    for call in (lambda **k: cross_validate(RIDGE, dataset, **k), lambda **k: compare({"a": RIDGE}, dataset, **k),
                 lambda **k: run_folds({"a": RIDGE}, dataset, **k), lambda **k: run_compare({}, **k),
                 lambda **k: run_demo(**k)):
        with both_error("out", "logdir"):
            call(out=tmp_path / "x", logdir=tmp_path / "y")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


# ------------------------------------------------------------------ config files
def test_the_config_key_out_is_logdir(tmp_path):
    (tmp_path / "fit.json").write_text(json.dumps({"data": "data.npz", "out": "results"}))
    loaded = load_config(tmp_path / "fit.json")
    with renamed_warning("out", "logdir"):
        full = complete_config(loaded, CONFIG_KEYS)
    assert full["logdir"] == str(tmp_path / "results") and "out" not in full
    with both_error("out", "logdir", ConfigError):
        complete_config({"data": "d.npz", "out": "a", "logdir": "b"}, CONFIG_KEYS)
    models = {"r": {"model": "linear"}}
    with renamed_warning("out", "logdir"):
        assert validate_compare_config({"data": "d.npz", "models": models, "out": "o"})["logdir"] == "o"
    with both_error("out", "logdir", ConfigError):
        validate_compare_config({"data": "d.npz", "models": models, "out": "o", "logdir": "p"})


# ------------------------------------------------------------------ the command line
@pytest.mark.parametrize("command", [["demo"], ["compare", "c.json"]])
def test_cli_out_is_a_hidden_alias_of_logdir(command, capsys):
    parser = cli.build_parser()
    with renamed_warning("--out", "--logdir"):
        assert parser.parse_args([*command, "--out", "d"]).logdir == "d"
    assert parser.parse_args([*command, "--logdir", "d"]).logdir == "d"
    with pytest.raises(SystemExit) as raised, pytest.warns(DeprecationWarning):
        parser.parse_args([*command, "--out", "a", "--logdir", "b"])
    assert raised.value.code == 2 and "not allowed with" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args([command[0], "--help"])
    shown = capsys.readouterr().out
    assert "--logdir" in shown and "--out" not in shown


def test_cli_demo_with_the_old_out_runs_and_writes_into_the_folder(tmp_path):
    small = ["--quick", "--no-plots", "--no-progress", "--n-neurons", "2", "--n-stims", "4", "--n-times", "60",
             "--n-freqs", "4", "--n-lags", "3", "--max-epochs", "2"]
    with renamed_warning("--out", "--logdir"):
        assert cli.main(["demo", "--out", str(tmp_path / "demo"), *small]) == 0
    assert (tmp_path / "demo" / "summary.csv").is_file()


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_predict_and_evaluate_keep_out_a_file(command, capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args([command, "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "--out FILE" in shown and "a file, not a folder" in shown
