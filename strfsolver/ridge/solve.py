"""Ridge (or smoothness-penalised) STRFs for every neuron, alpha chosen per neuron.

:func:`fit_ridge` works from a :class:`~strfsolver.ridge.statistics.RidgeStatistics`
only. With an intercept, features and targets are centered with the training
part's means over the bins each neuron is recorded at (``G_c = G - n mu mu^T``,
``B_c = B - mu s_y^T``), so the bias is not penalised; the intercept is then
``ybar - w^T mu``. Neurons recorded at identical bins share every
factorization: at most one per distinct recorded-bins signature per fold, and
one signature for complete data.

The alpha search factors and solves in float32 by default (``search_dtype``):
a Cholesky takes about 40 % of its float64 time, and the search only
*chooses* each neuron's alpha; the held-out scores are computed in float64
from those weights, and the chosen alphas are refitted in the statistics'
dtype (float64), so the weights are exact for the alpha chosen. An alpha
whose system may be too ill-conditioned for float32
(:data:`SEARCH_CONDITION_LIMIT`), or whose float32 factor fails, is solved
in float64 instead. Only the Cholesky search with the ridge penalty uses
float32: the Laplacian penalty, ``method="eigh"`` (``"auto"`` above
:data:`CHOLESKY_MAX_ALPHAS` alphas) and ``cv="gcv"`` stay in float64.
Measured on ``benchmarks/bench_ridge.py``'s data (D = 3840, 39k bins,
N = 500): mean cross-validated scores within 3.6e-6 of the float64 search,
the same alpha for all 500 neurons (benchmarks/README.md).

Held-out scores come from the held-out statistics, never from predictions:
with ``mu_t``, ``G_t``, ``B_t`` of a neuron's held-out bins (``m`` of them),
``cov = w^T (B_t - mu_t s_y^T)``, ``var_pred = w^T (G_t - m mu_t mu_t^T) w``
(both times m) and the mean prediction ``b + w^T mu_t``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from strfsolver.ridge import crossval
from strfsolver.ridge.statistics import RidgeStatistics
from strfsolver.utils.checks import short_repr

__all__ = ["fit_ridge", "RidgeFit", "DEFAULT_RELATIVE_ALPHAS", "CHOLESKY_MAX_ALPHAS", "SEARCH_CONDITION_LIMIT", "laplacian_penalty"]

#: default grid, relative to the reference scale (mean eigenvalue of the
#: centered Gram): two values per decade from 1e-4 (next to least squares for
#: all but the weakest directions of spectrogram-like features) to 1e3 (the
#: fit is then proportional to the cross-correlation B_c, where "corr" stops
#: changing). Half decades, because one decade is too coarse: on synthetic
#: linear neurons the step from 1e-3 to 1e-2 moved the recovered STRF's
#: correlation with the truth from 0.87 to 0.98; fifteen values keep the
#: search in the one-Cholesky-per-alpha regime
DEFAULT_RELATIVE_ALPHAS = tuple(10.0 ** (k / 2) for k in range(-8, 7))
#: with ``method="auto"``, a factorization serving at most this many alphas is
#: a Cholesky per alpha, otherwise one eigh. At D = 3840 one eigh costs 17
#: Choleskys on a quiet 2-core CPU and 50-120 on a busy one
#: (benchmarks/bench_ridge_core.py): 16 takes the eigh only where it surely pays
CHOLESKY_MAX_ALPHAS = 16
#: an alpha whose system ``G + a I`` may have a condition number above this
#: (bounded by ``(||G||_1 + a) / a``) is searched in float64, not float32.
#: float32 keeps about 7 digits; the held-out scores lose far fewer than the
#: weights (the error lies along the Gram's weakest directions, which the
#: predictions barely use): at a condition of 7.5e5 (the benchmark's smallest
#: default alpha) the mean cross-validated scores moved by 3.6e-6
SEARCH_CONDITION_LIMIT = 1e6
#: dtypes of the alpha search (``search_dtype``)
SEARCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}
SCORINGS = ("corr", "mse")
PENALTIES = ("ridge", "laplacian")
METHODS = ("auto", "cholesky", "eigh")
SELECTIONS = ("mean", "pooled")


@dataclass
class RidgeFit:
    """The result of :func:`fit_ridge`. Tensors are on the statistics' device.

    Attributes:
        coef: ``(N, D)`` weights, index ``p * L + l``; :meth:`strf` reshapes them.
        intercept: ``(N,)`` biases (zeros without an intercept).
        alphas: ``(N,)`` absolute alpha of each neuron.
        relative_alphas: ``(N,)`` ``alphas / scale``.
        scale: the reference the relative alphas multiply: ``trace(G_c) / D``
            for ``"ridge"``, ``trace(G_c) / trace(Pen)`` for ``"laplacian"``,
            with ``G_c`` the Gram of all bins of all stimuli (centered with an
            intercept).
        alpha_grid: ``(A,)`` absolute alphas searched, ascending (None without a search).
        cv_scores: ``(A, N)`` mean over folds of the per-fold scores (folds where
            a neuron has no score are skipped); with ``"gcv"``, the leave-one-bin-out score.
        fold_scores: ``(K, A, N)`` per-fold scores (``(1, A, N)`` with ``"gcv"``).
        pooled_scores: ``(A, N)`` scores over all folds' held-out bins taken
            together (docs/conventions.md §7).
        folds: the ``(train, test)`` group indices of each fold.
        shape: ``(C, F, L)``.
    """

    coef: Tensor
    intercept: Tensor
    alphas: Tensor
    relative_alphas: Tensor
    scale: float
    alpha_grid: Optional[Tensor] = None
    cv_scores: Optional[Tensor] = None
    fold_scores: Optional[Tensor] = None
    pooled_scores: Optional[Tensor] = None
    folds: List[Tuple[List[int], List[int]]] = field(default_factory=list)
    shape: Tuple[int, int, int] = (0, 0, 0)

    def strf(self) -> Tensor:
        """``coef`` in the model's STRF layout ``(N, C, F, L)``."""
        return self.coef.reshape(self.coef.shape[0], *self.shape)


