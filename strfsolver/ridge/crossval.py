"""Fold statistics and held-out scores, from sufficient statistics only.

A fold's training and held-out parts are unions of groups (:class:`Sums`
adds them up, or subtracts the smaller side from the total). Within a part,
neurons recorded at identical bins form one signature and share one Gram.
Held-out scores need no predictions: for a neuron's held-out bins (``m`` of
them, feature mean ``mu_t``, Gram ``G_t``, cross-products ``B_t``) and weights
``w``, intercept ``b``::

    m var(pred)       = w^T (G_t - m mu_t mu_t^T) w
    m cov(pred, y)    = w^T (B_t - mu_t s_y^T)
    mean(pred)        = b + w^T mu_t

from which Pearson r and the mean squared error follow; folds are pooled
with the pairwise (Chan et al.) update of means and co-moments.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import torch
from torch import Tensor

from strfsolver.ridge.lagged import CHUNK_ELEMENTS, design_rows, pad_history
from strfsolver.ridge.statistics import RidgeStatistics
from strfsolver.utils.checks import short_repr

__all__: list = []  # helpers of strfsolver.ridge.solve, not part of the public API


class Sums:
    """Statistics summed over a set of groups, added up or subtracted from the total.

    Subtracting the held-out groups from the total keeps leave-one-stimulus-out
    at one subtraction per fold instead of S - 1 additions. It cancels digits:
    the error is about ``eps * ||G_total||``, harmless in float64 next to alphas
    of 1e-4 times the mean eigenvalue (keep the statistics in float64 then).
    Whichever side has fewer groups is the one summed.
    """

    def __init__(self, stats: RidgeStatistics):
        self.stats = stats
        self.codes = stats.class_codes()  # (n_groups, N)
        self._bin_totals = {}
        self._neuron_totals = None

    def _plan(self, groups):
        chosen = sorted(set(groups))
        n_groups = self.stats.n_groups
        if 2 * len(chosen) <= n_groups:
            return False, chosen
        return True, [g for g in range(n_groups) if g not in chosen]

    def neurons(self, groups):
        """``[cross (D, N), target_sum (N,), target_sq (N,), count (N,)]`` over ``groups``."""
        from_total, terms = self._plan(groups)
        if not from_total:
            return self._add_neurons(terms)
        if self._neuron_totals is None:
            self._neuron_totals = self._add_neurons(range(self.stats.n_groups))
        return self._add_neurons(terms, self._neuron_totals, -1)

    def _add_neurons(self, groups, start=None, sign=1):
        first = self.stats.groups[0]
        fields = lambda g: (g.cross, g.target_sum, g.target_sq, g.count)  # noqa: E731
        out = [t.clone() for t in start] if start is not None else [torch.zeros_like(t) for t in fields(first)]
        for gi in groups:
            for acc, t in zip(out, fields(self.stats.groups[gi])):
                acc.add_(t, alpha=sign)
        return out

    def bins(self, groups, neuron: int):
        """``(gram (D, D), total (D,), count)`` over the bins ``neuron`` has in ``groups``.

        Every neuron with the same classes in ``groups`` gets the same answer.
        ``(None, None, 0)`` when it has no bin there.
        """
        signature = tuple(self.codes[:, neuron].tolist())
        from_total, terms = self._plan(groups)
        if not from_total:
            return self._add_bins(terms, signature)
        if not terms:  # every group (the refit): the cached total itself, handed over without a copy
            cached = self._bin_totals.pop(signature, None)
            return cached if cached is not None else self._add_bins(range(self.stats.n_groups), signature)
        if signature not in self._bin_totals:
            self._bin_totals[signature] = self._add_bins(range(self.stats.n_groups), signature)
        return self._add_bins(terms, signature, self._bin_totals[signature], -1)

    def _add_bins(self, groups, signature, start=None, sign=1):
        gram, total, count = (None, None, 0)
        if start is not None and start[2] > 0:
            gram, total, count = start[0].clone(), start[1].clone(), start[2]
        for gi in groups:
            c = self.stats.groups[gi].bin_class(signature[gi])
            if c is None or c.count == 0:
                continue
            if gram is None:
                gram, total = sign * c.gram, sign * c.total  # new tensors: the groups' own stay untouched
            else:
                gram.add_(c.gram, alpha=sign)
                total.add_(c.total, alpha=sign)
            count += sign * c.count
        return (gram, total, count) if count > 0 else (None, None, 0)


@dataclass
class Part:
    """A union of groups: per-neuron sums and one bins-statistics entry per signature.

    ``classes`` holds ``(neurons (n,) long, gram, total, count)`` per distinct
    signature (neurons recorded at the same bins), ``count`` 0 for neurons with
    no bin in the part.
    """

    cross: Tensor
    target_sum: Tensor
    target_sq: Tensor
    count: Tensor
    classes: list


def gather(sums: Sums, groups) -> Part:
    """The :class:`Part` of a list of group indices (possibly empty: no data at all)."""
    groups = sorted(set(groups))
    cross, target_sum, target_sq, count = sums.neurons(groups)
    classes = []
    if groups:
        _, inverse = torch.unique(sums.codes[groups], dim=1, return_inverse=True)
        for j in range(int(inverse.max()) + 1):
            neurons = torch.nonzero(inverse == j).flatten()
            classes.append((neurons, *sums.bins(groups, int(neurons[0]))))
    else:
        classes.append((torch.arange(count.numel(), device=count.device), None, None, 0))
    return Part(cross, target_sum, target_sq, count, classes)


def centered(part: Part, neurons, gram, total, count, fit_intercept):
    """``(gram_c (D, D), cross_c (D, n), mu (D,) or None, ybar (n,))`` of one class of a part.

    The class's Gram is centered **in place** (no second Gram-sized tensor):
    every part's Grams are its own (:func:`gather` builds them fresh), and a
    part is centered once; gather the groups again for another use.
    """
    target_sum = part.target_sum[neurons]
    if not fit_intercept:
        return gram, part.cross[:, neurons], None, torch.zeros_like(target_sum)
    mu = total / count
    gram_c = gram.addr_(mu, mu, alpha=-count)
    cross_c = part.cross[:, neurons] - torch.outer(mu, target_sum)
    return gram_c, cross_c, mu, target_sum / count


def heldout_classes(part: Part):
    """``[(neurons, gram_c, cross_c, mu, count)]`` of the held-out part, centered on its own means."""
    out = []
    for neurons, gram, total, count in part.classes:
        if count > 0:
            gram_c, cross_c, mu, _ = centered(part, neurons, gram, total, count, True)
            out.append((neurons, gram_c, cross_c, mu, count))
    return out


def heldout_moments(test, part: Part, coef: Tensor, intercept: Tensor) -> Tensor:
    """``(6, N)``: held-out bin count, mean prediction, mean target, and ``m`` times
    var(pred), cov(pred, target), var(target). NaN where a neuron has no weights."""
    out = coef.new_full((6, coef.shape[1]), math.nan)
    out[0] = 0.0
    for neurons, gram_c, cross_c, mu, count in test:
        w = coef[:, neurons]
        target_sum = part.target_sum[neurons]
        out[0, neurons] = float(count)
        out[1, neurons] = intercept[neurons] + mu @ w
        out[2, neurons] = target_sum / count
        out[3, neurons] = (w * (gram_c @ w)).sum(0)
        out[4, neurons] = (w * cross_c).sum(0)
        out[5, neurons] = part.target_sq[neurons] - target_sum * target_sum / count
    return out


def score(moments: Tensor, scoring: str) -> Tensor:
    """Scores from ``(6, ...)`` moments: Pearson r (NaN with < 2 bins or a ~zero variance) or MSE."""
    m, mean_p, mean_y, cpp, cpy, cyy = moments
    if scoring == "mse":
        mse = (cpp - 2 * cpy + cyy) / m + (mean_p - mean_y) ** 2
        return torch.where(m > 0, mse, math.nan)
    tiny = 100 * torch.finfo(moments.dtype).eps  # a standard deviation that is rounding of the mean
    flat = lambda c, mean: (c <= 0) | (c <= m * (tiny * mean) ** 2)  # noqa: E731
    corr = cpy / torch.sqrt(cpp * cyy)
    return torch.where((m < 2) | flat(cpp, mean_p) | flat(cyy, mean_y), math.nan, corr)


def pool_moments(acc: Tensor, new: Tensor) -> Tensor:
    """Moments of two disjoint sets of bins taken together (pairwise update, no raw sums)."""
    valid = (new[0] > 0) & torch.isfinite(new).all(0)
    new = torch.where(valid, new, torch.zeros_like(new))
    n_a, n_b = acc[0], new[0]
    n = n_a + n_b
    frac = torch.where(n > 0, n_b / n.clamp(min=1), 0.0)
    weight = n_a * frac
    d_p, d_y = new[1] - acc[1], new[2] - acc[2]
    out = torch.stack([n, acc[1] + d_p * frac, acc[2] + d_y * frac, acc[3] + new[3] + d_p * d_p * weight, acc[4] + new[4] + d_p * d_y * weight, acc[5] + new[5] + d_y * d_y * weight])
    return torch.where(valid, out, acc)


def select_alpha(scores: Tensor, scoring: str) -> Tensor:
    """``(N,)`` index of each neuron's best alpha; ties and all-NaN go to the largest alpha."""
    key = scores if scoring == "corr" else -scores
    key = torch.nan_to_num(key, nan=-math.inf)
    return key.shape[0] - 1 - torch.argmax(key.flip(0), 0)


