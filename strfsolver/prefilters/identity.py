"""``"identity"``: no prefiltering (the stimulus passes unchanged)."""

from __future__ import annotations

from torch import Tensor

from strfsolver.prefilters._registry import register
from strfsolver.prefilters.base import Prefilter

__all__ = ["IdentityPrefilter"]


@register("identity")
class IdentityPrefilter(Prefilter):
    """Returns its ``(B, C, F, T)`` input unchanged (after checking its shape).

    Args:
        n_freqs: Bands ``F``.
        dt_ms: Bin width in ms (unused, accepted for a uniform interface).
        n_channels: Channels ``C``.
    """

    depends_on_bin_width = False  # it does nothing, at any bin width

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, F, T)`` -> the same tensor."""
        self._check(x)
        return x