def laplacian_penalty(n_channels: int, n_bands: int, n_lags: int, *, dtype=torch.float64, device=None) -> Tensor:
    """``Pen = S^T S`` with S stacking second differences along lags and along bands (per channel).

    Args:
        n_channels, n_bands, n_lags: C, F, L.

    Returns:
        ``(D, D)``, ``D = C * F * L``, indexed ``(c * F + f) * L + l``; its null
        space holds weights linear in lag and band.
    """

    def curvature(n):  # S^T S of the (n - 2, n) second-difference operator; zero for n < 3
        rows = torch.zeros(max(n - 2, 0), n, dtype=dtype, device=device)
        for i in range(n - 2):
            rows[i, i : i + 3] = torch.tensor([1.0, -2.0, 1.0], dtype=dtype)
        return rows.T @ rows

    eye = lambda n: torch.eye(n, dtype=dtype, device=device)  # noqa: E731
    along_lags = torch.kron(eye(n_channels * n_bands), curvature(n_lags))
    along_bands = torch.kron(eye(n_channels), torch.kron(curvature(n_bands), eye(n_lags)))
    return along_lags + along_bands


class _Workspace:
    """One ``(D, D)`` buffer that every Cholesky of a fit factors into, in place.

    A factorization per alpha would otherwise allocate two Gram-sized tensors
    (the penalised system and its factor); reusing one buffer keeps the search
    at one Gram-sized temporary and spares the page faults of fresh 100 MB
    allocations (a fresh ``clone`` costs about five copies into warm memory).
    """

    def __init__(self):
        # one per dtype: a float32 search that redoes an ill-conditioned alpha in float64 switches back and forth
        self.buffers = {}

    def system(self, like: Tensor) -> Tensor:
        buffer = self.buffers.get(like.dtype)
        if buffer is None or buffer.shape != like.shape or buffer.device != like.device:
            buffer = self.buffers[like.dtype] = torch.empty_like(like)
        return buffer

    def release(self, dtype: torch.dtype) -> None:
        self.buffers.pop(dtype, None)


