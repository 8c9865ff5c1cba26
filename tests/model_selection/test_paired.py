"""Paired per-neuron statistics against SciPy (where installed) and a brute-force enumeration."""

import itertools

import numpy as np
import pytest

from strfsolver.model_selection import bootstrap_median_ci, paired_comparison, wilcoxon_signed_rank


def brute_force_p(differences):
    """Two-sided p of the positive rank sum over all 2^n sign patterns (midranks for ties)."""
    from scipy.stats import rankdata

    d = np.asarray(differences, dtype=float)
    d = d[d != 0]
    ranks = rankdata(np.abs(d))
    observed = ranks[d > 0].sum()
    sums = np.array([sum(r for r, s in zip(ranks, signs) if s) for signs in itertools.product([0, 1], repeat=len(d))])
    return min(1.0, 2 * min((sums <= observed + 1e-9).mean(), (sums >= observed - 1e-9).mean()))


@pytest.mark.parametrize("n", [4, 9, 15])
def test_exact_p_equals_scipy_without_ties(n):
    stats = pytest.importorskip("scipy.stats")
    d = np.random.default_rng(n).normal(0.3, 1.0, n)
    statistic, p = wilcoxon_signed_rank(d)
    reference = stats.wilcoxon(d, method="exact")
    assert statistic == pytest.approx(reference.statistic)
    assert p == pytest.approx(reference.pvalue, rel=1e-12)


def test_exact_p_with_ties_and_zeros_equals_enumeration():
    pytest.importorskip("scipy")
    d = np.array([0.5, -0.5, 1.0, 1.0, 0.0, 2.0, -1.0, 0.5, 3.0, 0.0, 1.5])
    statistic, p = wilcoxon_signed_rank(d, method="exact")
    assert p == pytest.approx(brute_force_p(d), rel=1e-12)
    # ranks of |d| without the zeros: 0.5 x3 -> 2, 1.0 x3 -> 5, 1.5 -> 7, 2.0 -> 8, 3.0 -> 9
    assert statistic == pytest.approx(2 + 5)


def test_normal_approximation_with_ties_equals_scipy():
    stats = pytest.importorskip("scipy.stats")
    d = np.round(np.random.default_rng(0).normal(0.2, 1.0, 120), 1)
    assert (d == 0).any() and len(np.unique(np.abs(d))) < len(d)  # zeros and ties present
    statistic, p = wilcoxon_signed_rank(d, method="approx")
    reference = stats.wilcoxon(d, method="approx")
    assert statistic == pytest.approx(reference.statistic)
    assert p == pytest.approx(reference.pvalue, rel=1e-9)
    assert wilcoxon_signed_rank(d)[1] == p  # 100+ differences: auto takes the approximation


def test_known_exact_values_without_scipy():
    # all 5 differences positive: only 1 of 32 sign patterns is as extreme on each side
    assert wilcoxon_signed_rank([1, 2, 3, 4, 5]) == (0.0, pytest.approx(2 / 32))
    assert wilcoxon_signed_rank([0, 0, 0]) == (0.0, 1.0)


def test_a_model_against_itself_has_zero_difference_and_p_one():
    scores = np.random.default_rng(1).uniform(0, 1, 30)
    row = paired_comparison(scores, scores)
    assert row["median_diff"] == 0 and row["p_value"] == 1.0
    assert row["wins"] == 0 and row["ties"] == 30 and row["ci_low"] == 0 and row["ci_high"] == 0


def test_paired_comparison_counts_wins_skips_nan_and_brackets_the_median():
    rng = np.random.default_rng(2)
    b = rng.uniform(0, 1, 40)
    a = b + 0.1 + 0.05 * rng.standard_normal(40)
    a[3] = np.nan
    row = paired_comparison(a, b, n_boot=500, seed=0)
    diff = (a - b)[np.isfinite(a)]
    assert row["n_neurons"] == 39 and row["wins"] == int((diff > 0).sum())
    assert row["median_diff"] == pytest.approx(np.median(diff))
    assert row["ci_low"] < row["median_diff"] < row["ci_high"]
    assert row["p_value"] < 1e-6
    assert bootstrap_median_ci(diff, n_boot=500, seed=0) == (row["ci_low"], row["ci_high"])


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="method must be one of"):
        wilcoxon_signed_rank([1.0], method="fast")
    with pytest.raises(ValueError, match="same neurons"):
        paired_comparison([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="confidence must be"):
        bootstrap_median_ci([1.0], confidence=95)
