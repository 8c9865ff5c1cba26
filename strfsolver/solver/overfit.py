"""flyvis's overfit check: train on a few batches, again and again, to see that the model can fit them.

flyvis's ``MultiTaskSolver.train(overfit=True)`` swaps the training data for
a one-sequence loader, a quick test of the architecture and the settings: a
model that cannot drive its loss down on a single batch will not learn from
the whole set either. Here it is ``fit(loader, overfit_batches=n)``: the
fit takes the first ``n`` batches of the loader's next epoch once
(:py:class:`RepeatedBatches`) and trains on exactly those in every epoch,
so ``log[-1]["train_loss"]`` against ``log[0]["train_loss"]`` shows whether
the model can fit them. Everything else is the usual fit (validation on
``valid_loader`` if one is given, early stopping, checkpoints); without a
validation loader, monitor ``"train_loss"``.
"""

from __future__ import annotations

import itertools
from typing import Any, Dict, Iterable, Iterator, List

from strfsolver.utils.checks import check_count

__all__ = ["RepeatedBatches"]


class RepeatedBatches:
    """The first ``n`` batches of one pass over ``loader``, served again at every iteration.

    Args:
        loader: The training batches (a loader, or a fit's PSTH view of one).
        n: How many batches to keep (>= 1).

    Raises:
        ValueError: if ``n`` is not an integer >= 1, or the loader yields fewer than ``n`` batches.
    """

    def __init__(self, loader: Iterable[Dict[str, Any]], n: int):
        n = check_count(n, "overfit_batches", 1)
        # taken once: every epoch then trains on the very same tensors, in the same order
        self.batches: List[Dict[str, Any]] = list(itertools.islice(iter(loader), n))
        if len(self.batches) < n:
            raise ValueError(f"overfit_batches={n}, but the training loader yields only {len(self.batches)} batch(es) in an epoch.")

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        return iter(self.batches)
