"""Linear STRF models fitted in closed form: the bridge from models to the ridge core.

:py:func:`check_ridge_model` tells whether a model's prediction is a linear
STRF of fixed features; :py:func:`ridge_features` streams a loader into the
sufficient statistics of those features (:py:class:`RidgeStatistics`);
:py:func:`write_solution` puts a :py:class:`RidgeFit` into the model; and
:py:func:`ridge_initialize` is the ``init="ridge"`` start of the gradient
solvers. The ``"ridge"`` solver (:py:mod:`strfsolver.solver.ridge`) is built
on these.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Optional

import numpy as np
import torch
from torch import Tensor, nn

from strfsolver.metrics import psth
from strfsolver.ridge.solve import RidgeFit, fit_ridge
from strfsolver.ridge.statistics import RidgeStatistics
from strfsolver.utils.checks import short_repr

__all__ = ["check_ridge_model", "ridge_features", "loader_stimulus_count", "write_solution", "ridge_initialize"]


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
            f"{type(readout.kernel).__name__} with normalization={short_repr(readout.normalization)}."
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
        n_stims: Stimuli with a recorded bin the loader holds (for pooling by
            fold; see :py:func:`loader_stimulus_count`), or ``None``. Only
            those are dealt into folds; a fold left without one is refused.
        folds: Pool the stimuli into this many contiguous groups (one per
            fold, the way :py:func:`~strfsolver.ridge.fit_ridge` splits ``cv=K``),
            or ``None`` for one group per stimulus.
        **options: Options of :py:class:`~strfsolver.ridge.RidgeStatistics`.
    """
    was_training = model.training
    model.eval()
    stats: Optional[RidgeStatistics] = None
    fold_of = None
    if folds is not None and n_stims is not None and n_stims > 0:
        fold_of = np.concatenate([np.full(len(chunk), k) for k, chunk in enumerate(np.array_split(np.arange(n_stims), folds))])
    index = 0  # counts the stimuli with a recorded bin: only they are dealt into folds
    try:
        for batch in loader:
            batch = prepare(batch)
            features = model.strf_features(batch["stims"])  # (B, C', F', T)
            targets = psth(batch["responses"])[:, :, 0]  # (B, N, T)
            if stats is None:
                stats = RidgeStatistics(model.n_lags, n_channels=features.shape[1], device=features.device, **options)
            for b in range(features.shape[0]):
                bins = _recorded_length(targets[b])
                if bins > 0:
                    group = None if fold_of is None else int(fold_of[min(index, len(fold_of) - 1)])
                    stats.add(features[b, ..., :bins], targets[b, :, :bins], group=group)
                    index += 1
    finally:
        model.train(was_training)
    if stats is None or stats.n_stimuli == 0:
        raise ValueError("the training loader yielded no stimulus with a recorded bin.")
    if fold_of is not None and stats.n_groups < folds:
        raise ValueError(
            f"cv={folds} folds need a training stimulus with a recorded bin in every fold, but the loader yielded "
            f"{stats.n_stimuli} recorded training stimuli ({stats.n_groups} folds hold one); use fewer folds or cv='loso'."
        )
    return stats


def loader_stimulus_count(loader: Any, recorded: bool = False) -> Optional[int]:
    """Stimuli of the loader's dataset, or ``None`` when it does not say.

    With ``recorded=True``, only the stimuli where some neuron has a recorded
    (non-NaN) bin count: the others add nothing to the ridge statistics, so
    they must not count toward its folds.
    """
    dataset = getattr(loader, "dataset", None)
    if dataset is None or not hasattr(dataset, "__len__"):
        return None
    if not recorded:
        return len(dataset)
    table = getattr(dataset, "recorded", None)  # a NeuralDataset's (S, N) table: summarised or on-disk data have no repeats to scan
    if isinstance(table, torch.Tensor):
        return int(table.any(1).sum())
    try:
        responses = getattr(dataset, "responses", None)
        if responses is None or len(responses) != len(dataset):
            responses = [dataset[i]["responses"] for i in range(len(dataset))]
        return sum(1 for r in responses if not bool(torch.as_tensor(r).isnan().all()))
    except (TypeError, KeyError, IndexError, AttributeError):
        return None  # a dataset that does not show its responses: ridge_features checks the folds it fills


def write_solution(model: nn.Module, result: RidgeFit) -> None:
    """Write a solved STRF (and intercept) into the model's readout."""
    readout = model.readout
    with torch.no_grad():
        readout.kernel.weight.copy_(result.strf().to(readout.kernel.weight))
        if readout.bias is not None:
            readout.bias.copy_(result.intercept.to(readout.bias))
    # written in place: an enclosing autocast region must not keep serving the old weights' casts
    torch.clear_autocast_cache()


@torch.no_grad()
def ridge_initialize(model: nn.Module, loader: Iterable[Dict[str, Any]], prepare=None, **options: Any) -> RidgeFit:
    """Start a gradient fit from the ridge STRF: the ``init="ridge"`` of the gradient solvers.

    Fits the model's STRF stage in closed form (5-fold cross-validated
    ridge over stimuli, ``"loso"`` with fewer than 5 stimuli; ``options``
    go to :py:func:`~strfsolver.ridge.fit_ridge`), writes kernel and bias into
    the model, and sets a :py:class:`~strfsolver.nn.activations.ParametricSoftplus`
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
    n_stims = loader_stimulus_count(loader, recorded=True)
    cv = options.pop("cv", 5 if n_stims is None or n_stims >= 5 else "loso")
    folds = cv if isinstance(cv, int) else None
    stats = ridge_features(model, loader, prepare, n_stims, folds)
    result = fit_ridge(stats, cv=cv, **options)
    write_solution(model, result)
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
