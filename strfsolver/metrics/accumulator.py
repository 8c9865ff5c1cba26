"""Streaming metrics: :class:`MetricAccumulator` merges per-neuron sufficient statistics batch by batch."""

from __future__ import annotations

from typing import Dict, Iterable, NamedTuple, Optional, Union

import torch

from strfsolver.metrics.checks import _check_inputs, _check_responses, _shape
from strfsolver.metrics.formulas import METRICS, _eps, _finalize, _needs, available_metrics
from strfsolver.metrics.functional import psth
from strfsolver.metrics.statistics import _merge_stats, _stats, _Stats
from strfsolver.metrics.summaries import SummarisedResponses

__all__ = ["ResponseSummary", "MetricAccumulator"]

Tensor = torch.Tensor


class ResponseSummary(NamedTuple):
    """The prediction-free part of a batch, from :py:meth:`MetricAccumulator.summarize`.

    Attributes:
        psth: ``(B, N, 1, T)``, NaN where no repeat is valid: float64 (exact
            for float32 responses) when computed from the repeats, the stored
            float32 PSTH for a summarised dataset's batch.
        stats: Per-neuron statistics of the responses alone (signal and
            noise power, split halves), float64.
        metrics: The metric names it serves.
    """

    psth: Tensor
    stats: "_Stats"
    metrics: tuple


