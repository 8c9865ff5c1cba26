"""Paired per-neuron statistics: is model A better than model B on the same neurons?

Two models scored on the same neurons give paired values; what matters is
the per-neuron difference. :py:func:`wilcoxon_signed_rank` tests whether
the differences are centred on zero (two-sided), :py:func:`bootstrap_median_ci`
gives a confidence interval of their median by resampling neurons, and
:py:func:`paired_comparison` puts both together with the win count.

The signed-rank test is written here rather than imported from SciPy (an
optional dependency): zero differences are dropped (Wilcoxon's convention,
SciPy's ``zero_method="wilcox"``); ties share their mean rank; the p-value
is exact for up to :py:data:`EXACT_MAX_N` non-zero differences (the null
distribution of the positive rank sum counted by dynamic programming over
the ranks actually observed, so it stays exact with ties) and from the
normal approximation with the tie-corrected variance above that.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional, Tuple

import numpy as np

from strfsolver.utils.checks import check_choice, check_count, check_real

__all__ = ["wilcoxon_signed_rank", "bootstrap_median_ci", "paired_comparison", "EXACT_MAX_N"]

#: up to this many non-zero differences the signed-rank p-value is computed exactly
EXACT_MAX_N = 50


def _as_vector(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one value per neuron (1-D), got shape {array.shape}.")
    return array


def _midranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``values``, ties given the mean of the ranks they span."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # first index of each run of equal values, and its length
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    lengths = np.diff(np.r_[starts, len(values)])
    run_ranks = starts + (lengths + 1) / 2.0
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(run_ranks, lengths)
    return ranks


def _exact_p(ranks: np.ndarray, r_plus: float) -> float:
    """Two-sided exact p-value of the positive rank sum ``r_plus`` under random signs.

    Ranks are integers or halves, so twice them are integers: count, for every
    total, the sign patterns reaching it (a subset-sum table over doubled ranks).
    """
    doubled = np.rint(2 * ranks).astype(np.int64)
    total = int(doubled.sum())
    counts = np.zeros(total + 1, dtype=np.float64)
    counts[0] = 1.0
    for weight in doubled:
        counts[weight:] = counts[weight:] + counts[: total + 1 - weight].copy()
    probabilities = counts / counts.sum()
    observed = int(round(2 * r_plus))
    lower = probabilities[: observed + 1].sum()
    upper = probabilities[observed:].sum()
    return float(min(1.0, 2.0 * min(lower, upper)))


def wilcoxon_signed_rank(differences: Any, method: str = "auto") -> Tuple[float, float]:
    """Two-sided Wilcoxon signed-rank test that the paired differences centre on zero.

    Args:
        differences: One difference per neuron (NaN entries are left out).
        method: ``"exact"``, ``"approx"`` (normal approximation, tie-corrected,
            no continuity correction) or ``"auto"``: exact for up to
            :py:data:`EXACT_MAX_N` non-zero differences.

    Returns:
        ``(statistic, p_value)``: the statistic is the smaller of the positive
        and negative rank sums (SciPy's); with no non-zero difference it is 0
        and the p-value 1.
    """
    check_choice(method, "method", ("auto", "exact", "approx"))
    values = _as_vector(differences, "differences")
    values = values[np.isfinite(values)]
    values = values[values != 0]
    n = len(values)
    if n == 0:
        return 0.0, 1.0
    ranks = _midranks(np.abs(values))
    r_plus = float(ranks[values > 0].sum())
    r_minus = float(ranks[values < 0].sum())
    statistic = min(r_plus, r_minus)
    if method == "exact" or (method == "auto" and n <= EXACT_MAX_N):
        return statistic, _exact_p(ranks, r_plus)
    mean = n * (n + 1) / 4.0
    _, tie_sizes = np.unique(ranks, return_counts=True)
    variance = n * (n + 1) * (2 * n + 1) / 24.0 - float(((tie_sizes**3) - tie_sizes).sum()) / 48.0
    if variance <= 0:
        return statistic, 1.0
    z = (statistic - mean) / math.sqrt(variance)
    return statistic, float(min(1.0, math.erfc(abs(z) / math.sqrt(2.0))))


def bootstrap_median_ci(
    differences: Any, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0
) -> Tuple[float, float]:
    """Percentile bootstrap interval of the median difference, resampling neurons.

    Args:
        differences: One difference per neuron (NaN entries are left out).
        n_boot: Resamples.
        confidence: Coverage of the interval, in (0, 1).
        seed: Seed of the resampling (the global random state is untouched).

    Returns:
        ``(low, high)``; NaN for no finite difference.
    """
    n_boot = check_count(n_boot, "n_boot", 1)
    confidence = check_real(confidence, "confidence", 0, 1, low_open=True, high_open=True)
    seed = check_count(seed, "seed", 0)
    values = _as_vector(differences, "differences")
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    draws = np.random.default_rng(seed).integers(0, len(values), size=(n_boot, len(values)))
    medians = np.median(values[draws], axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(medians, [tail, 100 - tail])
    return float(low), float(high)


def paired_comparison(
    a: Any, b: Any, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0, method: str = "auto"
) -> Dict[str, Optional[float]]:
    """Model A against model B on the same neurons: the ``pairs`` row of a comparison.

    Neurons where either score is NaN are left out (``n_neurons`` counts the rest).

    Args:
        a, b: Per-neuron scores of the two models (e.g. ``cc_norm``), same order.
        n_boot, confidence, seed: Of :py:func:`bootstrap_median_ci`.
        method: Of :py:func:`wilcoxon_signed_rank`.

    Returns:
        ``{"median_diff", "ci_low", "ci_high", "statistic", "p_value", "wins",
        "losses", "ties", "n_neurons"}``; ``median_diff`` is of ``a - b`` and
        ``wins`` counts the neurons where ``a`` scores higher.
    """
    a, b = _as_vector(a, "a"), _as_vector(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must score the same neurons, got {a.shape[0]} and {b.shape[0]} values.")
    both = np.isfinite(a) & np.isfinite(b)
    diff = a[both] - b[both]
    low, high = bootstrap_median_ci(diff, n_boot=n_boot, confidence=confidence, seed=seed)
    statistic, p_value = wilcoxon_signed_rank(diff, method=method)
    return {
        "median_diff": float(np.median(diff)) if len(diff) else float("nan"),
        "ci_low": low,
        "ci_high": high,
        "statistic": statistic,
        "p_value": p_value,
        "wins": int((diff > 0).sum()),
        "losses": int((diff < 0).sum()),
        "ties": int((diff == 0).sum()),
        "n_neurons": int(len(diff)),
    }
