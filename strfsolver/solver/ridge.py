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
solves ``O(D^2 N)`` each; neurons recorded on different sets of stimuli
form separate groups with factorizations of their own.

The result is the ``"linear"`` model itself, with its kernel and bias set:
``model.strf()``, ``transform``, ``validation``, ``save_pretrained`` and the
estimator work as after any other fit. The log has one row (epoch 0) with
the training loss, the validation metrics, the median chosen relative alpha
and the mean cross-validated score.
"""

from __future__ import annotations

import inspect
import time
import warnings
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np
import torch
from literate_dataclasses import field
from torch import Tensor, nn

from strfsolver.utils.checks import check_choice, check_count, check_flag, check_real
from strfsolver.metrics import psth
from strfsolver.ridge import RidgeFit, RidgeStatistics, fit_ridge
from strfsolver.solver import checkpoint as _checkpoint
from strfsolver.solver._registry import register
from strfsolver.solver.base import Solver, _solver_dataclass
from strfsolver.solver.data_checks import check_lags_fit_stimuli
from strfsolver.solver.logdir import claim_logdir
from strfsolver.solver.aliases import call_on_epoch_end
from strfsolver.solver.loop import Reporter, copy_state

__all__ = ["RidgeSolver", "ridge_initialize", "ridge_features", "check_ridge_model", "SCORINGS", "PENALTIES", "SELECTIONS"]

SCORINGS = ("corr", "mse")
PENALTIES = ("ridge", "laplacian")
SELECTIONS = ("mean", "pooled")


def check_ridge_model(model: nn.Module, what: str = "the ridge solver", linear_only: bool = True) -> None:
    """Refuse a model whose prediction is not a linear STRF of fixed features.

    A model qualifies when it has ``strf_features(stims)`` (the features its
    STRF sees) and a :py:class:`~strfsolver.models.readouts.STRFReadout` with
    a ``"full"`` kernel and no weight normalisation, and (``linear_only``) no
    output activation; ``what`` names the caller.

    Raises:
        ValueError: naming what is missing.
    """
    from strfsolver.nn.layers import FullSTRF
    from strfsolver.models.readouts import STRFReadout

    readout = getattr(model, "readout", None)
    if not callable(getattr(model, "strf_features", None)) or not isinstance(readout, STRFReadout):
        raise ValueError(
            f"{what} fits linear STRF models (strfsolver.models 'linear', or a model whose first stage is an STRF "
            f"readout and that has strf_features()); got {type(model).__name__}. Use the 'population' solver for it."
        )
    if not isinstance(readout.kernel, FullSTRF) or readout.normalization != "none":
        raise ValueError(
            f"{what} needs a full kernel without normalisation (kernel='full', normalization='none'); the model has "
            f"{type(readout.kernel).__name__} with normalization={readout.normalization!r}."
        )
    if linear_only and not isinstance(readout.activation, nn.Identity):
        raise ValueError(
            f"{what} fits linear STRF models, and {type(model).__name__} has a {type(readout.activation).__name__} "
            "output nonlinearity; fit it by gradient descent (solver 'population'), optionally started from the "
            "ridge STRF with init='ridge'."
        )
    trainable = [name for name, p in model.prefiltering.named_parameters() if p.requires_grad] if hasattr(model, "prefiltering") else []
    if trainable:
        raise ValueError(
            f"{what} treats the prefilter's output as fixed features, but the prefilter has trainable parameters "
            f"{trainable}; freeze them (model.prefiltering.requires_grad_(False)) or fit by gradient descent."
        )


def _recorded_length(targets: Tensor) -> int:
    """Bins up to the last one where any neuron was recorded: what lies after is padding."""
    recorded = (~targets.isnan()).any(dim=0).nonzero()
    return int(recorded[-1]) + 1 if recorded.numel() else 0


@torch.no_grad()
def ridge_features(model: nn.Module, loader: Iterable[Dict[str, Any]], prepare, n_stims: Optional[int], folds: Optional[int], **options) -> RidgeStatistics:
    """Stream a loader into :py:class:`~strfsolver.ridge.RidgeStatistics` of the model's STRF features.

    Args:
        model: A model that passes :py:func:`check_ridge_model`.
        loader: Batches of whole stimuli.
        prepare: ``prepare(batch) -> batch`` (the solver's device and mask handling).
        n_stims: Stimuli the loader holds (for pooling by fold), or ``None``.
        folds: Pool the stimuli into this many contiguous groups (one per
            fold, the way :py:func:`~strfsolver.ridge.fit_ridge` splits ``cv=K``),
            or ``None`` for one group per stimulus.
        **options: Options of :py:class:`~strfsolver.ridge.RidgeStatistics`.
    """
    was_training = model.training
    model.eval()
    stats: Optional[RidgeStatistics] = None
    fold_of = None
    if folds is not None and n_stims is not None:
        fold_of = np.concatenate([np.full(len(chunk), k) for k, chunk in enumerate(np.array_split(np.arange(n_stims), folds))])
    index = 0
    try:
        for batch in loader:
            batch = prepare(batch)
            features = model.strf_features(batch["stims"])  # (B, C', F', T)
            targets = psth(batch["responses"])[:, :, 0]  # (B, N, T)
            if stats is None:
                stats = RidgeStatistics(model.n_lags, n_channels=features.shape[1], device=features.device, **options)
            for b in range(features.shape[0]):
                bins = _recorded_length(targets[b])
                group = None if fold_of is None else int(fold_of[index]) if index < len(fold_of) else None
                if bins > 0:
                    stats.add(features[b, ..., :bins], targets[b, :, :bins], group=group)
                index += 1
    finally:
        model.train(was_training)
    if stats is None or stats.n_stimuli == 0:
        raise ValueError("the training loader yielded no stimulus with a recorded bin.")
    return stats


def _n_stims(loader: Any) -> Optional[int]:
    dataset = getattr(loader, "dataset", None)
    return len(dataset) if dataset is not None and hasattr(dataset, "__len__") else None


def _write_solution(model: nn.Module, result: RidgeFit) -> None:
    readout = model.readout
    with torch.no_grad():
        readout.kernel.weight.copy_(result.strf().to(readout.kernel.weight))
        if readout.bias is not None:
            readout.bias.copy_(result.intercept.to(readout.bias))


@torch.no_grad()
def ridge_initialize(model: nn.Module, loader: Iterable[Dict[str, Any]], prepare=None, **options: Any) -> RidgeFit:
    """Start a gradient fit from the ridge STRF: the ``init="ridge"`` of the gradient solvers.

    Fits the model's STRF stage in closed form (5-fold cross-validated
    ridge over stimuli, ``"loso"`` with fewer than 5 stimuli; ``options``
    go to :py:func:`~strfsolver.ridge.fit_ridge`), writes kernel and bias into
    the model, and sets a :py:class:`~strfsolver.models.activations.ParametricSoftplus`
    output so that it passes the ridge drive through nearly unchanged: slope
    ``4 / std(drive)`` per neuron (a knee narrow against the drive's spread)
    and, for a signed activation, threshold and baseline at
    ``mean - 3 std`` of the drive. Other activations keep their parameters.

    Args:
        model: A model whose first stage is an STRF (see :py:func:`check_ridge_model`).
        loader: The training batches.
        prepare: ``prepare(batch) -> batch`` (default: as they come).

    Returns:
        The :py:class:`~strfsolver.ridge.RidgeFit`.
    """
    from strfsolver.nn.activations import ParametricSoftplus

    check_ridge_model(model, "init='ridge'", linear_only=False)
    prepare = prepare if prepare is not None else (lambda batch: batch)
    n_stims = _n_stims(loader)
    cv = options.pop("cv", 5 if n_stims is None or n_stims >= 5 else "loso")
    folds = cv if isinstance(cv, int) else None
    stats = ridge_features(model, loader, prepare, n_stims, folds)
    result = fit_ridge(stats, cv=cv, **options)
    _write_solution(model, result)
    activation = model.readout.activation
    if isinstance(activation, ParametricSoftplus):
        total = square = count = 0.0
        was_training = model.training
        model.eval()
        for batch in loader:
            batch = prepare(batch)
            drive = model.readout.drive(model.strf_features(batch["stims"])).double()  # (B, N, 1, T)
            recorded = ~psth(batch["responses"]).isnan()
            drive = torch.where(recorded, drive, 0.0)
            total = total + drive.sum(dim=(0, 2, 3))
            square = square + drive.square().sum(dim=(0, 2, 3))
            count = count + recorded.sum(dim=(0, 2, 3))
        model.train(was_training)
        mean = total / count.clamp(min=1)
        std = (square / count.clamp(min=1) - mean.square()).clamp(min=1e-12).sqrt()
        slope = (4.0 / std).to(activation.raw_slope)
        activation.raw_slope.copy_(slope + torch.log(-torch.expm1(-slope)))  # inverse softplus
        activation.raw_gain.copy_(torch.full_like(activation.raw_gain, 1.0 + torch.log(-torch.expm1(torch.tensor(-1.0))).item()))
        if activation.baseline is not None:
            floor = (mean - 3 * std).to(activation.threshold)
            activation.threshold.copy_(floor)
            activation.baseline.copy_(floor)
        else:
            activation.threshold.zero_()
    return result


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
    ``patience``, ...) are not used.

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
    max_patterns: int = field(default=64, doc="Distinct patterns of partially recorded bins per stimulus accepted (each costs one Gram).")

    def __post_init__(self):
        super().__post_init__()
        check_ridge_model(self.model)
        chosen = [name for name in ("alphas", "relative_alphas", "alpha") if getattr(self, name) is not None]
        if len(chosen) > 1:
            raise ValueError(f"give at most one of alphas, relative_alphas and alpha; got {chosen}.")
        for name in ("alphas", "relative_alphas"):
            grid = getattr(self, name)
            if grid is not None:
                values = np.atleast_1d(np.asarray(grid, dtype=float))
                if values.ndim != 1 or values.size == 0:
                    raise ValueError(f"{name} must be a non-empty list of numbers > 0, got {grid!r}.")
                for value in values:
                    check_real(float(value), f"every value of {name}", 0.0, low_open=True)
        if self.alpha is not None:
            values = np.atleast_1d(np.asarray(self.alpha, dtype=float))
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
        n_stims = _n_stims(loader)
        folds = self._folds()
        if isinstance(self.cv, (int, np.integer)) and not isinstance(self.cv, bool) and self.alpha is None and n_stims is not None and n_stims < self.cv:
            raise ValueError(f"cv={self.cv} folds need at least {self.cv} training stimuli, the loader has {n_stims}; use fewer folds or cv='loso'.")
        stats = ridge_features(self.model, loader, self._prepare, n_stims, folds, max_patterns=self.max_patterns, keep_data=self.cv == "gcv")
        grid = {"alphas": self.alphas, "relative_alphas": self.relative_alphas, "alpha": self.alpha}
        grid = {k: torch.as_tensor(np.asarray(v, dtype=float)) for k, v in grid.items() if v is not None}
        if "alpha" in grid and grid["alpha"].numel() == 1:
            grid["alpha"] = float(grid["alpha"])
        result = fit_ridge(
            stats, **grid, cv=self.cv if self.alpha is None else 5, scoring=self.scoring, penalty=self.penalty,
            fit_intercept=self.fit_intercept, selection=self.selection,
        )
        _write_solution(self.model, result)
        self.ridge_ = result
        self.alphas_ = result.alphas.detach().cpu()
        self.relative_alphas_ = result.relative_alphas.detach().cpu()
        self.alpha_grid_ = None if result.alpha_grid is None else result.alpha_grid.detach().cpu()
        self.cv_scores_ = None if result.cv_scores is None else result.cv_scores.detach().cpu()
        self.fold_scores_ = None if result.fold_scores is None else result.fold_scores.detach().cpu()
        return result

    def fit(
        self,
        loader: Iterable[Dict[str, Any]],
        valid_loader: Optional[Iterable[Dict[str, Any]]] = None,
        *,
        logdir: Optional[Union[str, Path]] = None,
        keep_every: Optional[int] = None,
        **epoch_options: Any,
    ) -> List[Dict[str, Any]]:
        """Solve on ``loader``; validate on ``valid_loader``; write checkpoints to ``logdir``.

        The epoch options of :py:meth:`Solver.fit` (``max_epochs``,
        ``resume``, ...) are accepted and have nothing to do: the solve is one
        step. ``keep_every`` keeps the solved state as the indexed checkpoint
        1 (:py:meth:`~Solver.recover`); a keyword :py:meth:`Solver.fit` does
        not take is a ``TypeError``, as for the gradient solvers.

        Returns:
            :py:attr:`log`: one row (epoch 0) with ``train_loss``, ``val_*``,
            ``alpha_median`` (relative) and ``cv_score`` (mean over neurons of
            the chosen alphas' cross-validated scores), ``seconds``.
        """
        unknown = sorted(set(epoch_options) - set(inspect.signature(Solver.fit).parameters))
        if unknown:
            raise TypeError(f"fit() got unexpected keyword argument(s) {unknown}; it takes those of Solver.fit.")
        check_count(keep_every, "keep_every", 1, allow_none=True)
        if keep_every is not None and logdir is None:
            raise ValueError("keep_every needs a logdir to write the indexed checkpoints into.")
        check_lags_fit_stimuli(self.model, loader)
        self.logdir_ = None if logdir is None else Path(logdir)
        if logdir is None:
            return self._solve_and_report(loader, valid_loader, None, keep_every)
        with claim_logdir(logdir):
            from strfsolver.solver.recovery import clear_indexed

            clear_indexed(logdir)  # every ridge fit is fresh
            return self._solve_and_report(loader, valid_loader, Path(logdir), keep_every)

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

    def _solve_and_report(self, loader, valid_loader, logdir: Optional[Path], keep_every: Optional[int] = None) -> List[Dict[str, Any]]:
        start = time.perf_counter()
        with warnings.catch_warnings():
            # no early stopping here: the monitor only names the score the log reports
            warnings.simplefilter("ignore", UserWarning)
            self.monitor_, self.mode_ = self._resolve_monitor(valid_loader is not None)
        self._start_fresh()
        self._fit_standardizer(loader)
        self.solve(loader)
        train = self.validation(loader)
        row: Dict[str, Any] = {"epoch": 0, "train_loss": train["loss"], "lr": 0.0}
        for name in self.metrics:
            row[f"train_{name}"] = float(train[name].nanmean())
        if valid_loader is not None:
            self.last_validation_ = self.validation(valid_loader)
            row["val_loss"] = self.last_validation_["loss"]
            row.update({f"val_{name}": float(self.last_validation_[name].nanmean()) for name in self.metrics})
        row["alpha_median"] = float(self.relative_alphas_.median())
        if self.cv_scores_ is not None:
            chosen = self.cv_scores_.gather(0, self._chosen_index().unsqueeze(0))[0]
            row["cv_score"] = float(chosen.nanmean())
        row["seconds"] = time.perf_counter() - start
        state = self.training_state_
        state.epoch, state.best_epoch, state.stop_reason = 1, 0, "closed form"
        state.best_score = float(row[self.monitor_]) if self.monitor_ in row else None
        state.best_model = copy_state(self.model)
        self.log = [row]
        reporter = Reporter(self.loggers, self.tqdm_on, 1, 0, self.monitor_)
        final = None
        try:
            reporter(row)
            call_on_epoch_end(self.on_epoch_end, row)
            if logdir is not None:
                saved = self.state_dict()
                _checkpoint.save_checkpoint(logdir / _checkpoint.BEST, saved)
                _checkpoint.save_checkpoint(logdir / _checkpoint.LAST, saved)
                if keep_every is not None:
                    from strfsolver.solver.recovery import save_indexed

                    save_indexed(logdir, 1, saved)
            final = dict(row, best_epoch=0, stop_reason="closed form")
        finally:
            reporter.close(final)
        return self.log

    def _chosen_index(self) -> Tensor:
        grid = self.alpha_grid_.to(self.alphas_)
        return (self.alphas_.unsqueeze(0) - grid.unsqueeze(1)).abs().argmin(0)
