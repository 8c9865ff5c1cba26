"""Encoding models, registered by name.

``strfsolver.models.init("linear", n_freqs=F, n_lags=L, n_neurons=N)``
"""

import sys

from strfsolver import registry
from strfsolver.models._registry import _registry_state, alias, get_aliases, get_options, init, parametrize, register  # noqa: F401

from strfsolver.nn import activations, layers  # noqa: E402  (strfsolver.models.layers / .activations before)
from strfsolver.models import readouts  # noqa: E402
from strfsolver.models.base import NeuralModel, from_pretrained  # noqa: E402
from strfsolver.nn.layers import (  # noqa: E402
    CausalLayerNorm,
    CausalSTRFConv,
    FullSTRF,
    LearnableExponentialDecay,
    LocallyConnected1d,
    ParametricSTRF,
    SeparableSTRF,
    SinusoidalPositionalEncoding,
    causal_strf_conv,
    causal_window_mask,
)
from strfsolver.models.readouts import LinearReadout, STRFReadout  # noqa: E402
from strfsolver.nn.activations import (  # noqa: E402
    DoubleExponential,
    ParametricSigmoid,
    ParametricSoftplus,
    make_activation,
)
from strfsolver.models.linear import LinearModel, LNModel, STRFModel  # noqa: E402
from strfsolver.models.nrf import NRFModel  # noqa: E402
from strfsolver.models.cnn import CNN2DModel  # noqa: E402
from strfsolver.models.statenet import StateNet  # noqa: E402
from strfsolver.models.transformer import TransformerModel  # noqa: E402
from strfsolver.models.interpret import gradient_strf  # noqa: E402
from strfsolver.models.plotting import plot_strfs  # noqa: E402

__all__ = [
    "NeuralModel",
    "from_pretrained",
    "layers",
    "readouts",
    "activations",
    "causal_strf_conv",
    "CausalSTRFConv",
    "FullSTRF",
    "SeparableSTRF",
    "ParametricSTRF",
    "CausalLayerNorm",
    "LearnableExponentialDecay",
    "LocallyConnected1d",
    "SinusoidalPositionalEncoding",
    "causal_window_mask",
    "STRFReadout",
    "LinearReadout",
    "ParametricSoftplus",
    "ParametricSigmoid",
    "DoubleExponential",
    "make_activation",
    "STRFModel",
    "LinearModel",
    "LNModel",
    "NRFModel",
    "CNN2DModel",
    "StateNet",
    "TransformerModel",
    "gradient_strf",
    "plot_strfs",
]

# deepSTRF's model zoo under its class names (same class, same options, the data sizes also under deepSTRF's
# keywords); what it has and we do not, said so
_DEEPSTRF_SIZES = {"n_frequency_bands": "n_freqs", "temporal_window_size": "n_lags", "out_neurons": "n_neurons"}
for _foreign, _name in (("Linear", "linear"), ("LinearNonlinear", "ln"), ("NetworkReceptiveField", "nrf"),
                        ("ConvNet2D", "cnn2d"), ("Transformer", "transformer"), ("StateNet", "statenet")):
    alias(_foreign, _name, source="deepSTRF", arguments=_DEEPSTRF_SIZES)
alias("DNet", None, source="deepSTRF", note="an NRF whose units decay with learned time constants; the nearest here is 'nrf' "
      "(or 'statenet' for a recurrent core).")
alias("ICNet", None, source="deepSTRF", note="an encoder-decoder of the waveform; strfsolver fits spectrograms: compute them first, "
      "then use 'cnn2d', 'statenet' or 'transformer'.")

registry.add_docstring(sys.modules[__name__])
