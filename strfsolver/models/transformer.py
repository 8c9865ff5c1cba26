"""``"transformer"``: causal (optionally windowed) self-attention over time bins.

A bank of ``d_model`` causal STRFs embeds each time bin of the (prefiltered)
stimulus; sinusoidal position codes are added; ``n_layers`` pre-norm
transformer encoder layers attend over time with the mask
:py:func:`~strfsolver.nn.layers.causal_window_mask`: bin t attends bins
``t - window + 1 .. t`` (all past bins with ``window=None``); a per-bin linear
readout maps to the neurons. Output bin t therefore depends on stimulus bins
``t - (window - 1) * n_layers - n_lags + 1 .. t`` only.
"""

from __future__ import annotations

from typing import Optional, Union

from torch import Tensor, nn

from strfsolver.models._registry import register
from strfsolver.models.base import NeuralModel
from strfsolver.nn.attention import SinusoidalPositionalEncoding, causal_window_mask
from strfsolver.nn.layers import CausalSTRFConv
from strfsolver.models.readouts import LinearReadout
from strfsolver.utils.checks import short_repr

__all__ = ["TransformerModel"]


@register("transformer")
class TransformerModel(NeuralModel):
    """STRF embedding + causal transformer encoder + linear readout.

    Args:
        n_freqs: Bands ``F``.
        n_lags: Lags ``L`` of the embedding STRFs.
        n_neurons: Neurons ``N``.
        n_channels: Stimulus channels ``C``.
        d_model: Embedding size (number of embedding STRFs).
        n_heads: Attention heads (must divide ``d_model``).
        n_layers: Encoder layers.
        dim_feedforward: Hidden size of each layer's feed-forward block.
        window: Bins each query attends to (itself included), ``None`` for the whole past.
        dropout: Dropout inside the encoder layers.
        kernel: Kernel of the embedding STRFs.
        activation: Per-neuron output activation (``"softplus"`` by default).
        non_negative: Keep a parametric output activation >= 0.
        prefiltering, prefiltering_options, dt_ms: See :py:class:`NeuralModel`.
    """

    def __init__(
        self,
        n_freqs: int,
        n_lags: int,
        n_neurons: int,
        n_channels: int = 1,
        d_model: int = 32,
        n_heads: int = 4,
        n_layers: int = 2,
        dim_feedforward: int = 64,
        window: Optional[int] = None,
        dropout: float = 0.0,
        kernel: Union[str, nn.Module] = "full",
        activation: Optional[Union[str, nn.Module]] = "softplus",
        non_negative: bool = True,
        prefiltering: Optional[Union[str, nn.Module]] = None,
        prefiltering_options: Optional[dict] = None,
        dt_ms: float = 5.0,
    ):
        super().__init__(n_freqs, n_lags, n_neurons, n_channels=n_channels, prefiltering=prefiltering,
                         prefiltering_options=prefiltering_options, dt_ms=dt_ms)
        for value, name in ((d_model, "d_model"), (n_heads, "n_heads"), (n_layers, "n_layers"), (dim_feedforward, "dim_feedforward")):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {short_repr(value)}.")
        if d_model % n_heads:
            raise ValueError(f"n_heads must divide d_model, got d_model={d_model}, n_heads={n_heads}.")
        if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
            raise ValueError(f"window must be None or an integer >= 1, got {short_repr(window)}.")
        self.window = window
        self.front = CausalSTRFConv(self.feature_freqs, self.n_lags, d_model, self.feature_channels, kernel=kernel,
                                    init_std=1.0 / (self.feature_channels * self.feature_freqs * self.n_lags) ** 0.5)
        self.positional = SinusoidalPositionalEncoding(d_model)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, dim_feedforward, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.readout = LinearReadout(d_model, self.n_neurons, activation=activation, non_negative=non_negative)

    def forward(self, stims: Tensor) -> Tensor:
        """``(B, F, T)`` or ``(B, C, F, T)`` -> ``(B, N, 1, T)``."""
        x = self.front_end(stims)
        tokens = self.positional(self.front(x).squeeze(2).transpose(1, 2))  # (B, T, d_model)
        mask = causal_window_mask(tokens.shape[1], self.window, device=tokens.device)
        encoded = self.encoder(tokens, mask=mask)
        return self.readout(encoded.transpose(1, 2).unsqueeze(2))