class MetricAccumulator:
    """Streaming metrics from per-neuron sufficient statistics.

    Feed it batches with :meth:`update`; :meth:`compute` returns the same
    values as the one-shot functions on the concatenation of all batches,
    whatever the batch sizes and paddings (a batch must hold whole stimuli,
    which :func:`strfsolver.data.make_loader` guarantees). Nothing of size
    ``T`` or ``R`` is kept: per neuron, the count, means, centred sums of
    squares and cross-product of (pred, PSTH) and of the two half-PSTHs
    (merged with Chan et al.'s pairwise update, so float32 inputs lose no
    precision), the sum of squared residuals, and the ``T_v``-weighted sums of
    per-stimulus signal and total power. Statistics and the arithmetic are
    float64, on the device of the data: float32 responses with a large offset
    (1e4 + a small signal) score as their float64 copy does.

    Args:
        metrics: Names among :func:`available_metrics` (``"cc"``,
            ``"cc_norm"`` (Schoppe), ``"cc_norm_hsu"``, ``"fve"``,
            ``"signal_power"``, ``"noise_power"``, ``"snr"``,
            ``"total_power"``), or one name.

    Example:

        >>> import torch
        >>> from strfsolver.metrics import MetricAccumulator, corrcoef
        >>> g = torch.Generator().manual_seed(0)
        >>> responses = torch.rand(6, 3, 4, 20, generator=g)
        >>> pred = torch.rand(6, 3, 1, 20, generator=g)
        >>> acc = MetricAccumulator(("cc", "cc_norm"))
        >>> for start in (0, 2, 5):
        ...     stop = {0: 2, 2: 5, 5: 6}[start]
        ...     acc.update(pred[start:stop], responses[start:stop])
        >>> torch.allclose(acc.compute()["cc"].float(), corrcoef(pred, responses))
        True
    """

    def __init__(self, metrics: Union[str, Iterable[str]] = ("cc", "cc_norm")):
        if isinstance(metrics, str):
            metrics = (metrics,)
        metrics = tuple(metrics)
        unknown = [name for name in metrics if name not in METRICS]
        if unknown or not metrics:
            raise ValueError(
                f"unknown metric(s) {unknown}; options are {', '.join(available_metrics())}."
                if unknown
                else f"metrics must name at least one of {', '.join(available_metrics())}."
            )
        self.metrics = metrics
        self.reset()

    @torch.no_grad()
    def summarize(self, responses: Tensor) -> "ResponseSummary":
        """What a batch's responses contribute, computed once for any prediction.

        Validation data do not change between epochs, and most of the work
        on them (PSTH, signal and noise power, split halves) does not involve
        the prediction. ``update(pred, summary)`` with the summary of the same
        batch gives the same statistics as ``update(pred, responses)`` while
        touching only ``(B, N, 1, T)`` tensors.

        Args:
            responses: ``(B, N, R, T)``, NaN where missing, or the
                :py:class:`~strfsolver.metrics.SummarisedResponses` of a
                summarised dataset's batch (its PSTH is kept as it is).

        Returns:
            A :py:class:`ResponseSummary` for this accumulator's metrics.
        """
        if isinstance(responses, SummarisedResponses):
            summarised = responses.check()
            stats = summarised.stats.to(summarised.psth.device).pooled()
            return ResponseSummary(summarised.psth.detach(), stats, self.metrics)
        responses = _check_responses(responses).detach()
        need = _needs(self.metrics)
        response_need = dict(need, pairs=False, residual=False)
        stats = _stats(None, responses, None, **response_need, stats_dtype=torch.float64)
        return ResponseSummary(psth(responses.to(torch.float64)), stats, self.metrics)

    def reset(self) -> None:
        """Forget every batch seen so far."""
        self._stats: Optional[_Stats] = None
        self._n_neurons: Optional[int] = None
        self._eps = 0.0
        self.n_batches = 0

    @torch.no_grad()
    def update(self, pred: Tensor, responses: Tensor, mask: Optional[Tensor] = None) -> None:
        """Add one batch of whole stimuli.

        Args:
            pred: ``(B, N, 1, T)`` predictions (detached here).
            responses: ``(B, N, R, T)``, NaN where missing; or a
                :py:class:`ResponseSummary` of them from :meth:`summarize`;
                or a summarised dataset's
                :py:class:`~strfsolver.metrics.SummarisedResponses`.
            mask: Optional bool ``(B, N, 1, T)`` or ``(B, N, T)``.
        """
        summary = None
        if isinstance(responses, SummarisedResponses):
            responses = self.summarize(responses)
        if isinstance(responses, ResponseSummary):
            summary = responses
            if summary.metrics != self.metrics:
                raise ValueError(
                    f"this summary was made for the metrics {summary.metrics} but the accumulator "
                    f"computes {self.metrics}; summarize() with this accumulator."
                )
            responses = summary.psth
        given = pred.dtype if isinstance(pred, Tensor) and pred.is_floating_point() else None
        # the statistics convert pred to float64 one block of rows at a time: a whole promoted
        # copy (a float32 prediction against a validation cache's float64 PSTH: B x N x T x 8
        # bytes) would only add to a validation pass's peak, with the same values
        pred, responses, mask = _check_inputs(pred, responses, mask, promote_pred=False)
        promoted = responses.dtype  # the common dtype: responses are promoted to it
        neurons = responses.shape[1]
        if self._n_neurons is not None and neurons != self._n_neurons:
            raise ValueError(
                f"this accumulator has seen batches of {self._n_neurons} neurons; got "
                f"responses of shape {_shape(responses)} (N = {neurons}). Call reset() "
                f"first to start over with other neurons."
            )
        # degenerate-variance checks use the inputs' precision, as one-shot does (a float32
        # prediction promoted to the float64 PSTH of a summary keeps float32's)
        self._eps = max(self._eps, _eps(promoted), _eps(given) if given is not None else 0.0)
        device = responses.device if self._stats is None else self._stats_device
        pred = pred.detach().to(device)
        responses = responses.detach().to(device)
        if mask is not None:
            mask = mask.to(device)
        if summary is None:
            stats = _stats(pred, responses, mask, **_needs(self.metrics), stats_dtype=torch.float64)
        else:
            # the PSTH is a one-repeat response: its (pred, PSTH) moments are
            # those of the full responses; the rest comes from the summary
            need = _needs(self.metrics)
            paired = _stats(pred, responses, mask, pairs=need["pairs"], residual=need["residual"], stats_dtype=torch.float64)
            stats = _Stats(paired.pairs, paired.ss_res, *summary.stats[2:])
        if self._stats is None:
            self._stats = stats
            self._stats_device = device
            self._n_neurons = neurons
        else:
            self._stats = _merge_stats(self._stats, stats)
        self.n_batches += 1

    def compute(self) -> Dict[str, Tensor]:
        """The requested metrics, each a float64 ``(N,)`` tensor.

        Raises:
            RuntimeError: if no batch was added since construction or reset.
        """
        if self._stats is None:
            raise RuntimeError(
                "MetricAccumulator.compute() needs at least one update(pred, responses) first."
            )
        return _finalize(self._stats, self.metrics, self._eps)

    def __repr__(self) -> str:
        return f"MetricAccumulator(metrics={self.metrics!r}, n_batches={self.n_batches})"
