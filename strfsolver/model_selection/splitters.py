"""Cross-validation splitters that keep every stimulus whole.

A neural response is autocorrelated within a stimulus: a fold that cuts a
stimulus in two scores the model on bins it has almost seen. These
splitters assign whole stimuli (or whole groups of stimuli) to folds, and
every stimulus is held out exactly once (docs/conventions.md §7).

They work on a :py:class:`~strfsolver.data.NeuralDataset` (one unit per
stimulus) and, with scikit-learn's ``split(X, y, groups)`` protocol, as the
``cv=`` of ``GridSearchCV`` or ``cross_val_score`` around the estimator:
with a list ``X`` (one array per stimulus) each element is a unit; with a
2-D ``X`` (rows are time bins) ``groups`` must say which stimulus each row
belongs to.
"""

from __future__ import annotations

import numbers
from typing import Any, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from strfsolver.utils.checks import check_count, check_flag
from strfsolver.utils.checks import short_repr

__all__ = ["StimulusKFold", "LeaveOneStimulusOut", "check_cv"]


def _unit_groups(X: Any, groups: Optional[Sequence[Any]]) -> np.ndarray:
    """One group label per unit of ``X`` (stimulus, list element or row)."""
    from strfsolver.data import NeuralDataset

    if isinstance(X, NeuralDataset):
        n_units = X.n_stims
    elif isinstance(X, (list, tuple)):
        n_units = len(X)
    elif hasattr(X, "shape") and len(getattr(X, "shape")) >= 1:
        n_units = int(X.shape[0])
        if groups is None:
            raise ValueError(
                f"groups is required when X is an array of shape {tuple(X.shape)}: its rows are time bins, and a "
                "stimulus-grouped split needs to know the stimulus of each row (pass groups=stimulus ids, or a list X "
                "with one array per stimulus)."
            )
    elif isinstance(X, numbers.Integral) and not isinstance(X, bool):
        n_units = int(X)
    else:
        raise ValueError(
            f"X must be a NeuralDataset, a list with one array per stimulus, an array with groups, or a number of "
            f"stimuli; got {type(X).__name__}."
        )
    if groups is None:
        return np.arange(n_units)
    labels = np.asarray(groups)
    if labels.ndim != 1 or len(labels) != n_units:
        raise ValueError(f"groups must hold one label per unit of X ({n_units}), got shape {labels.shape}.")
    return labels


def _unique_in_order(labels: np.ndarray) -> List[Any]:
    seen = {}
    for label in labels.tolist():
        seen.setdefault(label, None)
    return list(seen)


class _GroupedSplitter:
    """The shared ``split`` / ``get_n_splits`` machinery: subclasses say which groups each fold holds out."""

    def _held_out_groups(self, groups: List[Any]) -> List[List[Any]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def split(self, X: Any, y: Any = None, groups: Optional[Sequence[Any]] = None) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
        """Yield ``(train_indices, test_indices)`` of the units of ``X``, one pair per fold.

        Args:
            X: A :py:class:`~strfsolver.data.NeuralDataset`, a list with one
                array per stimulus, an array (then ``groups`` is required) or
                a number of stimuli.
            y: Ignored (scikit-learn's protocol).
            groups: A label per unit; units sharing a label are never split
                apart. Default: each unit its own group.
        """
        labels = _unit_groups(X, groups)
        unique = _unique_in_order(labels)
        for held_out in self._held_out_groups(unique):
            test = np.isin(labels, np.asarray(held_out, dtype=labels.dtype))
            yield np.flatnonzero(~test), np.flatnonzero(test)

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Optional[Sequence[Any]] = None) -> int:
        """The number of folds (scikit-learn's protocol)."""
        raise NotImplementedError  # pragma: no cover - overridden


class StimulusKFold(_GroupedSplitter):
    """K folds of whole stimuli, each held out once.

    The groups (by default: the stimuli) are taken in order, or shuffled with
    a generator seeded by ``seed`` (the global random state is untouched),
    and dealt into ``n_splits`` folds whose sizes differ by at most one.

    Args:
        n_splits: Number of folds, at least 2.
        shuffle: Shuffle the groups before dealing them into folds.
        seed: Seed of the shuffle (used only with ``shuffle=True``).

    Example:
        >>> [test.tolist() for _, test in StimulusKFold(3).split(6)]
        [[0, 1], [2, 3], [4, 5]]
    """

    def __init__(self, n_splits: int = 5, shuffle: bool = False, seed: Optional[int] = None):
        self.n_splits = check_count(n_splits, "n_splits", 2)
        self.shuffle = check_flag(shuffle, "shuffle")
        self.seed = check_count(seed, "seed", 0, allow_none=True)

    def _held_out_groups(self, groups: List[Any]) -> List[List[Any]]:
        if self.n_splits > len(groups):
            raise ValueError(
                f"StimulusKFold(n_splits={self.n_splits}) needs at least {self.n_splits} stimuli (or groups), got "
                f"{len(groups)}; use fewer splits or LeaveOneStimulusOut()."
            )
        order = np.arange(len(groups))
        if self.shuffle:
            order = np.random.default_rng(self.seed).permutation(len(groups))
        return [[groups[i] for i in chunk] for chunk in np.array_split(order, self.n_splits)]

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Optional[Sequence[Any]] = None) -> int:
        return self.n_splits

    def __repr__(self) -> str:
        return f"StimulusKFold(n_splits={self.n_splits}, shuffle={self.shuffle}, seed={self.seed})"


class LeaveOneStimulusOut(_GroupedSplitter):
    """One fold per stimulus (or group): train on all the others, test on it.

    Example:
        >>> [test.tolist() for _, test in LeaveOneStimulusOut().split(3)]
        [[0], [1], [2]]
    """

    def _held_out_groups(self, groups: List[Any]) -> List[List[Any]]:
        if len(groups) < 2:
            raise ValueError(f"LeaveOneStimulusOut needs at least 2 stimuli (or groups), got {len(groups)}.")
        return [[group] for group in groups]

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Optional[Sequence[Any]] = None) -> int:
        if X is None:
            raise ValueError("LeaveOneStimulusOut.get_n_splits needs X (or groups): one fold per stimulus.")
        return len(_unique_in_order(_unit_groups(X, groups)))

    def __repr__(self) -> str:
        return "LeaveOneStimulusOut()"


def check_cv(cv: Any, what: str = "cv") -> _GroupedSplitter:
    """A splitter from ``cv``: an integer K (``StimulusKFold(K)``), ``"loso"`` or a splitter.

    Raises:
        ValueError: naming ``what`` for anything else.
    """
    if isinstance(cv, str) and cv == "loso":
        return LeaveOneStimulusOut()
    if isinstance(cv, numbers.Integral) and not isinstance(cv, bool):
        return StimulusKFold(int(cv))
    if not isinstance(cv, (str, bytes)) and callable(getattr(cv, "split", None)):
        return cv
    raise ValueError(
        f"{what} must be a number of folds (>= 2), 'loso' or a splitter with split(X, y, groups) such as "
        f"StimulusKFold(5, shuffle=True, seed=0); got {short_repr(cv)}."
    )
