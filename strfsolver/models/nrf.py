"""``"nrf"``: the network receptive field model (Harper et al. 2016, PLoS Comput. Biol.).

A hidden layer of ``n_hidden`` STRF units, each a causal STRF followed by a
nonlinearity (a sigmoid by default), shared by the population; then a
per-neuron readout, ``out[n] = act_n(sum_h w[n, h] hidden[h] + bias[n])``,
whose weights ``w[n]``, bias and activation belong to neuron n only.
"""

from __future__ import annotations

from typing import Optional, Union

from torch import Tensor, nn

from strfsolver.models._registry import register
from strfsolver.models.base import NeuralModel
from strfsolver.nn.layers import CausalSTRFConv
from strfsolver.models.readouts import LinearReadout
from strfsolver.utils.checks import short_repr

__all__ = ["NRFModel", "HIDDEN_ACTIVATIONS"]

#: nonlinearities of the hidden STRF units
HIDDEN_ACTIVATIONS = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "softplus": nn.Softplus, "tanh": nn.Tanh, "elu": nn.ELU}


@register("nrf")
class NRFModel(NeuralModel):
    """Network receptive field: hidden STRF units, then a per-neuron readout.

    Args:
        n_freqs: Bands ``F``.
        n_lags: Lags ``L`` of the hidden STRFs.
        n_neurons: Neurons ``N``.
        n_hidden: Hidden STRF units ``H``.
        n_channels: Stimulus channels ``C``.
        kernel: Kernel of the hidden STRFs (``"full"``, ``"separable"``, ``"gaussian"``).
        rank: Rank of a separable kernel.
        n_gaussians: Gaussians per unit of a Gaussian kernel.
        hidden_activation: One of :data:`HIDDEN_ACTIVATIONS`.
        activation: Per-neuron output activation (``"softplus"`` by default).
        non_negative: Keep a parametric output activation >= 0.
        prefiltering, prefiltering_options, dt_ms: See :py:class:`NeuralModel`.
    """

    # measured on stimuli of other families than the package's own (benchmarks/bench_defaults.py):
    # the hidden STRFs start random and move slowly at 3e-3; 1e-2 fits better in fewer epochs
    default_lr = 1e-2

    def __init__(
        self,
        n_freqs: int,
        n_lags: int,
        n_neurons: int,
        n_hidden: int = 8,
        n_channels: int = 1,
        kernel: Union[str, nn.Module] = "full",
        rank: int = 1,
        n_gaussians: int = 1,
        hidden_activation: str = "sigmoid",
        activation: Optional[Union[str, nn.Module]] = "softplus",
        non_negative: bool = True,
        prefiltering: Optional[Union[str, nn.Module]] = None,
        prefiltering_options: Optional[dict] = None,
        dt_ms: float = 5.0,
    ):
        super().__init__(n_freqs, n_lags, n_neurons, n_channels=n_channels, prefiltering=prefiltering,
                         prefiltering_options=prefiltering_options, dt_ms=dt_ms)
        if hidden_activation not in HIDDEN_ACTIVATIONS:
            raise ValueError(f"hidden_activation must be one of {sorted(HIDDEN_ACTIVATIONS)}, got {short_repr(hidden_activation)}.")
        if isinstance(n_hidden, bool) or not isinstance(n_hidden, int) or n_hidden < 1:
            raise ValueError(f"n_hidden must be an integer >= 1, got {short_repr(n_hidden)}.")
        self.n_hidden = n_hidden
        # hidden STRFs start larger than a readout's: a sigmoid needs a visible drive to learn from
        self.core = nn.Sequential(
            CausalSTRFConv(self.feature_freqs, self.n_lags, n_hidden, self.feature_channels, kernel=kernel, rank=rank,
                           n_gaussians=n_gaussians, init_std=1.0 / (self.feature_channels * self.feature_freqs * self.n_lags) ** 0.5),
            HIDDEN_ACTIVATIONS[hidden_activation](),
        )
        self.readout = LinearReadout(n_hidden, self.n_neurons, activation=activation, non_negative=non_negative)

    def hidden_strfs(self) -> Tensor:
        """``(H, C', F', L)`` STRFs of the hidden units."""
        return self.core[0].strf()
