"""Encoding models, registered by name.

``strfsolver.models.init("linear", n_freqs=F, n_lags=L, n_neurons=N)``
"""

import sys

from strfsolver import registry

registry.add_helper_functions(sys.modules[__name__])

from strfsolver.models import activations, layers, readouts  # noqa: E402
from strfsolver.models.base import NeuralModel, from_pretrained  # noqa: E402
from strfsolver.models.layers import (  # noqa: E402
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
from strfsolver.models.activations import (  # noqa: E402
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

registry.add_docstring(sys.modules[__name__])
