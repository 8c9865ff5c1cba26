"""The STRF models "linear" and "ln": the STRF convention, bias, activation, kernels."""

import pytest
import torch

import strfsolver

F, L, N, T = 6, 4, 3, 25


def explicit_loop(strf, stim, bias):
    """drive[n, t] = bias[n] + sum_{c,f,l} strf[n,c,f,l] * stim[c,f,t-l] (zero before t = 0)."""
    n_neurons, n_channels, n_freqs, n_lags = strf.shape
    drive = torch.zeros(n_neurons, stim.shape[-1], dtype=torch.float64)
    for n in range(n_neurons):
        for t in range(stim.shape[-1]):
            total = float(bias[n])
            for c in range(n_channels):
                for f in range(n_freqs):
                    for lag in range(n_lags):
                        if t - lag >= 0:
                            total += float(strf[n, c, f, lag]) * float(stim[c, f, t - lag])
            drive[n, t] = total
    return drive


@pytest.mark.parametrize("n_channels", [1, 2])
def test_a_known_strf_reproduces_the_explicit_loop(n_channels):
    g = torch.Generator().manual_seed(0)
    known = torch.randn(N, n_channels, F, L, generator=g)
    bias = torch.randn(N, generator=g)
    model = strfsolver.models.init("linear", n_freqs=F, n_lags=L, n_neurons=N, n_channels=n_channels)
    with torch.no_grad():
        model.readout.kernel.weight.copy_(known)
        model.readout.bias.copy_(bias)
    assert torch.equal(model.strf(), known)
    stims = torch.randn(2, n_channels, F, T, generator=g)
    out = model(stims)
    for b in range(2):
        torch.testing.assert_close(out[b, :, 0].double(), explicit_loop(known, stims[b], bias), rtol=1e-5, atol=1e-5)


def test_linear_matches_the_synthetic_convention():
    pop = strfsolver.data.synthetic_population(n_neurons=3, n_stims=2, n_repeats=2, n_freqs=F, n_lags=L, n_times=30, seed=0)
    model = strfsolver.models.init("linear", n_freqs=F, n_lags=L, n_neurons=3)
    with torch.no_grad():
        model.readout.kernel.weight.copy_(pop.strfs)
        model.readout.bias.zero_()
    stim = pop.dataset.stims[0]
    torch.testing.assert_close(model(stim[None])[0, :, 0], pop.linear_drive(stim[None])[0].reshape(3, -1), rtol=1e-5, atol=1e-5)


def test_per_neuron_bias_and_ln_activation():
    model = strfsolver.models.init("linear", n_freqs=F, n_lags=L, n_neurons=N)
    assert model.bias.shape == (N,)
    with torch.no_grad():
        model.readout.kernel.weight.zero_()
        model.readout.bias.copy_(torch.tensor([-1.0, 0.0, 2.0]))
    out = model(torch.rand(1, F, T))
    assert torch.equal(out[0, :, 0], torch.tensor([-1.0, 0.0, 2.0])[:, None].expand(N, T))
    ln = strfsolver.models.init("ln", n_freqs=F, n_lags=L, n_neurons=N)
    with torch.no_grad():
        ln.readout.kernel.weight.copy_(torch.randn(N, 1, F, L) * 3)
    stims = torch.randn(2, F, T)
    out = ln(stims)
    assert (out >= 0).all()
    torch.testing.assert_close(out, torch.nn.functional.softplus(ln.drive(stims)))
    signed = strfsolver.models.init("ln", n_freqs=F, n_lags=L, n_neurons=N, activation="sigmoid", non_negative=False)
    assert signed.readout.activation.baseline is not None


@pytest.mark.parametrize("kernel, options", [("separable", {"rank": 2}), ("gaussian", {"n_gaussians": 2})])
def test_structured_kernels(kernel, options):
    model = strfsolver.models.init("linear", n_freqs=F, n_lags=L, n_neurons=N, kernel=kernel, **options)
    strf = model.strf()
    assert strf.shape == (N, 1, F, L)
    stims = torch.randn(2, F, T)
    torch.testing.assert_close(
        model(stims)[0, :, 0].double(), explicit_loop(strf.detach(), stims[0, None], model.bias.detach()), rtol=1e-4, atol=1e-5
    )
    if kernel == "separable":
        assert model.count_parameters() == N * 2 * (F + L) + N


def test_strf_with_a_prefilter_lives_in_the_prefiltered_space():
    model = strfsolver.models.init("linear", n_freqs=F, n_lags=L, n_neurons=N, prefiltering="adaptrans")
    assert model.strf().shape == (N, 2, F, L)
