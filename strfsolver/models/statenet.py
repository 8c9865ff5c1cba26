"""``"statenet"``: a convolutional front end followed by a GRU or LSTM core.

The front end is a bank of ``front_channels`` causal STRFs over the
(prefiltered) stimulus; its outputs, one vector per time bin, feed a
recurrent network whose hidden state at bin t has seen bins <= t only; a
per-time-bin linear readout maps it to the neurons.

State between calls. With ``stateful=False`` (default) every call starts
from a zero state. With ``stateful=True`` the model keeps, between
consecutive calls, the recurrent state and the last ``n_lags - 1`` bins that
entered the front end, so feeding a long stimulus in consecutive chunks
gives the same output as feeding it at once (a prefilter, if any, restarts
at every call). The kept state carries its autograd history until
:py:meth:`StateNet.detach` cuts it: call it after each optimiser step for
truncated backpropagation through time. :py:meth:`StateNet.reset_state`
forgets the state (e.g. at a new stimulus).
"""

from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor, nn

from strfsolver.models._registry import register
from strfsolver.models.base import NeuralModel
from strfsolver.nn.layers import CausalSTRFConv
from strfsolver.models.readouts import LinearReadout
from strfsolver.utils.checks import short_repr

__all__ = ["StateNet"]

_RNNS = {"gru": nn.GRU, "lstm": nn.LSTM}


@register("statenet")
class StateNet(NeuralModel):
    """Convolutional front end + GRU/LSTM + linear readout.

    Args:
        n_freqs: Bands ``F``.
        n_lags: Lags ``L`` of the front end's STRFs.
        n_neurons: Neurons ``N``.
        n_channels: Stimulus channels ``C``.
        front_channels: Number of front-end STRFs.
        kernel: Kernel of the front-end STRFs (``"full"``, ``"separable"``, ``"gaussian"``).
        rnn: ``"gru"`` or ``"lstm"``.
        hidden_size: Recurrent state size.
        n_layers: Stacked recurrent layers.
        stateful: Keep the state between consecutive calls (see the module doc).
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
        front_channels: int = 16,
        kernel: Union[str, nn.Module] = "full",
        rnn: str = "gru",
        hidden_size: int = 32,
        n_layers: int = 1,
        stateful: bool = False,
        activation: Optional[Union[str, nn.Module]] = "softplus",
        non_negative: bool = True,
        prefiltering: Optional[Union[str, nn.Module]] = None,
        prefiltering_options: Optional[dict] = None,
        dt_ms: float = 5.0,
    ):
        super().__init__(n_freqs, n_lags, n_neurons, n_channels=n_channels, prefiltering=prefiltering,
                         prefiltering_options=prefiltering_options, dt_ms=dt_ms)
        if rnn not in _RNNS:
            raise ValueError(f"rnn must be one of {sorted(_RNNS)}, got {short_repr(rnn)}.")
        for value, name in ((front_channels, "front_channels"), (hidden_size, "hidden_size"), (n_layers, "n_layers")):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {short_repr(value)}.")
        self.rnn_type, self.stateful = rnn, bool(stateful)
        self.front = CausalSTRFConv(self.feature_freqs, self.n_lags, front_channels, self.feature_channels, kernel=kernel,
                                    init_std=1.0 / (self.feature_channels * self.feature_freqs * self.n_lags) ** 0.5)
        self.front_activation = nn.ELU()
        self.rnn = _RNNS[rnn](front_channels, hidden_size, n_layers, batch_first=True)
        self.readout = LinearReadout(hidden_size, self.n_neurons, activation=activation, non_negative=non_negative)
        self._state = None  # recurrent state kept between calls (stateful only)
        self._tail = None  # last n_lags - 1 front-end input bins (stateful only)

    def reset_state(self) -> "StateNet":
        """Forget the kept recurrent state and input history."""
        self._state, self._tail = None, None
        return self

    def detach(self) -> "StateNet":
        """Cut the autograd history of the kept state (truncated BPTT); values are kept."""
        if self._state is not None:
            self._state = tuple(s.detach() for s in self._state) if isinstance(self._state, tuple) else self._state.detach()
        if self._tail is not None:
            self._tail = self._tail.detach()
        return self

    def forward(self, stims: Tensor) -> Tensor:
        """``(B, F, T)`` or ``(B, C, F, T)`` -> ``(B, N, 1, T)``."""
        x = self.front_end(stims)
        state = None
        history = 0
        if self.stateful and self._tail is not None:
            if self._tail.shape[0] != x.shape[0]:
                raise ValueError(
                    f"a stateful StateNet kept a state for a batch of {self._tail.shape[0]} but got a batch of "
                    f"{x.shape[0]}; call model.reset_state() between unrelated batches."
                )
            history = self._tail.shape[-1]
            x = torch.cat([self._tail, x], dim=-1)
            state = self._state
        drive = self.front(x)[..., history:]  # (B, H, 1, T)
        features = self.front_activation(drive).squeeze(2).transpose(1, 2)  # (B, T, H)
        out, new_state = self.rnn(features, state)
        if self.stateful:
            self._state = new_state
            self._tail = x[..., max(x.shape[-1] - (self.n_lags - 1), 0):] if self.n_lags > 1 else x[..., :0]
        return self.readout(out.transpose(1, 2).unsqueeze(2))