class _Factor:
    """One factorization of a training Gram serving any number of alphas.

    ``"eigh"``: ``G = V diag(lam) V^T`` once, then ``w = V (V^T B) / (lam + a)``
    per alpha (a matrix product). ``"cholesky"``: ``chol(G + a Pen)`` per alpha,
    factored in place in the shared :class:`_Workspace`, and two triangular
    solves; the only choice with a Laplacian penalty.
    """

    def __init__(self, gram: Tensor, rhs: Tensor, penalty: Optional[Tensor], n_solves: int, method: str, workspace: _Workspace,
                 search_dtype: Optional[torch.dtype] = None):
        if method == "auto":
            method = "cholesky" if penalty is not None or n_solves <= CHOLESKY_MAX_ALPHAS else "eigh"
        self.method, self.gram, self.rhs, self.penalty, self.workspace = method, gram, rhs, penalty, workspace
        # the search's lower-precision copy: Cholesky with the ridge penalty only (an eigenbasis serves
        # every alpha at once anyway; a Laplacian's null space leaves the condition unbounded by alpha)
        self.low, self.norm = None, None
        if method == "cholesky" and penalty is None and search_dtype is not None and search_dtype != gram.dtype:
            self.low = (gram.to(search_dtype), rhs.to(search_dtype))
            # ||G||_1 >= lambda_max (G symmetric positive semi-definite), so (||G||_1 + a) / a bounds cond(G + a I);
            # column blocks, so that no Gram-sized |G| is allocated
            self.norm = max(float(gram[:, i : i + 256].abs().sum(0).max()) for i in range(0, gram.shape[1], 256))
        if method == "eigh":
            self.evals, self.evecs = torch.linalg.eigh(gram)
            self.projected = self.evecs.T @ rhs
            self.gram = None  # the eigenbasis replaces it: one Gram-sized tensor less

    def solve(self, alpha: float, columns: Optional[Tensor] = None) -> Tensor:
        """``(D, n)`` weights ``(G + alpha Pen)^{-1} B`` for the given columns of B (in the search
        dtype when the factor has one and it is accurate enough there, else in the Gram's)."""
        if self.method == "eigh":
            projected = self.projected if columns is None else self.projected[:, columns]
            return self.evecs @ (projected / (self.evals + alpha).unsqueeze(1))
        if self.low is not None and (self.norm + alpha) / alpha <= SEARCH_CONDITION_LIMIT:
            weights = self._cholesky_solve(alpha, columns, *self.low, None, fallible=True)
            if weights is not None:
                return weights
        return self._cholesky_solve(alpha, columns, self.gram, self.rhs, self.penalty)

    def _cholesky_solve(self, alpha: float, columns: Optional[Tensor], gram: Tensor, rhs: Tensor, penalty: Optional[Tensor],
                        fallible: bool = False) -> Optional[Tensor]:
        rhs = rhs if columns is None else rhs[:, columns]
        system = self.workspace.system(gram)
        if penalty is None:
            system.copy_(gram)
            system.diagonal().add_(alpha)
        else:
            torch.add(gram, penalty, alpha=alpha, out=system)
        _, info = torch.linalg.cholesky_ex(system, out=(system, system.new_empty((), dtype=torch.int32)))
        if fallible and int(info) != 0:
            return None  # the search dtype's rounding broke the factor: the caller redoes it in the Gram's
        if int(info) != 0:  # only a (near-)singular Laplacian system or float32 statistics get here
            hint = "; or penalty='ridge'" if self.penalty is not None else "; or float64 statistics"
            raise ValueError(f"the penalised training Gram is not positive definite at alpha={alpha:.6g}; use a larger alpha{hint}")
        # two triangular solves: about twice as fast as ``cholesky_solve`` on a few columns (measured at D = 3840)
        return torch.linalg.solve_triangular(system.mT, torch.linalg.solve_triangular(system, rhs, upper=False), upper=True)


def _train(part: crossval.Part, penalty, n_solves, method, fit_intercept, workspace: _Workspace, search_dtype=None):
    """``[(neurons, mu, ybar, _Factor)]`` for the classes of ``part`` that have data."""
    factors = []
    for neurons, gram, total, count in part.classes:
        if count == 0:
            continue
        gram_c, cross_c, mu, ybar = crossval.centered(part, neurons, gram, total, count, fit_intercept)
        factors.append((neurons, mu, ybar, _Factor(gram_c, cross_c, penalty, n_solves, method, workspace, search_dtype)))
    return factors


def _weights(factors, alpha, dim, n_outputs, like: Tensor):
    """``coef (D, N)`` and ``intercept (N,)`` at one alpha, in ``like``'s dtype; NaN for neurons without training data."""
    coef = like.new_full((dim, n_outputs), math.nan)
    intercept = like.new_full((n_outputs,), math.nan)
    for neurons, mu, ybar, factor in factors:
        w = factor.solve(alpha).to(like.dtype)
        coef[:, neurons] = w
        intercept[neurons] = ybar if mu is None else ybar - mu @ w
    return coef, intercept


