"""save_pretrained's model card and metadata; from_pretrained's map_location, strict and Hub ids (offline, from a local cache)."""

import json
import shutil

import pytest
import torch

import strfsolver
from strfsolver.models import NeuralModel


def _model():
    torch.manual_seed(0)
    return strfsolver.models.init("ln", n_freqs=6, n_lags=4, n_neurons=3)


def test_model_card_lists_config_shapes_and_scores(tmp_path):
    model = _model()
    cc = torch.tensor([0.2, 0.6, float("nan")])
    model.save_pretrained(tmp_path, scores={"test_cc": cc, "test_loss": 0.125}, description="A test fit.")
    card = (tmp_path / "README.md").read_text()
    assert "# ln" in card and "A test fit." in card
    assert "| `n_lags` | `4` |" in card and "| `n_neurons` | 3 |" in card
    # mean and median over the two recorded neurons, and the scalar as given
    assert "| test_cc | 0.4 | 0.4 | 3 |" in card
    assert "| test_loss | 0.125 | | |" in card
    metadata = json.loads((tmp_path / "metadata.json").read_text())
    assert metadata["strfsolver_version"] == strfsolver.__version__
    assert metadata["scores"]["test_cc"]["per_neuron"][:2] == pytest.approx([0.2, 0.6])
    assert metadata["n_parameters"] == sum(p.numel() for p in model.parameters())
    with pytest.raises(ValueError, match="scores\\['bad'\\]"):
        model.save_pretrained(tmp_path / "x", scores={"bad": torch.zeros(2, 2)})


def test_from_pretrained_strict_and_map_location(tmp_path):
    model = _model()
    model.save_pretrained(tmp_path)
    loaded = NeuralModel.from_pretrained(tmp_path, map_location="cpu")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    weights = strfsolver.utils.io.load_tensors(tmp_path / "model.safetensors")
    dropped = next(k for k in weights if k.startswith("readout.activation"))
    del weights[dropped]
    strfsolver.utils.io.save_tensors(tmp_path / "model.safetensors", weights, metadata={"format": "strfsolver-model"})
    with pytest.raises(ValueError, match="do not fit"):
        NeuralModel.from_pretrained(tmp_path)
    partial = NeuralModel.from_pretrained(tmp_path, strict=False)
    assert torch.equal(partial.state_dict()["readout.bias"], model.state_dict()["readout.bias"])


def test_hub_id_loads_from_a_local_cache_offline(tmp_path, monkeypatch):
    hub = pytest.importorskip("huggingface_hub")
    model = _model()
    saved = model.save_pretrained(tmp_path / "saved", scores={"cc": torch.tensor([0.5, 0.7, 0.9])})
    # the cache layout huggingface_hub reads: refs/<revision> names a snapshot folder
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "cache" / "models--lab--ln-strf"
    shutil.copytree(saved, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if hasattr(hub, "constants") and hasattr(hub.constants, "HF_HUB_OFFLINE"):
        monkeypatch.setattr(hub.constants, "HF_HUB_OFFLINE", True)
    loaded = strfsolver.models.from_pretrained("lab/ln-strf", cache_dir=tmp_path / "cache", revision="main")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    stims = torch.rand(2, 6, 30)
    torch.testing.assert_close(loaded.eval()(stims), model.eval()(stims))
    with pytest.raises(FileNotFoundError):  # offline, and not in the cache
        strfsolver.models.from_pretrained("lab/absent", cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match="revision"):
        strfsolver.models.from_pretrained(str(saved), revision="main")