def make_folds(cv, n_groups: int):
    """The ``(train, test)`` group lists of ``cv``, or ``"gcv"``."""
    if isinstance(cv, str):
        if cv == "gcv":
            return "gcv"
        if cv != "loso":
            raise ValueError(f"cv must be an integer >= 2, 'loso', 'gcv' or an iterable of (train, test) stimulus indices; got {short_repr(cv)}")
        cv = n_groups
        if n_groups < 2:
            raise ValueError(f"cv='loso' needs at least 2 stimuli (groups); the statistics hold {n_groups}")
    if isinstance(cv, int) and not isinstance(cv, bool):
        if cv < 2:
            raise ValueError(f"cv must be >= 2 folds; got cv={cv}")
        if cv > n_groups:
            raise ValueError(f"cv={cv} folds but the statistics hold only {n_groups} stimuli (groups); a fold never splits a stimulus")
        sizes = [n_groups // cv + (1 if i < n_groups % cv else 0) for i in range(cv)]
        starts = [sum(sizes[:i]) for i in range(cv)]
        tests = [list(range(s, s + k)) for s, k in zip(starts, sizes)]
        return [([g for g in range(n_groups) if g not in test], test) for test in tests]
    try:  # operator.index: numpy integers from a scikit-learn splitter are fine, floats are not
        folds = [([operator.index(g) for g in train], [operator.index(g) for g in test]) for train, test in cv]
    except (TypeError, ValueError):
        raise ValueError(f"cv must be an integer >= 2, 'loso', 'gcv' or an iterable of (train, test) stimulus indices; got {short_repr(cv)}") from None
    if not folds:
        raise ValueError("cv is an empty iterable; expected at least one (train, test) pair")
    for i, (train, test) in enumerate(folds):
        bad = [g for g in train + test if not 0 <= g < n_groups]
        if bad or not test or set(train) & set(test):
            raise ValueError(
                f"cv fold {i} has train={train}, test={test}; expected a non-empty test set and disjoint integer "
                f"indices in [0, {n_groups})"
            )
    return folds


def loo_moments(stats: RidgeStatistics, part: Part, grid: Tensor, fit_intercept: bool) -> Tensor:
    """``(6, A, N)`` moments of exact leave-one-bin-out predictions (shifted by the training mean).

    With an intercept the hat matrix is ``11^T / n + Z_c (G_c + a I)^{-1} Z_c^T``
    (the unpenalised constant projected out), so ``h_ii = 1/n + |q_i|^2_a`` with
    ``q_i = V^T (z_i - mu)`` and the leave-one-out residual is ``e_i / (1 - h_ii)``:
    what refitting without bin i (and re-centering on the other bins) gives.
    Cost per signature: one eigh, ``T_total * D^2`` for the projections and
    ``T_total * D * N * A`` for the predictions, the design built in chunks.
    """
    n_alphas, n_lags = grid.numel(), stats.n_lags
    sums = grid.new_zeros(6, n_alphas, part.count.numel())  # m, sum p, sum y, sum p^2, sum p y, sum y^2
    for neurons, gram, total, count in part.classes:
        gram_c, cross_c, mu, ybar = centered(part, neurons, gram, total, count, fit_intercept)
        evals, evecs = torch.linalg.eigh(gram_c)
        inverse = 1.0 / (evals.unsqueeze(0) + grid.unsqueeze(1))  # (A, D)
        scaled = (evecs.T @ cross_c).unsqueeze(0) * inverse.unsqueeze(2)  # (A, D, n): weights in the eigenbasis
        step = max(1, min(CHUNK_ELEMENTS // gram.shape[0], CHUNK_ELEMENTS // (n_alphas * neurons.numel())))
        for x, y in stats.data:
            bins = torch.nonzero(~torch.isnan(y[int(neurons[0])])).flatten()  # one signature: the same bins for all
            padded = pad_history(x, n_lags)
            for start in range(0, bins.numel(), step):
                chunk = bins[start : start + step]
                rows = design_rows(padded, chunk, n_lags)
                q = (rows - mu if mu is not None else rows) @ evecs  # (c, D)
                lever = inverse @ (q * q).T + (1.0 / count if fit_intercept else 0.0)  # (A, c): h_ii
                fitted = torch.einsum("cd,adn->acn", q, scaled)
                target = y[neurons][:, chunk].T - ybar  # (c, n)
                keep = 1.0 - lever > 1e-12
                loo = target - (target - fitted) / torch.where(keep, 1.0 - lever, math.nan).unsqueeze(2)  # (A, c, n)
                sums[0, :, neurons] += chunk.numel()
                sums[1, :, neurons] += loo.sum(1)
                sums[2, :, neurons] += target.sum(0)
                sums[3, :, neurons] += (loo * loo).sum(1)
                sums[4, :, neurons] += (loo * target).sum(1)
                sums[5, :, neurons] += (target * target).sum(0)
    m, sp, sy, spp, spy, syy = sums
    return torch.stack([m, sp / m, sy / m, spp - sp * sp / m, spy - sp * sy / m, syy - sy * sy / m])