def _grid(name: str, values, scale: float, relative: bool, like: Tensor) -> Tuple[Tensor, Tensor]:
    """Validated ascending, duplicate-free ``(absolute, relative)`` grids."""
    grid = torch.as_tensor(values, dtype=like.dtype).to(like.device).reshape(-1) if values is not None else None
    if grid is None or grid.numel() == 0:
        raise ValueError(f"{name} is empty; expected at least one positive alpha")
    if torch.as_tensor(values).dim() > 1:
        raise ValueError(f"{name} must be one-dimensional; got shape {tuple(torch.as_tensor(values).shape)}")
    if not bool(torch.isfinite(grid).all()) or bool((grid <= 0).any()):
        raise ValueError(f"{name} must be finite and > 0; got {grid.tolist()}")
    grid = torch.unique(grid)
    return (grid * scale, grid) if relative else (grid, grid / scale)


def _refit(part: crossval.Part, alphas: Tensor, penalty, method: str, fit_intercept: bool, workspace: _Workspace):
    """``coef (N, D)``, ``intercept (N,)`` on ``part``: one factorization per signature,
    one solve per distinct alpha among its neurons."""
    dim, n_outputs = part.cross.shape
    coef = part.cross.new_zeros(dim, n_outputs)
    intercept = part.cross.new_zeros(n_outputs)
    for neurons, gram, total, count in part.classes:
        gram_c, cross_c, mu, ybar = crossval.centered(part, neurons, gram, total, count, fit_intercept)
        values, which = torch.unique(alphas[neurons], return_inverse=True)
        factor = _Factor(gram_c, cross_c, penalty, values.numel(), method, workspace)
        for j, value in enumerate(values.tolist()):
            columns = torch.nonzero(which == j).flatten()
            w = factor.solve(value, columns)
            coef[:, neurons[columns]] = w
            intercept[neurons[columns]] = ybar[columns] if mu is None else ybar[columns] - mu @ w
    return coef.T.contiguous(), intercept


def _search(sums: crossval.Sums, folds, grid: Tensor, penalty, method: str, fit_intercept: bool, scoring: str, workspace: _Workspace,
            search_dtype: torch.dtype):
    """``(fold_scores (K, A, N), pooled_scores (A, N))`` of every alpha on every fold.

    Per fold: the training Gram is the total minus the held-out groups (one
    Gram-sized tensor, centered in place), factored once per alpha in the
    shared workspace (or once for all alphas by ``eigh``); the held-out part
    adds one more. Both are dropped before the next fold is gathered. The
    factors and solves run in ``search_dtype`` where the system's condition
    allows (:py:class:`_Factor`); the held-out scores always in the
    statistics' dtype.
    """
    like = sums.stats.groups[0].cross
    dim, n_outputs = like.shape
    fold_scores = like.new_full((len(folds), grid.numel(), n_outputs), math.nan)
    acc = like.new_zeros(grid.numel(), 6, n_outputs)
    for f, (train, test) in enumerate(folds):
        factors = None  # the previous fold's factors go before this fold's Gram is formed
        factors = _train(crossval.gather(sums, train), penalty, grid.numel(), method, fit_intercept, workspace, search_dtype)
        heldout = crossval.gather(sums, test)
        classes = crossval.heldout_classes(heldout)
        for a, value in enumerate(grid.tolist()):
            coef, intercept = _weights(factors, value, dim, n_outputs, like)
            # scored in the statistics' dtype: a float32 held-out Gram moved high-SNR neurons' correlations
            # above 1 and their MSEs below 0 (its rounding, ~1e-7, exceeds the differences between alphas)
            moments = crossval.heldout_moments(classes, heldout, coef, intercept)
            fold_scores[f, a] = crossval.score(moments, scoring)
            acc[a] = crossval.pool_moments(acc[a], moments)
        heldout = classes = None
    if search_dtype != like.dtype:
        workspace.release(search_dtype)  # the refit factors in the statistics' dtype only
    return fold_scores, crossval.score(acc.transpose(0, 1), scoring)


def _choice(name: str, value, options) -> str:
    if value not in options:
        raise ValueError(f"unknown {name}={short_repr(value)}; expected one of {list(options)}")
    return value


