"""Issue 19, the isolated edges: what a user sees at each.

1. ``--out`` (and every file strfsolver writes) through a symbolic link writes the link's target; the link stays.
2. Ctrl-C during a command: one line, exit status 130, checkpoints left as they are.
3. A safetensors header naming one tensor twice is refused, naming the file and the name.
4. A mistyped local path in ``from_pretrained`` is never sent to the Hugging Face Hub.
5. An ``.npz`` holding both layouts is refused, naming both layouts' keys.
6. Ridge folds count only the training stimuli with a recorded bin.
"""

import csv
import json
import struct

import numpy as np
import pytest
import torch

import strfsolver
from strfsolver.app import cli
from strfsolver.data import NeuralDataset, make_loader, save_npz, synthetic_population
from strfsolver.utils import io

N, F, L = 3, 5, 4


@pytest.fixture(scope="module")
def population():
    return synthetic_population(n_neurons=N, n_stims=10, n_repeats=2, n_freqs=F, n_lags=L, n_times=40, seed=5)


@pytest.fixture()
def saved(tmp_path, population):
    torch.manual_seed(0)
    model = strfsolver.models.init("linear", n_freqs=F, n_lags=L, n_neurons=N)
    model.save_pretrained(tmp_path / "model")
    save_npz(tmp_path / "data.npz", population.dataset)
    return tmp_path / "model", tmp_path / "data.npz"


# ----------------------------------------------------------------------------- 1
@pytest.mark.parametrize("command, name", [("evaluate", "scores.csv"), ("predict", "preds.npz")])
def test_out_through_a_symlink_writes_its_target_and_keeps_the_link(saved, tmp_path, command, name):
    model, data = saved
    (tmp_path / "results").mkdir()
    target = tmp_path / "results" / name
    target.write_bytes(b"old content")
    link = tmp_path / name
    link.symlink_to(target)
    assert cli.main([command, str(model), str(data), "--out", str(link)]) == 0
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert target.read_bytes() != b"old content"
    if command == "evaluate":
        rows = list(csv.DictReader(target.open()))
        assert [row["neuron"] for row in rows] == ["0", "1", "2"]
    else:
        with np.load(target) as preds:
            assert preds["pred_0"].shape[0] == N
    # no temporary file is left beside the link or the target
    assert io.stale_temporaries(tmp_path) == [] and io.stale_temporaries(target.parent) == []


def test_the_atomic_writer_follows_a_chain_of_links_and_a_dangling_one(tmp_path):
    target = tmp_path / "real" / "file.json"
    middle, link = tmp_path / "middle.json", tmp_path / "link.json"
    middle.symlink_to(target)  # dangling: the target's folder does not exist yet
    link.symlink_to(middle)
    io.atomic_write_json(link, {"a": 1})
    assert link.is_symlink() and middle.is_symlink()
    assert json.loads(target.read_text()) == {"a": 1}
    io.atomic_write_json(link, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2} and link.is_symlink()


# ----------------------------------------------------------------------------- 2
def test_ctrl_c_prints_one_line_and_exits_130(saved, tmp_path, monkeypatch, capsys):
    from strfsolver.app import saved_models

    model, data = saved

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(saved_models, "predict_dataset", interrupted)
    assert cli.main(["evaluate", str(model), str(data), "--out", str(tmp_path / "scores.csv")]) == 130
    err = capsys.readouterr().err
    assert err.strip() == "strfsolver evaluate: interrupted"
    assert "Traceback" not in err and not (tmp_path / "scores.csv").exists()


