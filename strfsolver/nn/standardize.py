"""Per-band stimulus standardization, the first stage of every :py:class:`~strfsolver.models.NeuralModel`.

Raw spectrograms come in any unit: dB, power in the thousands, magnitudes of
0-27. A learning rate, a kernel initialisation and a ridge penalty that are
right for one are wrong for another. Every model therefore starts with a
:py:class:`StimulusStandardizer`: ``(x - mean) / scale`` per channel and
band, with the statistics of the *training* stimuli (docs/conventions.md §7),
set by the solver when a fit starts (``Solver.standardize``, on by default)
and kept in the model's buffers, so ``transform``, checkpoints and
``save_pretrained`` / ``from_pretrained`` apply the same. Until it is fitted
the standardizer is the identity (mean 0, scale 1), exactly.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional, Tuple

import torch
from torch import Tensor, nn

from strfsolver.data.collate import check_batch

__all__ = ["StimulusStandardizer", "stimulus_statistics", "band_scales", "CONSTANT_TOLERANCE", "MIN_RELATIVE_SCALE", "set_standardization", "is_standardized"]


class StimulusStandardizer(nn.Module):
    """``(x - mean[c, f]) / scale[c, f]`` for ``(B, C, F, T)`` stimuli.

    Args:
        n_channels: Channels ``C``.
        n_freqs: Bands ``F``.

    Buffers: ``mean`` and ``scale`` ``(C, F)``, ``fitted`` (a bool scalar).
    Loading a state without them (a model saved before standardization
    existed) keeps the identity.
    """

    def __init__(self, n_channels: int, n_freqs: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_channels, n_freqs))
        self.register_buffer("scale", torch.ones(n_channels, n_freqs))
        self.register_buffer("fitted", torch.tensor(False))

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, F, T)`` -> ``(B, C, F, T)``."""
        # no branch on `fitted`: the identity statistics give x exactly, and the
        # per-neuron stack runs this under vmap, where a data-dependent branch cannot
        return (x - self.mean.unsqueeze(-1).to(x.dtype)) / self.scale.unsqueeze(-1).to(x.dtype)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        absent = [name for name in ("mean", "scale", "fitted") if prefix + name not in state_dict]
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
        if len(absent) == 3:  # a state from before standardization: stay the identity
            for name in absent:
                if prefix + name in missing_keys:
                    missing_keys.remove(prefix + name)

    def extra_repr(self) -> str:
        return f"n_channels={self.mean.shape[0]}, n_freqs={self.mean.shape[1]}, fitted={bool(self.fitted.all())}"


#: A band is constant when its standard deviation is at most this fraction of its own mean
#: magnitude AND of the typical band's standard deviation (float32 resolves ~1.2e-7 of a value:
#: below that a band's variation is rounding noise of its level, and negligible next to the others).
CONSTANT_TOLERANCE = 1e-6
#: The smallest scale a band gets, relative to the typical (median) band's standard deviation: a
#: band that barely varies in training is amplified at most 1/MIN_RELATIVE_SCALE times more
#: than a typical band, so it cannot dominate predictions on stimuli where it does vary.
MIN_RELATIVE_SCALE = 1e-3


