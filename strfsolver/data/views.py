"""Cheaper views of a :py:class:`~strfsolver.data.PaddedLoader` for solvers that never read the repeats.

The built-in losses and the noise-ceiling-free part of the metrics see a
stimulus' responses only through its PSTH, so a solver whose hooks do not
read each repeat (``Solver.reads_repeats = False``) can train on PSTHs and
validate from statistics computed once:

- :py:class:`PsthView` (defined in :py:mod:`strfsolver.data.loader`, beside
  the loader it views) serves a loader's batches in the loader's own order
  with each stimulus' PSTH ``(B, N, 1, T)`` in place of its ``R`` repeats:
  a step reads ``R`` times less data and the loss is unchanged;
- :py:class:`ValidationCache` keeps, for a fixed-order validation loader,
  each batch's PSTH and the prediction-free part of its metrics
  (:py:meth:`~strfsolver.metrics.MetricAccumulator.summarize`), so later
  validations never touch the repeats.

Both belong to their caller (a solver builds them at the start of ``fit`` and
drops them at its end) and advance the loader's epoch counter exactly as
iterating the loader would, so the loader's ``state_dict()``, and with it
resume, does not depend on whether a view was used.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from strfsolver.data.collate import metric_responses, recorded_responses
from strfsolver.data.loader import PaddedLoader, PsthView  # noqa: F401  (PsthView lives beside the loader it views)
from strfsolver.metrics import MetricAccumulator, ResponseSummary

__all__ = ["PsthView", "ValidationCache"]


class ValidationCache:
    """Fixed-order validation batches with their PSTHs and response summaries, computed once.

    The first pass iterates the loader and keeps, per batch, the batch with
    its PSTH as ``responses`` and the batch's
    :py:class:`~strfsolver.metrics.ResponseSummary` for ``metrics``; later
    passes replay them and only count the loader's epoch.

    Args:
        loader: A :py:class:`PaddedLoader` with ``shuffle=False``.
        metrics: The metric names the summaries serve.
        prepare: ``prepare(batch) -> batch`` applied to each batch once, before
            anything is computed (the solver's move to its device and dtype);
            by default entries cleared in ``valid_mask`` become NaN.
    """

    def __init__(self, loader: PaddedLoader, metrics: Sequence[str], prepare: Optional[Callable[[Dict[str, Any]], Dict[str, Any]]] = None):
        if not self.applies_to(loader):
            raise ValueError("a validation cache needs a strfsolver.data.PaddedLoader with shuffle=False.")
        self.loader = loader
        self.metrics = tuple(metrics)
        self.prepare = prepare if prepare is not None else (lambda batch: dict(batch, responses=recorded_responses(batch)))
        self._entries: Optional[List[Tuple[Dict[str, Any], ResponseSummary]]] = None

    @staticmethod
    def applies_to(loader: Any) -> bool:
        """Whether ``loader`` serves the same batches every epoch (a PaddedLoader in fixed order) and
        a cache saves work: a summarised dataset's batches carry their summaries already."""
        return isinstance(loader, PaddedLoader) and not loader.shuffle and loader.dataset.repeats != "summary"

    def batches(self) -> Iterator[Tuple[Dict[str, Any], ResponseSummary]]:
        """``(batch, summary)`` pairs of one validation pass; the batch's ``responses`` is its PSTH."""
        if self._entries is None:
            accumulator = MetricAccumulator(self.metrics)
            entries = []
            for batch in self.loader:
                batch = self.prepare(batch)
                summary = accumulator.summarize(metric_responses(batch))
                psth = summary.psth.to(batch["responses"].dtype)  # the summary's is float64, for the scores
                entries.append((dict(batch, responses=psth, valid_mask=~psth.isnan()), summary))
            self._entries = entries
        else:
            self.loader.set_epoch(self.loader.epoch + 1)
        return iter(self._entries)
