"""NeuralModel: the four slots, argument capture, save_pretrained / from_pretrained rules."""

import json
import warnings

import pytest
import torch
from torch import nn

import strfsolver
from strfsolver.models import LinearModel, NeuralModel, STRFReadout

F, L, N = 8, 5, 3


class MinimalModel(NeuralModel):
    """A user model that only sets a readout (not registered)."""

    def __init__(self, n_freqs, n_lags, n_neurons, scale=1.0, **options):
        super().__init__(n_freqs, n_lags, n_neurons, **options)
        self.scale = scale
        self.readout = STRFReadout(self.feature_freqs, n_lags, n_neurons, n_channels=self.feature_channels)


class ScaledMinimal(MinimalModel):
    def __init__(self, n_freqs, n_lags, n_neurons, extra=3):
        super().__init__(n_freqs, n_lags, n_neurons, scale=2.0 * extra)


def test_slots_default_to_identity_and_apply_in_order(stims):
    model = MinimalModel(F, L, N)
    for slot in ("wav2spec", "prefiltering", "core"):
        assert isinstance(getattr(model, slot), nn.Identity)
    assert model(stims).shape == (2, N, 1, 40)

    class Double(nn.Module):
        def forward(self, x):
            return 2 * x

    model.core = Double()
    torch.testing.assert_close(model(stims) - model.readout.bias.view(1, -1, 1, 1),
                               2 * (model.readout(stims.unsqueeze(1)) - model.readout.bias.view(1, -1, 1, 1)))


def test_constructor_arguments_are_captured_with_defaults_and_var_kwargs():
    model = MinimalModel(F, L, N, dt_ms=10.0)
    assert model.config == dict(n_freqs=F, n_lags=L, n_neurons=N, scale=1.0, dt_ms=10.0)
    # the outermost constructor wins over the super() calls it makes
    assert ScaledMinimal(F, L, N).config == dict(n_freqs=F, n_lags=L, n_neurons=N, extra=3)
    linear = strfsolver.models.init("linear", n_freqs=F, n_lags=L, n_neurons=N, kernel="separable")
    assert linear.config["kernel"] == "separable" and linear.config["rank"] == 1
    assert "activation" not in linear.config  # LinearModel's own signature, not STRFModel's
    assert linear.registered_name() == "linear"
    assert MinimalModel(F, L, N).registered_name() is None
    bare = NeuralModel(F, L, N)
    assert bare.config["n_neurons"] == N


def test_unregistered_model_reloads_through_its_class(tmp_path, stims):
    model = MinimalModel(F, L, N, scale=3.0)
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["name"] is None and config["arguments"]["scale"] == 3.0
    with pytest.raises(ValueError, match="MinimalModel.*register the class"):
        NeuralModel.from_pretrained(tmp_path)
    loaded = MinimalModel.from_pretrained(tmp_path)
    assert loaded.scale == 3.0 and torch.equal(loaded(stims), model(stims))


def test_non_json_argument_warns_at_save_and_must_be_passed_again(tmp_path, stims):
    prefilter = strfsolver.prefilters.init("adaptrans", n_freqs=F, dt_ms=5.0)
    model = strfsolver.models.init("ln", n_freqs=F, n_lags=L, n_neurons=N, prefiltering=prefilter)
    with torch.no_grad():
        prefilter.raw_w.add_(0.3)  # a trained prefilter: its weights must come back from the file
    with pytest.warns(UserWarning, match=r"prefiltering=<AdapTrans>.*passed again"):
        model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["pass_again"] == {"prefiltering": "AdapTrans"} and "prefiltering" not in config["arguments"]
    with pytest.raises(ValueError, match=r"prefiltering \(a AdapTrans\).*pass them again"):
        NeuralModel.from_pretrained(tmp_path)
    fresh = strfsolver.prefilters.init("adaptrans", n_freqs=F, dt_ms=5.0)
    loaded = NeuralModel.from_pretrained(tmp_path, prefiltering=fresh)
    assert loaded.prefiltering is fresh
    torch.testing.assert_close(fresh.raw_w, prefilter.raw_w, rtol=0, atol=0)
    assert torch.equal(loaded(stims), model(stims))


def test_overrides_and_errors_at_load(tmp_path, stims):
    model = strfsolver.models.init("linear", n_freqs=F, n_lags=L, n_neurons=N)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # JSON-only arguments: no warning
        model.save_pretrained(tmp_path / "m")
    # an override that keeps the shapes (dt_ms) is accepted
    assert NeuralModel.from_pretrained(tmp_path / "m", dt_ms=10.0).dt_ms == 10.0
    with pytest.raises(ValueError, match="do not fit"):
        NeuralModel.from_pretrained(tmp_path / "m", n_lags=L + 1)
    with pytest.raises(FileNotFoundError, match="nothing' does not exist locally"):
        NeuralModel.from_pretrained(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="No config.json"):
        NeuralModel.from_pretrained(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="not written by"):
        NeuralModel.from_pretrained(tmp_path / "bad")
    # the weights file holds tensors only (safetensors), no pickle
    assert (tmp_path / "m" / "model.safetensors").read_bytes()[:8] != b"\x80\x04\x95"
    loaded = LinearModel.from_pretrained(tmp_path / "m")
    assert torch.equal(loaded.strf(), model.strf())


def test_bad_constructor_arguments_are_value_errors():
    with pytest.raises(ValueError, match="n_neurons"):
        strfsolver.models.init("linear", n_freqs=F, n_lags=L, n_neurons=0)
    with pytest.raises(ValueError, match="dt_ms"):
        strfsolver.models.init("linear", n_freqs=F, n_lags=L, n_neurons=N, dt_ms=-1)
    with pytest.raises(ValueError, match="Unknown name 'adaptranz'.*'adaptrans'"):
        strfsolver.models.init("linear", n_freqs=F, n_lags=L, n_neurons=N, prefiltering="adaptranz")
    with pytest.raises(ValueError, match="prefiltering"):
        strfsolver.models.init("linear", n_freqs=F, n_lags=L, n_neurons=N, prefiltering=3)
    with pytest.raises(ValueError, match="Did you mean 'linear'"):
        strfsolver.models.init("lineer", n_freqs=F, n_lags=L, n_neurons=N)


def test_strf_is_only_defined_for_strf_models(build):
    assert build("linear").has_strf and build("ln").has_strf
    for name in ("nrf", "cnn2d", "statenet", "transformer"):
        model = build(name)
        assert not model.has_strf
        with pytest.raises(NotImplementedError, match="gradient_strf"):
            model.strf()
