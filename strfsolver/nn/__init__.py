"""The building blocks of the encoding models, below :py:mod:`strfsolver.models` and
:py:mod:`strfsolver.prefilters`.

- :py:mod:`strfsolver.nn.layers`: causal STRF convolutions, their kernels and a causal layer norm;
- :py:mod:`strfsolver.nn.decay`: causal leaky integration with a learnable time constant;
- :py:mod:`strfsolver.nn.local`: a 1-D layer with unshared weights;
- :py:mod:`strfsolver.nn.attention`: position codes and causal masks for attention models;
- :py:mod:`strfsolver.nn.activations`: parametric output nonlinearities;
- :py:mod:`strfsolver.nn.standardize`: per-band stimulus standardization.
"""

from strfsolver.nn import activations, attention, decay, layers, local, standardize

__all__ = ["activations", "attention", "decay", "layers", "local", "standardize"]
