"""What a finished fit says about itself: advice read from its log.

A fit that ends badly rarely fails loudly: it stops on patience with a
validation score that peaked at the second epoch, or it runs out of epochs
while still improving, and the user concludes the model is worse than it is.
:py:func:`diagnose` reads the epoch dicts of a fit (and, when given, the best
state's score on the training data) and returns one sentence per symptom,
each naming the numbers and what to change. The solver stores them in
``diagnosis_``, adds them to the last epoch dict under ``"diagnosis"``, shows
them in the progress bar and warns with :py:class:`FitWarning`.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence

__all__ = ["FitWarning", "diagnose", "EARLY_PEAK_EPOCHS", "TRAIN_VALID_GAP"]

#: a best epoch among the first this many evaluated epochs of a fit that then ran on is "early"
EARLY_PEAK_EPOCHS = 3
#: a training score this far above the validation score (correlation units) is a generalisation gap
TRAIN_VALID_GAP = 0.2


class FitWarning(UserWarning):
    """A fit finished, but its log shows a symptom that usually costs fit quality."""


def _evaluated(log: Sequence[Dict[str, Any]], monitor: str) -> List[Dict[str, Any]]:
    return [row for row in log if isinstance(row.get(monitor), (int, float)) and math.isfinite(float(row[monitor]))]


def diagnose(
    log: Sequence[Dict[str, Any]],
    monitor: str,
    stop_reason: Optional[str],
    best_epoch: Optional[int],
    train_score: Optional[float] = None,
    patience: Optional[int] = None,
) -> List[str]:
    """Advice on a finished fit, one sentence per symptom found in its log.

    Args:
        log: The epoch dicts of the fit (``epoch``, ``lr``, the monitor, ...).
        monitor: The key that chose the best epoch.
        stop_reason: Why the fit ended (``"patience"``, ``"max_epochs"``, ...).
        best_epoch: The best epoch (an ``epoch`` value of the log), or ``None``.
        train_score: The monitored metric of the best state on the training
            data (mean over neurons), or ``None`` to skip that check.
        patience: The early-stopping patience, for the "still improving" test.

    Returns:
        Sentences (possibly none). The symptoms: a fit stopped on patience
        with its learning rate never lowered; a best epoch among the first
        :data:`EARLY_PEAK_EPOCHS` evaluated ones of a longer fit; a fit ended
        by ``max_epochs`` (after 3 evaluated epochs or more) that improved
        within its last ``max(2, patience // 4)`` evaluated epochs; a
        training score :data:`TRAIN_VALID_GAP` or more above the validation
        score.
    """
    rows = _evaluated(log, monitor)
    advice: List[str] = []
    if not rows or best_epoch is None:
        return advice
    lrs = [float(row["lr"]) for row in log if "lr" in row]
    if stop_reason == "patience" and lrs and max(lrs) == min(lrs):
        advice.append(
            f"the fit stopped on patience with its learning rate never lowered (still lr={lrs[0]:.3g}): the "
            f"{monitor} plateau may only need a smaller step; let the plateau rule act (plateau_patience=None) "
            "or lower lr."
        )
    position = next((i for i, row in enumerate(rows) if row.get("epoch") == best_epoch), None)
    if stop_reason == "patience" and position is not None and position < EARLY_PEAK_EPOCHS and len(rows) > 2 * EARLY_PEAK_EPOCHS:
        advice.append(
            f"{monitor} peaked at epoch {best_epoch} and never improved over the {len(rows) - position - 1} evaluated "
            f"epochs after it: the learning rate (lr={lrs[0]:.3g} at the start) is likely too high for this model and "
            "data (try a third of it), or the validation data are too few to rank epochs."
            if lrs else
            f"{monitor} peaked at epoch {best_epoch} and never improved after it: the step size is likely too large."
        )
    window = max(2, (patience or 10) // 4)
    if stop_reason == "max_epochs" and position is not None and len(rows) >= 3 and position >= len(rows) - window:
        advice.append(
            f"{monitor} was still improving when max_epochs ended the fit (best epoch {best_epoch} of {len(rows)} "
            "evaluated): raise max_epochs, or resume the fit, to let early stopping end it."
        )
    if train_score is not None and monitor.startswith("val_") and math.isfinite(train_score):
        valid_score = float(rows[position][monitor]) if position is not None else float("nan")
        if math.isfinite(valid_score) and train_score - valid_score >= TRAIN_VALID_GAP:
            name = monitor[len("val_"):]
            advice.append(
                f"the best state scores {name} {train_score:.3f} on the training data but {valid_score:.3f} on the "
                "validation data: the model fits what does not generalise; add a penalty (penalties=, weight_decay=), "
                "a smaller model, or more training stimuli."
            )
    return advice
