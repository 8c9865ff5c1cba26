"""deepSTRF's save_pretrained / from_pretrained arguments and push_to_hub, against a stubbed Hub (never the network)."""

import sys
from pathlib import Path
import shutil

import pytest
import torch

import strfsolver

SHAPE = dict(n_freqs=5, n_lags=3, n_neurons=2)


def model():
    strfsolver.set_random_seed(0)
    return strfsolver.models.init("ln", **SHAPE)


def same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_metadata_round_trip_and_return_metadata(tmp_path):
    facts = {"dataset": "ns1", "test_cc": [0.5, 0.25], "nested": {"epochs": 3}}
    model().save_pretrained(tmp_path / "m", metadata=facts)
    loaded, metadata = strfsolver.models.from_pretrained(tmp_path / "m", return_metadata=True)
    assert metadata == facts and same_weights(loaded, model())
    plain = strfsolver.models.from_pretrained(tmp_path / "m")
    assert isinstance(plain, strfsolver.models.LNModel)
    model().save_pretrained(tmp_path / "bare")
    assert strfsolver.models.from_pretrained(tmp_path / "bare", return_metadata=True)[1] is None


def test_model_card_replaces_the_generated_card(tmp_path):
    model().save_pretrained(tmp_path / "m", model_card="# My LN\n")
    assert (tmp_path / "m" / "README.md").read_text() == "# My LN\n"


def test_extra_kwargs_is_the_overrides_dict(tmp_path):
    model().save_pretrained(tmp_path / "m")
    loaded = strfsolver.models.from_pretrained(tmp_path / "m", extra_kwargs={"activation": "softplus"})
    assert loaded.config["activation"] == "softplus"
    with pytest.raises(ValueError, match="given both in extra_kwargs and as keywords"):
        strfsolver.models.from_pretrained(tmp_path / "m", extra_kwargs={"activation": "softplus"}, activation="relu")
    with pytest.raises(ValueError, match="extra_kwargs must be a dict"):
        strfsolver.models.from_pretrained(tmp_path / "m", extra_kwargs=["activation"])


def test_bad_metadata_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="metadata must be a dict of JSON values"):
        model().save_pretrained(tmp_path / "m", metadata={"model": object()})
    with pytest.raises(ValueError, match="metadata must be a dict"):
        model().save_pretrained(tmp_path / "m", metadata=["x"])
    assert not (tmp_path / "m").exists()


class StubApi:
    """Stands in for huggingface_hub.HfApi: the "remote" repositories are folders."""

    remote: Path = None
    calls: list = []

    def __init__(self, token=None):
        self.token = token

    def create_repo(self, repo_id, repo_type, private, exist_ok):
        StubApi.calls.append(("create", repo_id, repo_type, private, exist_ok, self.token))
        (StubApi.remote / repo_id).mkdir(parents=True, exist_ok=exist_ok)

    def upload_folder(self, repo_id, folder_path, repo_type, commit_message):
        StubApi.calls.append(("upload", repo_id, commit_message))
        shutil.copytree(folder_path, StubApi.remote / repo_id, dirs_exist_ok=True)
        return type("CommitInfo", (), {"commit_url": f"https://hub.example/{repo_id}/commit/1"})()


def test_push_to_hub_uploads_the_saved_folder(monkeypatch, tmp_path):
    hub = pytest.importorskip("huggingface_hub")
    StubApi.remote, StubApi.calls = tmp_path / "remote", []
    monkeypatch.setattr(hub, "HfApi", StubApi)
    url = model().push_to_hub("lab/ln-a1", metadata={"dataset": "a1"}, private=True, token="t0k", commit_message="first")
    assert url == "https://hub.example/lab/ln-a1/commit/1"
    assert StubApi.calls == [("create", "lab/ln-a1", "model", True, True, "t0k"), ("upload", "lab/ln-a1", "first")]
    loaded, metadata = strfsolver.models.from_pretrained(StubApi.remote / "lab" / "ln-a1", return_metadata=True)
    assert metadata == {"dataset": "a1"} and same_weights(loaded, model())


def test_push_to_hub_without_the_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import now raises ImportError
    with pytest.raises(ImportError, match=r"strfsolver\[hub\]"):
        model().push_to_hub("lab/ln-a1")


def test_push_to_hub_refuses_a_path_for_an_id():
    with pytest.raises(ValueError, match="'owner/name'"):
        model().push_to_hub("./runs/ln")
