"""Properties every registered model must have (issue 4): shape, causality, save/load, options."""

import json

import pytest
import torch

import strfsolver
from strfsolver.models import NeuralModel

MODELS = strfsolver.models.get_options()
B, F, T, N, L = 2, 8, 40, 3, 5


def test_get_options_lists_the_six_models():
    assert set(MODELS) >= {"cnn2d", "linear", "ln", "nrf", "statenet", "transformer"}
    assert "linear" in strfsolver.models.__doc__  # add_docstring ran after the registrations


@pytest.mark.parametrize("name", MODELS)
def test_output_shape_for_3d_and_4d_stimuli(name, build, stims):
    model = build(name)
    assert isinstance(model, NeuralModel)
    out = model(stims)
    assert out.shape == (B, N, 1, T)
    assert torch.isfinite(out).all()
    # (B, 1, F, T) is the same stimulus as (B, F, T)
    torch.testing.assert_close(model(stims.unsqueeze(1)), out)
    two = build(name, n_channels=2)
    assert two(torch.rand(B, 2, F, T)).shape == (B, N, 1, T)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("prefiltering", [None, "adaptrans", "icadaptation"])
def test_causal(name, prefiltering, build, stims):
    model = build(name, prefiltering=prefiltering).eval()
    t0 = 23
    changed = stims.clone()
    changed[..., t0:] = torch.rand(B, F, T - t0, generator=torch.Generator().manual_seed(5)) * 3
    with torch.no_grad():
        before, after = model(stims), model(changed)
    assert torch.equal(before[..., :t0], after[..., :t0])
    # the test can fail: the change does reach the output from t0 on
    assert not torch.allclose(before[..., t0:], after[..., t0:])


@pytest.mark.parametrize("name", MODELS)
def test_adaptrans_prefilter_doubles_the_core_channels(name, build, stims):
    model = build(name, prefiltering="adaptrans", prefiltering_options={"f_min": 200.0, "f_max": 8000.0})
    assert model.feature_channels == 2 and model.feature_freqs == F
    assert isinstance(model.prefiltering, strfsolver.prefilters.AdapTrans)
    assert model(stims).shape == (B, N, 1, T)
    # the prefilter's parameters train with the model
    model(stims).sum().backward()
    assert model.prefiltering.raw_w.grad is not None and model.prefiltering.raw_w.grad.abs().sum() > 0


@pytest.mark.parametrize("name", MODELS)
def test_prefilter_module_sets_the_channels(name, build, stims):
    prefilter = strfsolver.prefilters.init("adaptrans", n_freqs=F, dt_ms=10.0, n_channels=2)
    model = build(name, n_channels=2, prefiltering=prefilter)
    assert model.prefiltering is prefilter and model.feature_channels == 4
    assert model(torch.rand(B, 2, F, T)).shape == (B, N, 1, T)


@pytest.mark.parametrize("name", MODELS)
def test_save_pretrained_round_trip(name, build, stims, tmp_path):
    model = build(name, prefiltering="adaptrans").eval()
    with torch.no_grad():
        for p in model.parameters():  # move away from the initial values
            p.add_(0.01 * torch.randn_like(p))
        expected = model(stims)
    model.save_pretrained(tmp_path / name)
    config = json.loads((tmp_path / name / "config.json").read_text())
    assert config["name"] == name
    assert config["arguments"]["n_freqs"] == F and config["arguments"]["prefiltering"] == "adaptrans"
    assert config["pass_again"] == {}
    loaded = NeuralModel.from_pretrained(tmp_path / name).eval()
    assert type(loaded) is type(model)
    with torch.no_grad():
        assert torch.equal(loaded(stims), expected)
    # the module-level shortcut gives the same model
    with torch.no_grad():
        assert torch.equal(strfsolver.models.from_pretrained(tmp_path / name).eval()(stims), expected)


@pytest.mark.parametrize("name", MODELS)
def test_validate_and_count_parameters(name, build):
    model = build(name)
    assert model.validate() is model
    assert model.count_parameters() == sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(ValueError, match="non-finite"):
        model.validate()


@pytest.mark.parametrize("name", MODELS)
def test_wrong_stimulus_shape_names_both_shapes(name, build):
    model = build(name)
    with pytest.raises(ValueError, match=r"\(B, 1, 8, T\).*\(2, 9, 40\)"):
        model(torch.rand(2, 9, 40))
    with pytest.raises(ValueError, match="n_channels=2"):
        build(name, n_channels=2)(torch.rand(2, 8, 40))


@pytest.mark.parametrize("name", MODELS)
def test_detach_is_safe_and_returns_the_model(name, build, stims):
    model = build(name)
    assert model.detach() is model
    model(stims).sum().backward()
    assert model.detach() is model
