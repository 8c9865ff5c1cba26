"""The level of the training predictions in every epoch dict: ``pred_mean``, ``pred_min``, ``pred_max``.

flyvis records its network's mean, minimum and maximum activity during
training, the first sign of a silent or runaway model. A gradient fit here
records the same of its predictions: :py:class:`PredictionStatistics` folds
in the prediction that every :py:meth:`~strfsolver.solver.Solver.step`
already returns (``out["pred"]``, made before that step's update), over the
recorded bins only (:py:func:`~strfsolver.solver.batches.recorded_bins`:
padding and unrecorded entries are out). The running sums stay on the
device, so the statistics cost no extra pass and no host synchronisation
until the epoch ends. A custom ``step`` that returns no ``"pred"`` gives
epoch dicts without these keys.
"""

from __future__ import annotations

import math
from typing import Dict, Optional

import torch
from torch import Tensor

from strfsolver.solver.batches import recorded_bins

__all__ = ["PredictionStatistics", "PREDICTION_KEYS"]

#: the keys :py:class:`PredictionStatistics` adds to an epoch dict
PREDICTION_KEYS = ("pred_mean", "pred_min", "pred_max")


class PredictionStatistics:
    """Mean, minimum and maximum of the training predictions over an epoch's recorded bins."""

    def __init__(self):
        self._sum: Optional[Tensor] = None
        self._count: Optional[Tensor] = None
        self._min: Optional[Tensor] = None
        self._max: Optional[Tensor] = None

    def update(self, pred: Tensor, responses: Tensor) -> None:
        """Fold in one batch: ``pred`` ``(B, N, 1, T)`` and the prepared batch's responses (NaN where unrecorded)."""
        pred = pred.detach()
        recorded = recorded_bins(responses)
        # a batch's sum in its dtype, the epoch's in float64: an epoch of many bins must not lose the mean's digits
        # one (B, N, 1, T) buffer for the three masked copies, rather than one each: every step makes
        # them, and each fresh buffer of that size is one more hole in the heap at a step's peak
        masked = torch.where(recorded, pred, torch.zeros((), dtype=pred.dtype, device=pred.device))
        total = masked.sum().double()
        count = recorded.expand_as(pred).sum()
        low = torch.where(recorded, pred, torch.full((), math.inf, dtype=pred.dtype, device=pred.device), out=masked).amin()
        high = torch.where(recorded, pred, torch.full((), -math.inf, dtype=pred.dtype, device=pred.device), out=masked).amax()
        if self._sum is None:
            self._sum, self._count, self._min, self._max = total, count, low, high
        else:
            self._sum, self._count = self._sum + total, self._count + count
            self._min, self._max = torch.minimum(self._min, low), torch.maximum(self._max, high)

    def compute(self) -> Dict[str, float]:
        """``{"pred_mean", "pred_min", "pred_max"}`` as floats (NaN without a recorded bin); ``{}`` before any batch."""
        if self._sum is None:
            return {}
        total, count, low, high = torch.stack([self._sum, self._count.double(), self._min.double(), self._max.double()]).tolist()
        if count == 0:
            return dict.fromkeys(PREDICTION_KEYS, math.nan)
        return dict(zip(PREDICTION_KEYS, (total / count, low, high)))