def test_ctrl_c_during_a_fit_leaves_its_checkpoints_to_resume(tmp_path, population, monkeypatch, capsys):
    from strfsolver.solver.base import Solver as BaseSolver

    save_npz(tmp_path / "data.npz", population.dataset)
    config = {"data": "data.npz", "logdir": "out", "model": "linear", "solver": "population", "seeds": [0],
              "model_options": {"n_lags": L}, "solver_options": {"lr": 0.05, "max_epochs": 4, "patience": 4}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    argv = ["fit", str(tmp_path / "config.json"), "--no-progress", "--no-plots"]
    real_epoch, calls = BaseSolver.validation, []

    def interrupted_at_the_third_epoch(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_epoch(self, *args, **kwargs)

    monkeypatch.setattr(BaseSolver, "validation", interrupted_at_the_third_epoch)
    assert cli.main(argv) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "strfsolver fit: interrupted"
    assert list((tmp_path / "out").rglob("*.safetensors")), "the checkpoints written before Ctrl-C are kept"
    monkeypatch.setattr(BaseSolver, "validation", real_epoch)
    assert cli.main(argv + ["--resume"]) == 0
    assert (tmp_path / "out" / "summary.csv").is_file()


# ----------------------------------------------------------------------------- 3
def test_a_tensor_named_twice_in_a_safetensors_header_is_refused(tmp_path):
    path = tmp_path / "twice.safetensors"
    entry = '{"dtype":"F32","shape":[1],"data_offsets":[%d,%d]}'
    header = ('{"weight":' + entry % (0, 4) + ',"weight":' + entry % (4, 8) + "}").encode()
    header += b" " * (-len(header) % 8)
    path.write_bytes(struct.pack("<Q", len(header)) + header + struct.pack("<2f", 1.0, 2.0))
    with pytest.raises(ValueError, match=r"twice\.safetensors: the safetensors header repeats the key 'weight'"):
        io.load_tensors(path)


def test_a_json_config_repeating_a_key_is_refused(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"logdir": "a", "logdir": "b"}')
    with pytest.raises(ValueError, match=r"config\.json repeats the key 'logdir'"):
        io.read_json(path)


# ----------------------------------------------------------------------------- 4
@pytest.fixture()
def no_hub(monkeypatch):
    hub = pytest.importorskip("huggingface_hub")

    def called(*args, **kwargs):
        pytest.fail(f"the Hugging Face Hub was asked for {args} {kwargs}")

    monkeypatch.setattr(hub, "snapshot_download", called)
    return hub


@pytest.mark.parametrize("mistyped", [
    "./runs/model", "../model", "/no/such/model", "~/runs/model", "runs/fit/model", "runs\\model",
    "runs/model.safetensors", "model/config.json", "model",
])
def test_a_mistyped_local_path_is_not_sent_to_the_hub(no_hub, mistyped):
    with pytest.raises(FileNotFoundError, match="does not exist locally") as raised:
        strfsolver.models.from_pretrained(mistyped)
    assert repr(mistyped)[1:-1] in str(raised.value)


def test_a_missing_path_object_is_not_sent_to_the_hub(no_hub, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing.* does not exist locally"):
        strfsolver.models.from_pretrained(tmp_path / "nothing")


def test_a_hub_id_without_the_hub_package_is_not_found_locally(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import now raises ImportError
    with pytest.raises(FileNotFoundError, match=r"'lab/strf' does not exist locally .*pip install huggingface_hub"):
        strfsolver.models.from_pretrained("lab/strf")


def test_a_plain_hub_id_still_goes_to_the_hub(monkeypatch, tmp_path):
    hub = pytest.importorskip("huggingface_hub")
    asked = []

    def download(repo_id, revision=None, cache_dir=None):
        asked.append(repo_id)
        raise FileNotFoundError(f"{repo_id} is not in the cache")

    monkeypatch.setattr(hub, "snapshot_download", download)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="not in the cache"):
        strfsolver.models.from_pretrained("lab/strf-1.0")
    assert asked == ["lab/strf-1.0"]


# ----------------------------------------------------------------------------- 5
def test_an_npz_with_both_layouts_is_refused(tmp_path, population):
    path = tmp_path / "both.npz"
    save_npz(path, population.dataset)
    with np.load(path) as archive:
        arrays = dict(archive)
    ds = population.dataset
    arrays["stims"] = np.stack([s.numpy() for s in ds.stims])
    arrays["responses"] = np.stack([r.numpy() for r in ds.responses])
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"both\.npz holds both layouts: the indexed one \(\['n_stims', 'stim_0', .*\) "
                                         r"and the stacked one \(\['responses', 'stims'\]\)"):
        strfsolver.data.load_npz(path)


# ----------------------------------------------------------------------------- 6
def _unrecorded(dataset, which):
    responses = [r.clone() for r in dataset.responses]
    for i in which:
        responses[i][:] = float("nan")
    return NeuralDataset(dataset.stims, responses, dataset.dt_ms)


def _ridge(cv):
    torch.manual_seed(0)
    model = strfsolver.models.init("linear", n_freqs=F, n_lags=L, n_neurons=N)
    return strfsolver.solver.init("ridge", model=model, cv=cv, progress=False)


def test_ridge_folds_are_dealt_over_the_recorded_stimuli_only(population):
    # 10 stimuli, the first 3 unrecorded: by position, fold 0 of 5 would hold none;
    # dealt over the 7 recorded ones, every fold holds one
    data = _unrecorded(population.dataset, [0, 1, 2])
    fitted = _ridge(5).solve(make_loader(data, batch_size=2))
    assert len(fitted.folds) == 5
    assert sorted(i for _, test in fitted.folds for i in test) == list(range(5))


def test_ridge_refuses_more_folds_than_recorded_training_stimuli(population):
    data = _unrecorded(population.dataset, range(7))  # 3 of 10 recorded
    with pytest.raises(ValueError, match=r"cv=5 folds need at least 5 training stimuli, the loader has 3 recorded ones "
                                         r"\(7 of its 10 have no recorded bin for any neuron\)"):
        _ridge(5).solve(make_loader(data, batch_size=2))