@torch.no_grad()
def stimulus_statistics(stims: Iterable[Tensor]) -> Tuple[Tensor, Tensor]:
    """Per channel and band mean and scale over every bin of every stimulus (float64).

    The result depends on the stimuli's shape, not their unit: multiplying every
    stimulus by any positive factor multiplies ``mean`` and ``scale`` by it, so
    the standardized stimuli are the same in W/m^2, in Pa^2 or in dB.

    * A band's scale is its standard deviation (two passes, shifted by its
      first value, so an exactly constant band has exactly 0).
    * The typical scale is the median standard deviation of the bands that
      vary beyond :data:`CONSTANT_TOLERANCE` of their own mean (of every band
      when none does, e.g. a small signal on a large offset).
    * A band is constant when its standard deviation is at most
      :data:`CONSTANT_TOLERANCE` of its own mean magnitude and of the typical
      scale (an all-zero band too); it gets the typical scale, and so maps to
      0 on the training stimuli, never NaN.
    * Every other band's scale is at least :data:`MIN_RELATIVE_SCALE` times
      the typical scale, so a band with a tiny training variance gets a
      bounded gain.

    Args:
        stims: ``(F, T_i)`` or ``(C, F, T_i)`` stimuli.

    Returns:
        ``(mean, scale)``, each ``(C, F)``, ``scale > 0``.

    Raises:
        ValueError: without any stimulus, or for non-finite values.
    """
    stims = list(stims)  # two passes; each stimulus is converted to float64 one at a time

    def as_3d(i: int) -> Tensor:
        x = torch.as_tensor(stims[i]).double()
        return x.unsqueeze(0) if x.dim() == 2 else x

    shift = offset = None
    count = 0
    for i in range(len(stims)):
        x = as_3d(i)
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"training stimulus {i} has non-finite values; cannot standardize it.")
        if not x.shape[-1]:
            continue
        shift = x[..., 0].clone() if shift is None else shift
        s = (x - shift.unsqueeze(-1)).sum(-1)
        offset = s if offset is None else offset + s
        count += x.shape[-1]
    if count < 2:
        raise ValueError("standardizing the stimuli needs at least 2 training bins.")
    mean = shift + offset / count
    square = sum((as_3d(i) - mean.unsqueeze(-1)).square().sum(-1) for i in range(len(stims)))
    sd = (square / (count - 1)).sqrt()
    return mean, band_scales(mean, sd)


def band_scales(mean: Tensor, sd: Tensor) -> Tensor:
    """The standardizer's ``(C, F)`` scales from the bands' means and standard deviations
    (the rule of :func:`stimulus_statistics`: constant bands get the typical scale, the
    others at least :data:`MIN_RELATIVE_SCALE` of it; invariant to a global rescaling)."""
    varies = sd > CONSTANT_TOLERANCE * mean.abs()
    pool = sd[varies] if bool(varies.any()) else sd.flatten()
    typical = pool.median() if pool.numel() else sd.new_tensor(0.0)
    if not bool(typical > 0):  # every band constant: any positive unit of the data will do
        level = mean.abs().max() if mean.numel() else mean.new_tensor(0.0)
        return torch.full_like(sd, float(level) if float(level) > 0 else 1.0)
    constant = ~varies & (sd <= CONSTANT_TOLERANCE * typical)
    return torch.where(constant, typical, sd.clamp(min=float(MIN_RELATIVE_SCALE * typical)))


def _standardizer_entries(model: nn.Module):
    state = model.state_dict(keep_vars=True)
    prefixes = sorted({name[: -len("mean")] for name in state if name.endswith("standardize.mean")})
    return state, prefixes


def is_standardized(model: nn.Module) -> Optional[bool]:
    """Whether the model's standardizer is fitted (``None``: the model has none)."""
    state, prefixes = _standardizer_entries(model)
    if not prefixes:
        return None
    return all(bool(state[p + "fitted"].all()) for p in prefixes)


@torch.no_grad()
def set_standardization(model: nn.Module, mean: Tensor, scale: Tensor) -> bool:
    """Write ``(C, F)`` statistics into every standardizer of ``model`` (a stack's copies too).

    Returns:
        Whether the model has a standardizer at all.

    Raises:
        ValueError: if the statistics' shape is not the standardizer's.
    """
    state, prefixes = _standardizer_entries(model)
    for prefix in prefixes:
        target = state[prefix + "mean"]
        if tuple(target.shape[-2:]) != tuple(mean.shape):
            raise ValueError(f"the stimuli have (channels, bands) {tuple(mean.shape)}; the model expects {tuple(target.shape[-2:])}.")
        target.copy_(mean.to(target).expand_as(target))
        state[prefix + "scale"].copy_(scale.to(target).expand_as(target))
        state[prefix + "fitted"].fill_(True)
    return bool(prefixes)


def loader_stimuli(loader: Any) -> Iterable[Tensor]:
    """The stimuli of a training loader: its dataset's (exact), else each batch's stimuli up to
    the last bin where any neuron was recorded (the rest is padding)."""
    dataset = getattr(loader, "dataset", None)
    stims = getattr(dataset, "stims", None)
    if stims is not None:
        return list(stims)
    out = []
    for batch in loader:
        recorded = ~check_batch(batch)["responses"].isnan().all(dim=2).all(dim=1)  # (B, T)
        for b in range(recorded.shape[0]):
            bins = recorded[b].nonzero()
            if bins.numel():
                out.append(batch["stims"][b, ..., : int(bins[-1]) + 1])
    return out
