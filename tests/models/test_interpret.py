"""gradient_strf and plot_strfs."""

import builtins

import pytest
import torch

from strfsolver.models import gradient_strf, plot_strfs


def test_gradient_strf_of_the_linear_model_is_its_strf(build, stims, sizes):
    model = build("linear", n_channels=2)
    with torch.no_grad():
        model.readout.kernel.weight.normal_()
        model.readout.bias.fill_(0.7)
    two_channel = torch.rand(3, 2, sizes["F"], 30)
    effective = gradient_strf(model, two_channel)
    assert effective.shape == (sizes["N"], 2, sizes["F"], sizes["L"])
    torch.testing.assert_close(effective, model.strf().detach(), rtol=1e-5, atol=1e-6)
    # more lags than the model has: the extra lags are exactly zero
    longer = gradient_strf(model, [two_channel[0], two_channel[1, :, :, :12]], n_lags=sizes["L"] + 3)
    assert torch.equal(longer[..., sizes["L"]:], torch.zeros_like(longer[..., sizes["L"]:]))
    torch.testing.assert_close(longer[..., : sizes["L"]], model.strf().detach(), rtol=1e-5, atol=1e-6)


def test_gradient_strf_of_ln_weights_the_strf_by_the_local_slope(build, stims):
    model = build("ln")
    effective = gradient_strf(model, stims, max_times=10)
    # d softplus(drive)/d stim = sigmoid(drive) * strf: same sign, smaller magnitude
    strf = model.strf().detach()
    ratio = effective / strf
    assert ((ratio > 0) & (ratio < 1)).all()


@pytest.mark.parametrize("name", ["nrf", "cnn2d", "statenet", "transformer"])
def test_gradient_strf_of_deep_models(name, build, stims, sizes):
    model = build(name)
    model.train()
    effective = gradient_strf(model, stims, max_times=8, chunk_elements=4000)
    assert effective.shape == (sizes["N"], 1, sizes["F"], sizes["L"])
    assert torch.isfinite(effective).all() and effective.abs().sum() > 0
    assert model.training  # the mode is restored
    assert all(p.grad is None for p in model.parameters())  # no gradient left on the parameters


def test_gradient_strf_needs_long_enough_stimuli(build, sizes):
    with pytest.raises(ValueError, match="n_lags = 5"):
        gradient_strf(build("linear"), torch.rand(1, sizes["F"], 3))


def test_plot_strfs_draws_one_panel_per_neuron(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    strfs = torch.randn(5, 2, 8, 6)
    fig = plot_strfs(strfs, n_cols=3, dt_ms=5.0, freqs_hz=[500 * 2 ** (i / 2) for i in range(8)])
    # five panels with an image each, one hidden empty slot, and the shared colour bar
    visible = [ax for ax in fig.axes if ax.get_visible() and ax.images]
    assert len(visible) == 5 and len(fig.axes) == 7
    assert [ax.get_ylabel() for ax in fig.axes if ax.get_visible() and not ax.images] == ["weight"]
    image = visible[0].images[0].get_array()
    assert image.shape == (8, 2 * 6 + 1)  # channels side by side with a blank column
    assert visible[1].get_title() == "neuron 1"
    plt.close(fig)
    with pytest.raises(ValueError, match=r"\(N, C, F, L\)"):
        plot_strfs(torch.randn(8, 6))


def test_plot_strfs_without_matplotlib_says_how_to_install(monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(ImportError, match=r"pip install strfsolver\[plot\]"):
        plot_strfs(torch.randn(2, 1, 4, 3))