def fit_ridge(
    stats: RidgeStatistics,
    alphas=None,
    *,
    relative_alphas=None,
    alpha=None,
    cv=5,
    scoring: str = "corr",
    penalty: str = "ridge",
    fit_intercept: bool = True,
    selection: str = "mean",
    method: str = "auto",
    search_dtype: str = "float32",
) -> RidgeFit:
    """Fit every neuron's lagged linear model in closed form, its alpha chosen by cross-validation.

    Minimises, per neuron, ``sum_t (y_t - b - w^T z_t)^2 + alpha * w^T Pen w``
    over its recorded bins, ``Pen = I`` (``"ridge"``) or the second-difference
    penalty of :func:`laplacian_penalty` (``"laplacian"``, smooth along lags
    and bands; built from the statistics' C, F, L). The intercept ``b`` is
    never penalised.

    **Alphas.** At most one of ``alphas``, ``relative_alphas``, ``alpha``:

    * ``alphas``: absolute grid, as in scikit-learn (docs/conventions.md §7);
    * ``relative_alphas``: grid relative to ``scale`` (see :class:`RidgeFit`),
      the same at any feature scale; neither given: :data:`DEFAULT_RELATIVE_ALPHAS`;
    * ``alpha``: a fixed absolute alpha, scalar or ``(N,)`` (one per neuron);
      no cross-validation.

    **Cross-validation** splits by groups (stimuli, unless the statistics
    pooled some): ``cv=K`` contiguous folds in order (the first ``S % K`` one
    group larger), ``"loso"`` one group out, an iterable of ``(train, test)``
    group index lists, or ``"gcv"``: exact leave-one-*bin*-out from one eigh
    of the whole Gram (needs ``keep_data=True``, ridge only). Bins within a
    stimulus are autocorrelated, so ``"gcv"`` scores are optimistic and tend
    to pick smaller alphas than stimulus folds; it costs ``T_total * D^2``.
    Each fold scores every alpha on its held-out bins (``"corr"``: Pearson r
    over them all, NaN bins excluded; ``"mse"``, lower is better);
    ``selection="mean"`` picks each neuron's best mean-over-folds score,
    ``"pooled"`` its best score over all held-out bins taken together. Ties
    go to the larger alpha, as does a neuron without any score. The chosen
    alphas are then refitted on all the statistics.

    **Cost.** Per fold and per signature (one for complete data), either one
    Cholesky per alpha or one eigh for all (``method="auto"``: Cholesky when
    at most :data:`CHOLESKY_MAX_ALPHAS` alphas, always with a Laplacian),
    solves ``O(D^2 N)`` per alpha, held-out scoring ``O(D^2 N)`` per alpha.
    Neurons recorded at different sets of bins (e.g. different stimuli) form
    different signatures, each with its own factorizations. The search's
    Choleskys, solves and held-out products run in ``search_dtype`` (module
    docstring); the refit of the chosen alphas in the statistics' dtype.

    **Memory.** Besides the statistics' own Grams (one per group, and their
    total, cached while the folds need it), a fold holds its training Gram
    (the total minus the held-out groups, centered in place) and its
    held-out Gram, and every Cholesky factors into one reused buffer: for
    complete data, four Gram-sized tensors beyond the groups', whatever the
    number of alphas (``eigh`` keeps the eigenvectors in place of the
    training Gram).

    **Precision.** A fold's training statistics are the total minus its
    held-out groups (or the sum of its training groups, whichever has fewer
    terms), and centering subtracts ``n mu mu^T``: both cancel digits, about
    ``eps * ||G||``, harmless in float64 when the features are standardized
    (docs/conventions.md §7) but not in float32 with large feature means.

    Args:
        stats: the accumulated statistics.
        alphas: ``(A,)`` absolute alphas.
        relative_alphas: ``(A,)`` alphas relative to ``scale``.
        alpha: fixed absolute alpha, ``float`` or ``(N,)``.
        cv: see above.
        scoring: ``"corr"`` or ``"mse"``.
        penalty: ``"ridge"`` or ``"laplacian"``.
        fit_intercept: center with the training means and fit a bias.
        selection: ``"mean"`` or ``"pooled"``.
        method: ``"auto"``, ``"cholesky"`` or ``"eigh"``.
        search_dtype: ``"float32"`` (default) or ``"float64"``: the precision of the
            Cholesky alpha search (never above the statistics' own).

    Returns:
        A :class:`RidgeFit`.

    Raises:
        ValueError: unknown options, empty or non-positive alphas, a per-neuron
            alpha of the wrong shape, more folds than groups, or a neuron
            without any recorded bin.
    """
    scoring = _choice("scoring", scoring, SCORINGS)
    penalty = _choice("penalty", penalty, PENALTIES)
    selection = _choice("selection", selection, SELECTIONS)
    method = _choice("method", method, METHODS)
    search_dtype = _choice("search_dtype", search_dtype, SEARCH_DTYPES)
    if not isinstance(stats, RidgeStatistics) or stats.n_groups == 0:
        raise ValueError(f"stats must be a RidgeStatistics holding at least one stimulus; got {short_repr(stats)}")
    if penalty == "laplacian" and method == "eigh":
        raise ValueError("method='eigh' does not apply to penalty='laplacian' (a Cholesky per alpha); use method='auto' or 'cholesky'")
    if sum(v is not None for v in (alphas, relative_alphas, alpha)) > 1:
        raise ValueError("pass at most one of alphas (absolute grid), relative_alphas (relative grid) and alpha (fixed)")
    sums = crossval.Sums(stats)
    every_group = range(stats.n_groups)
    missing = torch.nonzero(sums.neurons(every_group)[3] == 0).flatten().tolist()
    if missing:
        raise ValueError(f"neurons {missing[:20]}{' ...' if len(missing) > 20 else ''} have no recorded bin in any stimulus; nothing to fit")

    shape = (stats.n_channels, stats.n_bands, stats.n_lags)
    like = stats.groups[0].cross  # (D, N): the dtype, device and sizes of every result
    workspace = _Workspace()
    all_bins = [g.all_bins for g in stats.groups]
    diag = sum(c.gram.diagonal() for c in all_bins)
    if fit_intercept:
        diag = diag - sum(c.total for c in all_bins) ** 2 / sum(c.count for c in all_bins)
    pen = laplacian_penalty(*shape, dtype=like.dtype, device=like.device) if penalty == "laplacian" else None
    if pen is not None and not bool(pen.any()):
        raise ValueError(f"penalty='laplacian' needs at least 3 lags or 3 bands; the statistics have F={shape[1]}, L={shape[2]}")
    scale = float(diag.sum() / (pen.diagonal().sum() if pen is not None else diag.numel()))
    if not scale > 0 or not math.isfinite(scale):
        raise ValueError(f"the features have no variance (reference scale {scale}); nothing to regularise against")
    n_outputs = like.shape[1]

    if alpha is not None:
        fixed = torch.as_tensor(alpha, dtype=like.dtype).to(like.device)
        if fixed.dim() > 1 or (fixed.dim() == 1 and fixed.numel() != n_outputs):
            raise ValueError(f"alpha must be a float or have shape ({n_outputs},), one per neuron; got shape {tuple(fixed.shape)}")
        if not bool(torch.isfinite(fixed).all()) or bool((fixed <= 0).any()):
            raise ValueError(f"alpha must be finite and > 0; got {fixed.tolist()}")
        fixed = fixed.expand(n_outputs).clone()
        coef, intercept = _refit(crossval.gather(sums, every_group), fixed, pen, method, fit_intercept, workspace)
        return RidgeFit(coef, intercept, fixed, fixed / scale, scale, shape=shape)

    if alphas is not None:
        grid, relative_grid = _grid("alphas", alphas, scale, False, like)
    else:
        grid, relative_grid = _grid("relative_alphas", DEFAULT_RELATIVE_ALPHAS if relative_alphas is None else relative_alphas, scale, True, like)
    folds = crossval.make_folds(cv, stats.n_groups)
    if folds == "gcv":
        if pen is not None:
            raise ValueError("cv='gcv' supports penalty='ridge' only; use stimulus folds with penalty='laplacian'")
        if not stats.keep_data:
            raise ValueError("cv='gcv' revisits every bin: build the RidgeStatistics with keep_data=True")
        fold_scores = crossval.score(crossval.loo_moments(stats, crossval.gather(sums, every_group), grid, fit_intercept), scoring).unsqueeze(0)
        pooled, folds = fold_scores[0], []
    else:
        low = SEARCH_DTYPES[search_dtype]
        low = low if torch.finfo(low).bits < torch.finfo(like.dtype).bits else like.dtype  # never above the statistics'
        fold_scores, pooled = _search(sums, folds, grid, pen, method, fit_intercept, scoring, workspace, low)
    cv_scores = fold_scores.nanmean(0)
    best = crossval.select_alpha(cv_scores if selection == "mean" else pooled, scoring)
    chosen = grid[best]
    coef, intercept = _refit(crossval.gather(sums, every_group), chosen, pen, method, fit_intercept, workspace)
    return RidgeFit(coef, intercept, chosen, relative_grid[best], scale, grid, cv_scores, fold_scores, pooled, folds, shape)
