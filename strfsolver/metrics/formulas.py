"""Metric values from per-neuron sufficient statistics, and the names of the metrics."""

from __future__ import annotations

import math

from typing import Dict, Iterable, List

import torch

from strfsolver.metrics.statistics import _PairMoments, _Stats

__all__ = ["METRICS", "available_metrics"]

METRICS: Dict[str, str] = {
    "cc": "Pearson correlation of prediction and PSTH over all valid (stimulus, bin) positions",
    "cc_norm": "normalized correlation, Schoppe et al. 2016: cov(pred, psth) / sqrt(var(pred) * signal power)",
    "cc_norm_hsu": "normalized correlation, Hsu et al. 2004: cc / CCmax from split-half repeats",
    "fve": "fraction of the PSTH variance explained: 1 - SS_res / SS_tot",
    "signal_power": "Sahani & Linden 2003 signal power, stimuli weighted by their valid bins",
    "noise_power": "total power minus signal power, same weighting",
    "snr": "signal power / noise power",
    "total_power": "mean over repeats of each repeat's variance over time, same weighting",
}

# A variance counts as ~0 when its standard deviation is below this many
# machine epsilons of the mean's magnitude: below that it is rounding noise
# of the mean, and a correlation computed from it would be meaningless.
_DEGENERATE_EPS = 100.0

Tensor = torch.Tensor


def available_metrics() -> List[str]:
    """Names that :class:`MetricAccumulator` accepts, in a stable order."""
    return list(METRICS)


def _not_degenerate(m2: Tensor, count: Tensor, mean: Tensor, eps: float) -> Tensor:
    var = m2 / (count - 1).clamp(min=1)
    return var > (_DEGENERATE_EPS * eps * mean.abs()) ** 2


def _nan_like(values: Tensor) -> Tensor:
    return torch.full_like(values, torch.nan)


def _correlation(m: _PairMoments, eps: float) -> Tensor:
    ok = (
        (m.count >= 2)
        & _not_degenerate(m.m2x, m.count, m.mean_x, eps)
        & _not_degenerate(m.m2y, m.count, m.mean_y, eps)
    )
    # separate square roots: the product of two tiny sums could underflow
    denom = torch.where(ok, m.m2x, 1.0).sqrt() * torch.where(ok, m.m2y, 1.0).sqrt()
    return torch.where(ok, m.cxy / denom, _nan_like(m.cxy))


def _schoppe(m: _PairMoments, signal: Tensor, eps: float) -> Tensor:
    ok = (m.count >= 2) & _not_degenerate(m.m2x, m.count, m.mean_x, eps) & (signal > 0)
    dof = (m.count - 1).clamp(min=1)
    cov = m.cxy / dof
    var_pred = torch.where(ok, m.m2x / dof, 1.0)
    return torch.where(ok, cov / (var_pred * torch.where(ok, signal, 1.0)).sqrt(), _nan_like(cov))


def _hsu(raw: Tensor, half: _PairMoments, eps: float) -> Tensor:
    cc_half = _correlation(half, eps)
    # a split-half correlation within rounding of zero (integer counts can make its covariance exactly 0)
    # leaves the ceiling undefined, as a negative one does: its sign and size are the summation order's,
    # and dividing by its root would give values like 1e7 that differ between batchings
    ok = cc_half > math.sqrt(eps)  # False for NaN too
    safe = torch.where(ok, cc_half, 1.0)
    ceiling = (2 * safe / (1 + safe)).sqrt()  # Spearman-Brown, halves -> all repeats
    return torch.where(ok, raw / ceiling, _nan_like(raw))


def _per_weight(weighted_sum: Tensor, weight: Tensor) -> Tensor:
    value = weighted_sum / weight.clamp(min=1)
    return torch.where(weight > 0, value, _nan_like(value))


def _ratio_snr(signal: Tensor, noise: Tensor) -> Tensor:
    ok = noise > 0
    return torch.where(ok, signal / torch.where(ok, noise, 1.0), _nan_like(signal))


def _fve(ss_res: Tensor, m: _PairMoments, eps: float) -> Tensor:
    ok = (m.count >= 2) & _not_degenerate(m.m2y, m.count, m.mean_y, eps)
    return torch.where(ok, 1 - ss_res / torch.where(ok, m.m2y, 1.0), _nan_like(ss_res))


# what each metric needs from _stats
_NEEDS = {
    "cc": {"pairs"},
    "cc_norm": {"pairs", "power"},
    "cc_norm_hsu": {"pairs", "halves", "repeats"},
    "fve": {"pairs", "residual"},
    "signal_power": {"power"},
    "noise_power": {"power"},
    "total_power": {"power"},
    "snr": {"power"},
}


def _needs(names: Iterable[str]) -> Dict[str, bool]:
    wanted = set().union(*(_NEEDS[name] for name in names))
    return {key: key in wanted for key in ("pairs", "residual", "power", "halves", "repeats")}


def _finalize(stats: _Stats, names: Iterable[str], eps: float) -> Dict[str, Tensor]:
    """Metric values (N,) from sufficient statistics."""
    out: Dict[str, Tensor] = {}
    raw = _correlation(stats.pairs, eps) if stats.pairs is not None else None
    signal = noise = None
    if stats.weight is not None:
        signal = _per_weight(stats.signal, stats.weight)
        noise = _per_weight(stats.noise, stats.weight)
    for name in names:
        if name == "cc":
            out[name] = raw
        elif name == "cc_norm":
            # without repeats there is no ceiling to correct for: raw cc
            out[name] = torch.where(stats.has_repeats, _schoppe(stats.pairs, signal, eps), raw)
        elif name == "cc_norm_hsu":
            out[name] = torch.where(stats.has_repeats, _hsu(raw, stats.halves, eps), raw)
        elif name == "fve":
            out[name] = _fve(stats.ss_res, stats.pairs, eps)
        elif name == "signal_power":
            out[name] = signal
        elif name == "noise_power":
            out[name] = noise
        elif name == "total_power":
            out[name] = _per_weight(stats.total, stats.weight)
        elif name == "snr":
            out[name] = _ratio_snr(signal, noise)
    return out


def _eps(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).eps
