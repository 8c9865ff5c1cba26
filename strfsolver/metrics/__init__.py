"""Exact, vectorized, NaN-aware metrics (docs/conventions.md §2).

Every function takes ``pred`` of shape ``(B, N, 1, T)`` (one prediction per
stimulus, neuron and time bin) and ``responses`` of shape ``(B, N, R, T)``
(R repeats, NaN wherever nothing was recorded: padded bins, missing repeats).
Values are per neuron; stimuli are concatenated, never averaged one by one.
No function loops over neurons, stimuli or repeats in Python.

Definitions, for one neuron (``b`` indexes stimuli, ``t`` bins, ``r`` repeats):

* **PSTH** ``psth[b, t] = nanmean_r responses[b, r, t]``; a position ``(b, t)``
  is *valid* where the PSTH is not NaN, i.e. where at least one repeat is
  valid. An explicit ``mask`` restricts the valid positions further
  (``mask & ~isnan(psth)``): a bin where no repeat was recorded carries no
  data, whatever the mask says.
* **corrcoef**: Pearson correlation of ``pred`` and ``psth`` over all valid
  ``(b, t)`` taken together. NaN with fewer than 2 valid positions or when
  either variance is ~0 (its standard deviation below 100 machine epsilons of
  its mean's magnitude, i.e. indistinguishable from rounding).
* **signal power** (Sahani & Linden 2003), per stimulus ``b``: let ``R_v`` be
  the number of repeats with at least one valid bin and ``T_v`` the number of
  bins with at least one valid repeat. Then::

      SP_b = (R_v * var_t(psth) - mean_r var_t(response_r)) / (R_v - 1)
      TP_b = mean_r var_t(response_r)

  with unbiased (ddof = 1) variances over time. Where only some repeats are
  valid in a bin, the two variances use the data each of them has:
  ``var_t(psth)`` runs over the ``T_v`` bins, the PSTH of a bin being the mean
  of the repeats valid in that bin; ``var_t(response_r)`` runs over repeat
  ``r``'s own valid bins. A repeat with fewer than 2 valid bins has no
  variance and is left out of ``mean_r`` (it still counts in ``R_v``, which
  counts repeats with any valid bin). A stimulus contributes only when
  ``R_v >= 2``, ``T_v >= 2`` and at least one repeat has a variance; across
  stimuli ``SP = sum_b T_v,b * SP_b / sum_b T_v,b`` over contributing stimuli
  (NaN when none contributes), the same weighting for total power,
  ``NP = TP - SP`` and ``snr = SP / NP`` (NaN where ``NP <= 0``). With
  complete data these are exactly Sahani & Linden's estimators.
* **normalized_corrcoef, "schoppe"** (Schoppe et al. 2016):
  ``cov(pred, psth) / sqrt(var(pred) * SP)``, ``cov`` and ``var`` unbiased
  over all valid ``(b, t)``. NaN where ``SP <= 0``, ``var(pred)`` ~0 or fewer
  than 2 valid positions. Not clipped: a noisy SP estimate can push it above 1.
* **normalized_corrcoef, "hsu"** (Hsu, Borst & Theunissen 2004):
  ``corrcoef / CCmax``. The repeats are split by index parity (even ``r`` vs
  odd ``r``, counted in the R axis of the tensor, so padding repeats at the
  end never moves one to the other half); each half's PSTH is its nanmean.
  ``CC_half`` is the Pearson correlation of the two half-PSTHs over all
  ``(b, t)`` where both are valid, and the Spearman-Brown correction for
  halving the number of trials gives ``CCmax = sqrt(2 CC_half / (1 + CC_half))``.
  NaN where ``CC_half <= 0`` or is undefined.
* For both methods, a neuron that has no stimulus with 2 valid repeats
  (``R_v >= 2``) has no noise ceiling to correct for: its raw ``corrcoef`` is
  returned. The ceilings (SP, CCmax) depend on ``responses`` only; ``mask``
  selects the positions where the prediction is compared.
* **fve**: fraction of the PSTH's variance explained,
  ``1 - sum (pred - psth)^2 / sum (psth - mean psth)^2`` over the valid
  positions; NaN where the PSTH's variance is ~0 or fewer than 2 positions.

``reduction``: ``"none"`` returns the ``(N,)`` per-neuron values, ``"mean"``
and ``"sum"`` their nanmean and nansum over neurons.

One-shot functions compute in the inputs' floating dtype (promoted between
``pred`` and ``responses``) with two-pass (centered) formulas and are
differentiable with respect to ``pred``. :class:`MetricAccumulator` computes
the same numbers batch by batch from per-neuron sufficient statistics held in
float64.

Example:

    >>> import torch
    >>> from strfsolver import metrics
    >>> responses = torch.tensor([[[[1., 2., 3.], [1., 4., 3.]]]])  # (1, 1, 2, 3)
    >>> pred = torch.tensor([[[[0., 1., 1.]]]])
    >>> round(metrics.signal_power(responses).item(), 4)
    1.0
    >>> round(metrics.normalized_corrcoef(pred, responses).item(), 4)
    1.1547
"""

from strfsolver.metrics.accumulator import MetricAccumulator, ResponseSummary
from strfsolver.metrics.checks import REDUCTIONS
from strfsolver.metrics.summaries import RepeatStatistics, SummarisedResponses, repeat_statistics
# private helpers that strfsolver.losses and strfsolver.solver import from here
from strfsolver.metrics.checks import _check_inputs, _check_reduction, _reduce  # noqa: F401
from strfsolver.metrics.formulas import METRICS, available_metrics
from strfsolver.metrics.functional import (
    METHODS,
    corrcoef,
    fve,
    noise_power,
    normalized_corrcoef,
    psth,
    signal_power,
    snr,
    total_power,
)

__all__ = [
    "METRICS",
    "REDUCTIONS",
    "METHODS",
    "available_metrics",
    "psth",
    "ResponseSummary",
    "RepeatStatistics",
    "SummarisedResponses",
    "repeat_statistics",
    "corrcoef",
    "normalized_corrcoef",
    "signal_power",
    "total_power",
    "noise_power",
    "snr",
    "fve",
    "MetricAccumulator",
]
