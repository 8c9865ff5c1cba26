"""Auditory prefilters applied to spectrograms before a model's core, by name.

``strfsolver.prefilters.init("identity", n_freqs=32, dt_ms=5.0)``
"""

import sys

from strfsolver import registry
from strfsolver.prefilters._registry import _registry_state, alias, get_aliases, get_options, init, parametrize, register  # noqa: F401

from strfsolver.prefilters import scales  # noqa: E402
from strfsolver.prefilters.base import Prefilter  # noqa: E402
from strfsolver.prefilters.identity import IdentityPrefilter  # noqa: E402
from strfsolver.prefilters.adaptation import AdapTrans, ICAdaptation  # noqa: E402
from strfsolver.prefilters.scales import (  # noqa: E402
    center_frequencies,
    decay_to_tau,
    erb_bandwidth,
    erb_rate_to_hz,
    greenwood_to_hz,
    hz_to_erb_rate,
    hz_to_greenwood,
    hz_to_mel,
    mel_to_hz,
    tau_to_decay,
    willmore_time_constants,
)

__all__ = [
    "Prefilter",
    "IdentityPrefilter",
    "AdapTrans",
    "ICAdaptation",
    "scales",
    "center_frequencies",
    "hz_to_mel",
    "mel_to_hz",
    "hz_to_erb_rate",
    "erb_rate_to_hz",
    "erb_bandwidth",
    "hz_to_greenwood",
    "greenwood_to_hz",
    "willmore_time_constants",
    "tau_to_decay",
    "decay_to_tau",
]

# deepSTRF's prefilter classes and its front ends from the waveform (which strfsolver leaves to the data preparation)
# make_prefiltering's keywords, for the same options
_MAKE_PREFILTERING = {"n_frequency_bands": "n_freqs", "dt": "dt_ms", "min_freq": "f_min", "max_freq": "f_max"}
alias("AdapTrans", "adaptrans", source="deepSTRF", arguments={**_MAKE_PREFILTERING, "init_w": "w_init"})
alias("ICAdaptation", "icadaptation", source="deepSTRF", arguments=_MAKE_PREFILTERING)
for _foreign in ("CausalMelSpectrogram", "CausalGammatone", "Gammatonegram", "CausalLEAF", "SincNet"):
    alias(_foreign, None, source="deepSTRF", note="a waveform-to-spectrogram front end; strfsolver's prefilters act on "
          "spectrograms: compute the spectrogram first, then prefilter it ('adaptrans', 'icadaptation').")

registry.add_docstring(sys.modules[__name__])
