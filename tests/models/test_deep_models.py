"""nrf, cnn2d and transformer specifics."""

import pytest
import torch

from strfsolver.nn.layers import CausalLayerNorm


def test_nrf_hidden_units_and_readout(build, stims, sizes):
    model = build("nrf", n_hidden=5)
    assert model.hidden_strfs().shape == (5, 1, sizes["F"], sizes["L"])
    hidden = model.core(stims.unsqueeze(1))
    assert hidden.shape == (2, 5, 1, sizes["T"]) and ((hidden > 0) & (hidden < 1)).all()  # sigmoid units
    assert model.readout.projection.weight.shape == (sizes["N"], 5)
    with pytest.raises(ValueError, match="hidden_activation"):
        build("nrf", hidden_activation="swish")


def test_cnn2d_layers_and_receptive_field(build, sizes):
    model = build("cnn2d", channels=(3, 4, 2), time_kernel=2, layer_norm=True)
    convs = [m for m in model.core if hasattr(m, "conv")]
    assert [c.conv.out_channels for c in convs] == [3, 4, 2]
    assert [c.conv.kernel_size[1] for c in convs] == [sizes["L"], 2, 2]
    assert sum(isinstance(m, CausalLayerNorm) for m in model.core) == 3
    # an impulse at t0 reaches the output from t0 to t0 + (L - 1) + 2 * (2 - 1) only
    model.eval()
    stim = torch.zeros(1, sizes["F"], 40)
    base = model(stim)
    stim[0, 3, 10] = 5.0
    changed = (model(stim) - base).abs()[0, :, 0].amax(0) > 0
    assert changed.nonzero().flatten().tolist() == list(range(10, 10 + sizes["L"] + 2))
    with pytest.raises(ValueError, match="channels"):
        build("cnn2d", channels=())


def test_transformer_window_limits_the_memory(build, sizes):
    window, n_layers, n_lags = 4, 2, sizes["L"]
    model = build("transformer", window=window, n_layers=n_layers).eval()
    stim = torch.rand(1, sizes["F"], 60)
    changed = stim.clone()
    changed[..., 10] += 3.0
    with torch.no_grad():
        diff = (model(changed) - model(stim)).abs()[0, :, 0].amax(0)
    reach = (window - 1) * n_layers + n_lags - 1  # last bin that can still see bin 10
    assert (diff[: 10] == 0).all()
    assert (diff[10 + reach + 1 :] == 0).all()
    assert diff[10 : 10 + reach + 1].max() > 0
    # with the whole past, the change is seen to the end
    unlimited = build("transformer", n_layers=n_layers).eval()
    with torch.no_grad():
        diff = (unlimited(changed) - unlimited(stim)).abs()[0, :, 0].amax(0)
    assert diff[-1] > 0
    with pytest.raises(ValueError, match="divide"):
        build("transformer", d_model=10, n_heads=3)
