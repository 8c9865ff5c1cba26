"""Issue 19, causes C, G, I, J, K, N, O: files written whole and tied together, fold names that
cannot collide, bounded messages, deep JSON, one device check, bounded seeds, one config schema.

Each test asserts what the user sees (the value or the message) and, where the outcome is a
refusal, that nothing on disk changed."""

import json
import os
import re
import shutil
import time

import numpy as np
import pytest

from reliability_cases import snapshot
from strfsolver.estimator import STRFEstimator
from strfsolver.utils import folders, io

F, T, N = 5, 30, 2


def _x(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.random((T, F)).astype(np.float32) for _ in range(n)]


def _y(n=4, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.random((T, N)).astype(np.float32) for _ in range(n)]


def _estimator(**params):
    return STRFEstimator(**{"model": "linear", "solver": "population", "n_lags": 3, "max_epochs": 2, "random_state": 0, **params})


@pytest.fixture(scope="module")
def two_fits():
    return _estimator().fit(_x(), _y()), _estimator(random_state=1, lr=0.05).fit(_x(seed=2), _y(seed=3))


# ------------------------------------------------------------------ C: estimator folders
def test_a_save_failing_between_the_model_and_estimator_json_keeps_the_old_folder(two_fits, tmp_path, monkeypatch):
    first, second = two_fits
    folder = first.save(tmp_path / "saved")
    before = snapshot(tmp_path)
    real = io.atomic_write_json

    def full_disk(path, obj, **kwargs):
        if os.path.basename(path) == "estimator.json":
            raise OSError(28, "No space left on device (simulated)")
        return real(path, obj, **kwargs)

    monkeypatch.setattr(io, "atomic_write_json", full_disk)
    import strfsolver.estimator.files as files

    monkeypatch.setattr(files, "atomic_write_json", full_disk)
    with pytest.raises(OSError, match="No space left"):
        second.save(folder)
    monkeypatch.undo()
    assert snapshot(tmp_path) == before  # no temporary left, the old folder byte-identical
    loaded = STRFEstimator.load(folder)
    np.testing.assert_array_equal(loaded.predict(_x(1))[0], first.predict(_x(1))[0])


