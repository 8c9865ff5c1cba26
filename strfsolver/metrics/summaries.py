"""What every built-in metric needs from the repeats of each stimulus, without the repeats.

Signal, noise and total power, Schoppe's and Hsu's ``cc_norm`` read the
repeats only through a few numbers per (stimulus, neuron): whether two repeats
were recorded, the stimulus' signal and total power and their weight (its
valid bins), and the moments of its two split-half PSTHs. Pooling these rows
over stimuli is exact (sums, and Chan et al.'s merge of centred moments), so
a dataset that keeps only the PSTH and these rows per stimulus
(``NeuralDataset(..., repeats="summary")``) scores as the one with every
repeat does, for any subset of its stimuli and neurons.

:py:class:`SummarisedResponses` is the pair (PSTH, rows) of a batch; a
:py:class:`~strfsolver.metrics.MetricAccumulator` takes it in place of the
responses tensor.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from strfsolver.metrics.checks import _check_responses, _shape
from strfsolver.metrics.formulas import _finalize
from strfsolver.metrics.statistics import _PairMoments, _pool_rows, _row_stats, _Stats

__all__ = ["RepeatStatistics", "SummarisedResponses", "repeat_statistics"]

Tensor = torch.Tensor


class RepeatStatistics(NamedTuple):
    """Per-(stimulus, neuron) statistics of the repeats, each ``(S, N)`` (float64, bool for ``has_repeats``).

    Attributes:
        has_repeats: Two or more repeats have a recorded bin.
        weight: The stimulus' valid bins ``T_v`` where its power is defined, else 0.
        signal: Its signal power ``SP_b`` (0 where the weight is 0).
        total: Its total power ``TP_b`` (0 where the weight is 0).
        half_count, half_mean_even, half_mean_odd, half_m2_even, half_m2_odd, half_cross:
            Count, means, centred sums of squares and cross-product of the
            even- and odd-repeat PSTHs over the bins where both are recorded.
    """

    has_repeats: Tensor
    weight: Tensor
    signal: Tensor
    total: Tensor
    half_count: Tensor
    half_mean_even: Tensor
    half_mean_odd: Tensor
    half_m2_even: Tensor
    half_m2_odd: Tensor
    half_cross: Tensor

    def index_select(self, dim: int, index: Tensor) -> "RepeatStatistics":
        """The rows (``dim=0``: stimuli) or columns (``dim=1``: neurons) at ``index``."""
        return RepeatStatistics(*(field.index_select(dim, index.to(field.device)) for field in self))

    def to(self, device) -> "RepeatStatistics":
        return RepeatStatistics(*(field.to(device) for field in self))

    @staticmethod
    def cat(parts) -> "RepeatStatistics":
        """Stimuli of several parts, in order."""
        return RepeatStatistics(*(torch.cat(fields) for fields in zip(*parts)))

    def pooled(self) -> _Stats:
        """Per-neuron statistics of all stimuli together (what a metric reads)."""
        halves = _PairMoments(*self[4:])
        rows = {"has_repeats": self.has_repeats, "weight": self.weight, "signal": self.signal,
                "total": self.total, "halves": halves}
        return _pool_rows(rows)

    def response_metrics(self, names=("snr",)) -> dict:
        """Metrics of the responses alone (``signal_power``, ``noise_power``, ``total_power``, ``snr``),
        ``{name: (N,) float64}`` over all stimuli."""
        allowed = ("signal_power", "noise_power", "total_power", "snr")
        unknown = [name for name in names if name not in allowed]
        if unknown:
            raise ValueError(f"response_metrics computes {list(allowed)}, which need no prediction; got {unknown}.")
        return _finalize(self.pooled(), names, 0.0)


@torch.no_grad()
def repeat_statistics(responses: Tensor) -> RepeatStatistics:
    """The :py:class:`RepeatStatistics` of ``responses`` ``(S, N, R, T)`` (NaN where not recorded), in float64."""
    responses = _check_responses(responses).detach()
    rows = _row_stats(None, responses, None, power=True, halves=True, repeats=True, stats_dtype=torch.float64)
    return RepeatStatistics(rows["has_repeats"], rows["weight"], rows["signal"], rows["total"], *rows["halves"])


class SummarisedResponses(NamedTuple):
    """A batch's responses as a summarised dataset serves them.

    Attributes:
        psth: ``(B, N, 1, T)``, NaN where no repeat was recorded.
        stats: Its stimuli's :py:class:`RepeatStatistics`, ``(B, N)`` each.
    """

    psth: Tensor
    stats: RepeatStatistics

    def check(self) -> "SummarisedResponses":
        """Itself, once its parts are seen to belong together."""
        psth = _check_responses(self.psth, "the summarised PSTH")
        if psth.shape[2] != 1:
            raise ValueError(f"a summarised batch holds one PSTH per stimulus, shape (B, N, 1, T); got {_shape(psth)}.")
        if not isinstance(self.stats, RepeatStatistics) or tuple(self.stats.weight.shape) != tuple(psth.shape[:2]):
            got = tuple(self.stats.weight.shape) if isinstance(self.stats, RepeatStatistics) else type(self.stats).__name__
            raise ValueError(f"the repeat statistics of a summarised batch must be (B, N) = {tuple(psth.shape[:2])}, got {got}.")
        return SummarisedResponses(psth, self.stats)
