"""The ``"ridge"`` solver: linear STRFs in closed form, each neuron's penalty chosen by cross-validation.

The field's workhorse (MNE's ``ReceptiveField``, the mTRF toolbox, STRFlab,
himalaya): a ridge-regularised linear STRF on the lagged spectrogram. This
solver streams the training loader once, accumulating in float64 the
sufficient statistics of the lagged design without building it
(:py:class:`strfsolver.ridge.RidgeStatistics`: each ``F x F`` block of the
Gram is a cross-correlation of band pairs at one lag difference), then
solves for every neuron at once (:py:func:`strfsolver.ridge.fit_ridge`),
each neuron's alpha chosen from a grid by K-fold cross-validation over
stimuli (a fold never splits a stimulus). Targets are PSTHs; a neuron
contributes only the bins where it was recorded.

Cost, for ``D = C * F * L`` features, ``T`` training bins, ``S`` stimuli,
``K`` folds, ``A`` alphas, ``N`` neurons: the statistics take
``O(L * F^2 * T)`` (lag structure) and ``K`` Grams of ``D^2`` float64 in
memory (stimuli are pooled by fold; ``cv="loso"`` keeps one per stimulus);
the search takes ``K * A`` Cholesky factorizations ``O(D^3 / 3)`` and
solves ``O(D^2 N)`` each (in float32 by default, ``search_dtype``; the
chosen alphas are refitted in float64); neurons recorded on different sets of stimuli
form separate groups with factorizations of their own.

The result is the ``"linear"`` model itself, with its kernel and bias set:
``model.strf()``, ``transform``, ``validation``, ``save_pretrained`` and the
estimator work as after any other fit. The log has one row (epoch 0) with
the training loss, the validation metrics, the median chosen relative alpha
and the mean cross-validated score.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from literate_dataclasses import field
from torch import Tensor

from strfsolver.utils.checks import check_choice, check_count, check_flag, check_real, short_repr
from strfsolver.ridge import RidgeFit, fit_ridge
from strfsolver.ridge.solve import SEARCH_DTYPES
from strfsolver.ridge.models import check_ridge_model, loader_stimulus_count, ridge_features, ridge_initialize, write_solution
from strfsolver.solver._registry import register
from strfsolver.solver.base import Solver, _solver_dataclass

__all__ = ["RidgeSolver", "ClosedFormEpoch", "ridge_initialize", "ridge_features", "check_ridge_model", "SCORINGS", "PENALTIES", "SELECTIONS"]

SCORINGS = ("corr", "mse")
PENALTIES = ("ridge", "laplacian")
SELECTIONS = ("mean", "pooled")


def _numbers(value: Any, name: str) -> np.ndarray:
    """``value`` as a 1-d float array, or a ``ValueError`` naming ``name`` (a string or a mapping is no list of numbers)."""
    if isinstance(value, (str, bytes, dict)):
        raise ValueError(f"{name} must be a number or a list of numbers > 0, got {type(value).__name__} {short_repr(value)}.")
    try:
        return np.atleast_1d(np.asarray(value, dtype=float))
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or a list of numbers > 0, got {short_repr(value)}.") from None


class ClosedFormEpoch:
    """The one "epoch" of the ``"ridge"`` solver in the fit loop: solve, then score the training data.

    Its entries of the epoch dict: ``train_loss`` and ``train_<metric>`` (the
    solution on its training stimuli), ``lr`` (0: no step), ``alpha_median``
    (relative) and ``cv_score`` (mean over neurons of the chosen alphas'
    cross-validated scores). The fit then stops with ``"closed form"``.
    """

    uses_optimizer = False
    diagnosable = False  # the advice reads learning curves, which a solve has not
    epochs = 1

    def __call__(self, loop: Any, batches: Iterable[Dict[str, Any]], epoch: int) -> Tuple[Dict[str, Any], Dict[str, Tensor]]:
        solver = loop.solver
        solver.solve(loop.loader)
        train = solver.validation(loop.loader)
        row: Dict[str, Any] = {"train_loss": train["loss"], "lr": 0.0}
        row.update({f"train_{name}": float(train[name].nanmean()) for name in solver.metrics})
        row["alpha_median"] = float(solver.relative_alphas_.median())
        if solver.cv_scores_ is not None:
            grid = solver.alpha_grid_.to(solver.alphas_)
            chosen = (solver.alphas_.unsqueeze(0) - grid.unsqueeze(1)).abs().argmin(0)
            row["cv_score"] = float(solver.cv_scores_.gather(0, chosen.unsqueeze(0))[0].nanmean())
        loop.state.stopped, loop.state.stop_reason = True, "closed form"
        return row, {}


@register("ridge")
@_solver_dataclass
class RidgeSolver(Solver):
    """Fit linear STRFs in closed form, each neuron's ridge penalty chosen by cross-validation.

    ``strfsolver.solver.init("ridge", model=strfsolver.models.init("linear", ...))``
    then ``fit(train_loader, valid_loader)`` as with every solver. By default
    each neuron's alpha comes from a grid of 15 values (half decades) from
    ``1e-4`` to ``1e3`` times the mean eigenvalue of the training Gram (so rescaling the
    stimulus does not change the chosen fit), scored by 5-fold
    cross-validation over stimuli with the correlation of prediction and PSTH.
    The gradient options of :py:class:`Solver` (``lr``, ``optimizer``,
    ``patience``, ...) are not used, and refused when given (``unused_options``);
    the fit is one closed-form epoch of the fit loop (:py:class:`ClosedFormEpoch`).

    Args:
        (fields)

    Attributes set by :py:meth:`fit`: ``alphas_`` ``(N,)`` (absolute),
    ``relative_alphas_`` ``(N,)``, ``alpha_grid_`` ``(A,)``, ``cv_scores_``
    ``(A, N)`` (mean over folds), ``fold_scores_`` ``(K, A, N)``, ``ridge_``
    (the :py:class:`~strfsolver.ridge.RidgeFit`), and those of :py:class:`Solver`.
    """

    alphas: Optional[Sequence[float]] = field(default=None, doc="Absolute alphas to search (as scikit-learn's); not with ``relative_alphas`` or ``alpha``.")
    relative_alphas: Optional[Sequence[float]] = field(
        default=None,
        doc="Alphas relative to the mean eigenvalue of the training Gram (``None`` with no other choice: "
        ":py:data:`strfsolver.ridge.DEFAULT_RELATIVE_ALPHAS`, 1e-4 to 1e3 in half decades).",
    )
    alpha: Optional[Union[float, Sequence[float]]] = field(
        default=None, doc="A fixed absolute alpha, or one per neuron ``(N,)``: no cross-validation."
    )
    cv: Any = field(
        default=5,
        doc="``K`` (folds of contiguous stimuli), ``\"loso\"`` (leave one stimulus out), ``\"gcv\"`` (exact "
        "leave-one-bin-out; optimistic on autocorrelated bins) or an iterable of (train, test) stimulus index lists.",
    )
    scoring: str = field(default="corr", doc="``\"corr\"`` (Pearson r with the PSTH, higher is better) or ``\"mse\"``.")
    penalty: str = field(default="ridge", doc="``\"ridge\"`` or ``\"laplacian\"`` (second differences over lags and bands: smooth STRFs).")
    selection: str = field(default="mean", doc="Pick each neuron's alpha by its ``\"mean\"`` fold score or its ``\"pooled\"`` score over all held-out bins.")
    fit_intercept: bool = field(default=True, doc="Fit an unpenalised per-neuron bias.")
    search_dtype: str = field(
        default="float32",
        doc="Precision of the alpha search's factorizations: ``\"float32\"`` (1.4-2x faster; the chosen alphas are "
        "refitted in float64) or ``\"float64\"`` (the scores exact to rounding). See :py:func:`strfsolver.ridge.fit_ridge`.",
    )
    max_patterns: int = field(default=64, doc="Distinct patterns of partially recorded bins per stimulus accepted (each costs one Gram).")
    track_train_metrics: bool = field(default=True, doc="Report ``train_<metric>`` of the solution (always computed: one pass).")

    epoch_runner = ClosedFormEpoch
    unused_options = ("optimizer", "lr", "weight_decay", "max_epochs", "patience", "plateau_patience", "lr_decay",
                      "min_delta", "schedule", "penalties", "grad_clip", "init")

    def __post_init__(self):
        super().__post_init__()
        check_ridge_model(self.model)
        chosen = [name for name in ("alphas", "relative_alphas", "alpha") if getattr(self, name) is not None]
        if len(chosen) > 1:
            raise ValueError(f"give at most one of alphas, relative_alphas and alpha; got {chosen}.")
        for name in ("alphas", "relative_alphas"):
            grid = getattr(self, name)
            if grid is not None:
                values = _numbers(grid, name)
                if values.ndim != 1 or values.size == 0:
                    raise ValueError(f"{name} must be a non-empty list of numbers > 0, got {short_repr(grid)}.")
                for value in values:
                    check_real(float(value), f"every value of {name}", 0.0, low_open=True)
        if self.alpha is not None:
            values = _numbers(self.alpha, "alpha")
            if values.ndim != 1 or values.size not in (1, self.model.n_neurons):
                raise ValueError(f"alpha must be a number or one per neuron ({self.model.n_neurons},), got shape {values.shape}.")
            for value in values:
                check_real(float(value), "alpha", 0.0, low_open=True)
        if isinstance(self.cv, str):
            check_choice(self.cv, "cv", ("loso", "gcv"))
        elif isinstance(self.cv, (int, np.integer)) or isinstance(self.cv, bool):
            check_count(self.cv, "cv", 2)
        check_choice(self.scoring, "scoring", SCORINGS)
        check_choice(self.penalty, "penalty", PENALTIES)
        check_choice(self.selection, "selection", SELECTIONS)
        check_choice(self.search_dtype, "search_dtype", tuple(SEARCH_DTYPES))
        check_flag(self.fit_intercept, "fit_intercept")
        check_count(self.max_patterns, "max_patterns", 1)
        if self.cv == "gcv" and self.penalty != "ridge":
            raise ValueError("cv='gcv' supports penalty='ridge' only; use K-fold cv with penalty='laplacian'.")

    def _inference(self, batch: Dict[str, Any]) -> Tensor:
        return self.model(batch["stims"])

    def _folds(self) -> Optional[int]:
        """Stimuli are pooled into one group per fold when the folds are contiguous blocks."""
        if self.alpha is not None or self.cv == "gcv":
            return 1
        if isinstance(self.cv, (int, np.integer)) and not isinstance(self.cv, bool):
            return int(self.cv)
        return None

    def solve(self, loader: Iterable[Dict[str, Any]]) -> RidgeFit:
        """Accumulate the training statistics, search the alphas and write the solution into the model.

        Returns:
            The :py:class:`~strfsolver.ridge.RidgeFit` (also ``ridge_``).
        """
        # stimuli where no neuron has a recorded bin add nothing to the statistics: they are no fold's stimulus
        n_stims = loader_stimulus_count(loader, recorded=True)
        folds = self._folds()
        if isinstance(self.cv, (int, np.integer)) and not isinstance(self.cv, bool) and self.alpha is None and n_stims is not None and n_stims < self.cv:
            total = loader_stimulus_count(loader)
            unrecorded = f" ({total - n_stims} of its {total} have no recorded bin for any neuron)" if total != n_stims else ""
            raise ValueError(
                f"cv={self.cv} folds need at least {self.cv} training stimuli, the loader has {n_stims} recorded ones{unrecorded}; "
                "use fewer folds or cv='loso'."
            )
        stats = ridge_features(self.model, loader, self.prepare, n_stims, folds, max_patterns=self.max_patterns, keep_data=self.cv == "gcv")
        grid = {"alphas": self.alphas, "relative_alphas": self.relative_alphas, "alpha": self.alpha}
        grid = {k: torch.as_tensor(np.asarray(v, dtype=float)) for k, v in grid.items() if v is not None}
        if "alpha" in grid and grid["alpha"].numel() == 1:
            grid["alpha"] = float(grid["alpha"])
        result = fit_ridge(
            stats, **grid, cv=self.cv if self.alpha is None else 5, scoring=self.scoring, penalty=self.penalty,
            fit_intercept=self.fit_intercept, selection=self.selection, search_dtype=self.search_dtype,
        )
        write_solution(self.model, result)
        self.ridge_ = result
        self.alphas_ = result.alphas.detach().cpu()
        self.relative_alphas_ = result.relative_alphas.detach().cpu()
        self.alpha_grid_ = None if result.alpha_grid is None else result.alpha_grid.detach().cpu()
        self.cv_scores_ = None if result.cv_scores is None else result.cv_scores.detach().cpu()
        self.fold_scores_ = None if result.fold_scores is None else result.fold_scores.detach().cpu()
        return result

    #: the closed-form results, kept in checkpoints beside the model
    RESULTS = ("alphas_", "relative_alphas_", "alpha_grid_", "cv_scores_", "fold_scores_")

    def state_dict(self) -> Dict[str, Any]:
        """:py:meth:`Solver.state_dict` plus the solve's alphas and cross-validation scores (``"ridge"``)."""
        state = super().state_dict()
        state["ridge"] = {name: getattr(self, name) for name in self.RESULTS if getattr(self, name, None) is not None}
        return state

    def load_state_dict(self, state: Dict[str, Any], strict: bool = True) -> None:
        """:py:meth:`Solver.load_state_dict`, and the alphas and scores of the solve that wrote ``state``."""
        super().load_state_dict(state, strict=strict)
        if "ridge" in state or strict:
            for name in self.RESULTS:
                setattr(self, name, state.get("ridge", {}).get(name))