def test_a_save_replaces_an_existing_estimator_folder_whole(two_fits, tmp_path):
    first, second = two_fits
    folder = first.save(tmp_path / "saved")
    second.save(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved"]
    np.testing.assert_array_equal(STRFEstimator.load(folder).predict(_x(1))[0], second.predict(_x(1))[0])


def test_a_crash_between_the_renames_leaves_the_old_folder_which_the_next_load_restores(two_fits, tmp_path):
    first, _ = two_fits
    folder = first.save(tmp_path / "saved")
    expected = snapshot(folder)
    # what a process killed between "rename the old aside" and "rename the new in" leaves
    dead = 2**22 + 12345  # beyond pid_max on most systems: no such process
    os.rename(folder, tmp_path / f".saved.{dead}-0123456789ab.old")
    (tmp_path / f".saved.{dead}-ba9876543210.tmp").mkdir()
    loaded = STRFEstimator.load(folder)
    assert snapshot(folder) == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved"]
    np.testing.assert_array_equal(loaded.predict(_x(1))[0], first.predict(_x(1))[0])


def test_a_leftover_temporary_is_removed_by_the_next_save(two_fits, tmp_path):
    first, _ = two_fits
    dead = 2**22 + 12345
    (tmp_path / f".saved.{dead}-0123456789ab.tmp" / "model").mkdir(parents=True)
    first.save(tmp_path / "saved")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved"]


def test_weights_of_another_fit_are_refused_naming_both_files(two_fits, tmp_path):
    first, second = two_fits
    a, b = first.save(tmp_path / "a"), second.save(tmp_path / "b")
    shutil.rmtree(a / "model")
    shutil.copytree(b / "model", a / "model")
    before = snapshot(tmp_path)
    with pytest.raises(ValueError) as raised:
        STRFEstimator.load(a)
    message = str(raised.value)
    assert str(a / "model" / "model.safetensors") in message and str(a / "estimator.json") in message
    assert "not the one saved with" in message
    assert snapshot(tmp_path) == before


def test_a_folder_holding_other_files_is_refused_and_kept(two_fits, tmp_path):
    first, _ = two_fits
    (tmp_path / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    with pytest.raises(ValueError, match=r"holds 'notes.txt', which is not part of an estimator folder"):
        first.save(tmp_path)
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------ G: fold store
RIDGE = {"model": "linear", "solver": "ridge", "model_options": {"n_lags": 3}, "solver_options": {"alpha": 1.0}}


@pytest.fixture(scope="module")
def population():
    from strfsolver.data import synthetic_population

    return synthetic_population(n_neurons=2, n_stims=6, n_repeats=2, n_freqs=4, n_lags=3, n_times=40, seed=2)


def test_names_that_sanitise_alike_get_folders_of_their_own(population, tmp_path):
    from strfsolver.model_selection import compare
    from strfsolver.model_selection.store import FoldStore

    compare({"a/b": RIDGE, "a:b": dict(RIDGE, solver_options={"alpha": 10.0})}, population.dataset, cv=2, logdir=tmp_path, n_boot=10)
    store = FoldStore(tmp_path)
    assert store.path("a/b", 0).parent != store.path("a:b", 0).parent
    assert len(list((tmp_path / "folds").iterdir())) == 2
    # a rerun finds each model's own folds instead of refusing the other's
    again = compare({"a/b": RIDGE, "a:b": dict(RIDGE, solver_options={"alpha": 10.0})}, population.dataset, cv=2, logdir=tmp_path, n_boot=10)
    assert set(again.scores["model"]) == {"a/b", "a:b"}
    assert FoldStore(tmp_path).path("plain", 0).parent.name == "plain"


def test_a_logdir_that_is_a_file_is_refused_before_any_fold(population, tmp_path, monkeypatch):
    from strfsolver.model_selection import cross_validate
    from strfsolver.model_selection import crossval as crossval_module

    fitted = []
    monkeypatch.setattr(crossval_module, "fit_fold", lambda *a, **k: fitted.append(k["fold"]))
    target = tmp_path / "taken"
    target.write_text("mine")
    before = snapshot(tmp_path)
    with pytest.raises(ValueError, match=r"logdir '.*taken' is a file, not a folder"):
        cross_validate(RIDGE, population.dataset, cv=2, logdir=target)
    assert fitted == [] and snapshot(tmp_path) == before


# ------------------------------------------------------------------ I: bounded messages
BOMB = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


@pytest.mark.parametrize("key", ["seeds", "model", "device", "valid_stimuli", "model_options", "freqs_hz"])
def test_an_aliased_yaml_bomb_gives_a_short_message_at_once(tmp_path, key):
    pytest.importorskip("yaml")
    from strfsolver.app.fit_config import ConfigError, load_config, validate_config

    from strfsolver.data import save_npz, synthetic_population

    save_npz(tmp_path / "data.npz", synthetic_population(n_neurons=2, n_stims=4, n_freqs=F, n_lags=3, n_times=T, seed=0).dataset)
    value = "*i" if key != "model_options" else "{n_lags: *i}"
    (tmp_path / "bomb.yaml").write_text("anchors:\n" + "".join("  " + line + "\n" for line in BOMB.splitlines())
                                        + f"data: data.npz\nlogdir: out\n{key}: {value}\n")
    text = (tmp_path / "bomb.yaml").read_text().replace("anchors:\n", "")
    (tmp_path / "bomb.yaml").write_text(BOMB + f"data: data.npz\nlogdir: out\n{key}: {value}\n")
    assert len(text) < 1000
    before = snapshot(tmp_path)
    start = time.perf_counter()
    with pytest.raises(ValueError) as raised:
        config = load_config(tmp_path / "bomb.yaml")
        config = {k: v for k, v in config.items() if k not in "abcdefghi"}
        validate_config(config)
        from strfsolver.app.fit_config import run_fit

        run_fit(config, progress=False, plots=False, print_fn=lambda *_: None)
    assert time.perf_counter() - start < 1.0
    message = str(raised.value)
    assert len(message) < 2000 and key in message
    assert snapshot(tmp_path) == before


def test_short_repr_is_the_repr_when_short_and_bounded_otherwise():
    from strfsolver.utils.checks import short_repr

    for value in ([1, (2,), {"a": {3}}, set(), frozenset({1}), "x", b"y", None, 1.5, ()],):
        assert short_repr(value) == repr(value)
    nested = ["lol"] * 9
    for _ in range(12):
        nested = [nested] * 9  # 9**13 leaves: its repr would be petabytes
    start = time.perf_counter()
    assert len(short_repr(nested)) <= 200 and len(short_repr("x" * 10**7, 50)) <= 50
    assert short_repr(10**100000).startswith("<an integer of")
    assert time.perf_counter() - start < 0.5


# ------------------------------------------------------------------ J: deep JSON
DEEP = "[" * 100000 + "]" * 100000


def test_a_deeply_nested_json_config_is_named(tmp_path):
    from strfsolver.app import cli
    from strfsolver.app.fit_config import ConfigError, load_config

    (tmp_path / "deep.json").write_text(DEEP)
    with pytest.raises(ConfigError, match=r"deep.json is nested too deeply to read as JSON"):
        load_config(tmp_path / "deep.json")
    assert cli.main(["fit", str(tmp_path / "deep.json"), "--no-progress"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep.json"]


def test_a_deeply_nested_safetensors_header_is_named(tmp_path):
    import struct

    header = ('{"__metadata__": {}, "x": ' + DEEP + "}").encode()
    path = tmp_path / "deep.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    with pytest.raises(ValueError, match=r"deep.safetensors: the safetensors header is nested too deeply"):
        io.load_tensors(path)


def test_a_deeply_nested_estimator_json_and_model_config_are_named(two_fits, tmp_path):
    first, _ = two_fits
    folder = first.save(tmp_path / "saved")
    (folder / "model" / "config.json").write_text(DEEP)
    with pytest.raises(ValueError, match=r"config.json is nested too deeply"):
        STRFEstimator.load(folder)
    (folder / "estimator.json").write_text(DEEP)
    before = snapshot(tmp_path)
    with pytest.raises(ValueError, match=r"estimator.json is nested too deeply"):
        STRFEstimator.load(folder)
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------ K: one device check
@pytest.mark.parametrize("device, message", [
    ("meta", r"device='meta': a meta tensor holds no data"),
    ("cuda:7", r"device='cuda:7' but this (torch has no usable CUDA device|machine has \d+ CUDA device)"),
])
def test_every_entry_point_refuses_an_unusable_device(two_fits, population, tmp_path, device, message):
    import torch

    from strfsolver import solver
    from strfsolver.data import make_loader
    from strfsolver.models import from_pretrained, init
    from strfsolver.workflow.experiment import build_experiment

    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a CUDA device 7")
    dataset = population.dataset
    with pytest.raises(ValueError, match=message):
        _estimator(device=device).fit(_x(), _y())
    with pytest.raises(ValueError, match=message):
        make_loader(dataset, device=device)
    with pytest.raises(ValueError, match=message):
        build_experiment(dict(RIDGE, device=device), dataset)
    with pytest.raises(ValueError, match=message):
        solver.init("population", model=init("linear", n_freqs=4, n_neurons=2, n_lags=3), device=device)
    folder = two_fits[0].save(tmp_path / "saved")
    with pytest.raises(ValueError, match=message):
        from_pretrained(folder / "model", device=device)
    with pytest.raises(ValueError, match=message.replace("device=", "map_location=")):
        from_pretrained(folder / "model", map_location=device)
    with pytest.raises(ValueError, match=message):
        STRFEstimator.load(folder, device=device)


@pytest.mark.parametrize("device", ["meta", "cuda:7"])
def test_the_command_line_refuses_an_unusable_device(two_fits, tmp_path, capsys, device):
    import torch

    from strfsolver.app import cli
    from strfsolver.data import save_npz, synthetic_population

    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a CUDA device 7")
    save_npz(tmp_path / "data.npz", synthetic_population(n_neurons=2, n_stims=4, n_freqs=F, n_lags=3, n_times=T, seed=0).dataset)
    two_fits[0].save(tmp_path / "saved")
    (tmp_path / "fit.json").write_text(json.dumps({"data": "data.npz", "logdir": "out", "device": device}))
    before = snapshot(tmp_path)
    assert cli.main(["fit", str(tmp_path / "fit.json"), "--no-progress"]) == 2
    assert f"config key 'device'={device!r}" in capsys.readouterr().err
    for command in ("predict", "evaluate"):
        out = str(tmp_path / ("p.npz" if command == "predict" else "p.csv"))
        assert cli.main([command, str(tmp_path / "saved" / "model"), str(tmp_path / "data.npz"), "--out", out, "--device", device]) == 2
        assert f"--device={device!r}" in capsys.readouterr().err
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------ N: bounded seeds
@pytest.mark.parametrize("seed", [2**63, 2**64, -1])
def test_every_seed_option_is_bounded_and_named(population, tmp_path, seed):
    from strfsolver import solver
    from strfsolver.app.fit_config import ConfigError, validate_config
    from strfsolver.data import make_loader
    from strfsolver.utils.seeding import set_random_seed

    shown = r"integer in \[0, 2\*\*63 - 1\] \(a seed\), got " + str(seed)
    with pytest.raises(ValueError, match="random_state must be" + (r" a non-negative integer" if seed < 0 else " an " + shown)):
        _estimator(random_state=seed).fit(_x(), _y())
    with pytest.raises(ValueError, match=r"^seed must be an " + shown):
        make_loader(population.dataset, seed=seed)
    with pytest.raises(ValueError, match=r"^seed must be an " + shown):
        population.dataset.split([0.5, 0.5], seed=seed)
    with pytest.raises(ValueError, match=r"^seed must be an " + shown):
        set_random_seed(seed)
    with pytest.raises(ValueError, match=r"seeds\[1\] must be an " + shown):
        solver.init("multi-seed", solver="population", seeds=[0, seed], model_factory=lambda s: None)
    (tmp_path / "d.npz").write_bytes(b"")
    for key, value, named in (("seeds", [0, seed], "seeds[1]"), ("split_seed", seed, "split_seed")):
        with pytest.raises(ConfigError, match=re.escape(f"config key '{named}'") + " must be an " + shown):
            validate_config({"data": str(tmp_path / "d.npz"), "logdir": str(tmp_path / "out"), key: value})


# ------------------------------------------------------------------ O: one config schema
def _config(tmp_path, text, name="fit.json"):
    (tmp_path / "data.npz").write_bytes(b"")
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@pytest.mark.parametrize("what, content, message", [
    ("invalid UTF-8", b'{"data": "data.npz", "logdir": "out", "model": "\xff\xfe"}', r"fit.json is not UTF-8 text"),
    ("non-string key", '{"data": "data.npz", "logdir": "out", "model_options": {"1": 2}}', None),
    ("model_options a list", '{"data": "data.npz", "logdir": "out", "model_options": [1, 2]}', r"config key 'model_options' must be a mapping of keyword arguments, got list \[1, 2\]"),
    ("solver_options a string", '{"data": "data.npz", "logdir": "out", "solver_options": "fast"}', r"config key 'solver_options' must be a mapping"),
])
def test_config_gaps_are_closed(tmp_path, capsys, what, content, message):
    from strfsolver.app import cli
    from strfsolver.app.fit_config import ConfigError, load_config, validate_config

    path = _config(tmp_path, content)
    before = snapshot(tmp_path)
    if message is None:  # JSON keys are strings: only YAML can give another key; see the next test
        validate_config(load_config(path))
        return
    with pytest.raises(ConfigError, match=message):
        validate_config(load_config(path))
    assert cli.main(["fit", str(path), "--no-progress"]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("text, message", [
    ("data: data.npz\nlogdir: out\n1: 2\n", r"config keys must be strings, got the key int 1"),
    ("data: data.npz\nlogdir: out\nmodel_options: {1: 2}\n", r"config key 'model_options' must map names \(strings\) to values, but has the key int 1"),
    ("data: data.npz\nlogdir: out\nmodel_options: [n_lags, 4]\n", r"config key 'model_options' must be a mapping of keyword arguments, got list"),
])
def test_yaml_configs_with_other_keys_are_refused(tmp_path, text, message):
    pytest.importorskip("yaml")
    from strfsolver.app.fit_config import ConfigError, load_config, validate_config

    path = _config(tmp_path, text, "fit.yaml")
    with pytest.raises(ConfigError, match=message):
        validate_config(load_config(path))


def test_a_folder_as_the_config_path_is_named(tmp_path, capsys):
    from strfsolver.app import cli
    from strfsolver.app.fit_config import ConfigError, load_config

    (tmp_path / "fit.json").mkdir()
    with pytest.raises(ConfigError, match=r"config file .*fit.json is a folder"):
        load_config(tmp_path / "fit.json")
    assert cli.main(["compare", str(tmp_path / "fit.json"), "--logdir", str(tmp_path / "out")]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.json"]


def test_a_compare_config_with_a_list_as_model_options_is_named(tmp_path):
    from strfsolver.app.compare_config import validate_compare_config
    from strfsolver.app.fit_config import ConfigError

    with pytest.raises(ConfigError, match=r"config key 'models.ridge.model_options' must be a mapping of keyword arguments, got list"):
        validate_compare_config({"data": "d.npz", "models": {"ridge": {"model": "linear", "model_options": [1]}}})
    with pytest.raises(ConfigError, match=r"config key 'models.ridge.seeds\[0\]' must be an integer in \[0, 2\*\*63 - 1\]"):
        validate_compare_config({"data": "d.npz", "models": {"ridge": {"model": "linear", "seeds": [2**64]}}})


def test_a_stimulus_name_shared_by_two_stimuli_is_refused(population):
    from strfsolver.app.fit_config import ConfigError, select_stimuli

    dataset = population.dataset
    for i, meta in enumerate(dataset.meta):
        meta["name"] = "song" if i in (1, 3) else f"s{i}"
    with pytest.raises(ConfigError, match=r"config key 'valid_stimuli': 2 stimuli are named 'song' \(positions \[1, 3\]\); name them by position"):
        select_stimuli(dataset, ["song"], "valid_stimuli")
    assert select_stimuli(dataset, ["s0", 3], "valid_stimuli") == [0, 3]


def test_every_schema_key_has_a_check_and_the_documented_defaults():
    from strfsolver.app.compare_config import COMPARE_KEYS
    from strfsolver.app.config_schema import COMPARE_SCHEMA, FIT_SCHEMA
    from strfsolver.app.fit_config import CONFIG_KEYS

    assert CONFIG_KEYS == {k: v.default for k, v in FIT_SCHEMA.items()}
    assert COMPARE_KEYS == {k: v.default for k, v in COMPARE_SCHEMA.items()}
    assert all(callable(entry.check) for entry in [*FIT_SCHEMA.values(), *COMPARE_SCHEMA.values()])
