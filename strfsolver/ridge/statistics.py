"""Streamed sufficient statistics of the lagged (STRF) design.

For a stimulus with features ``x`` of shape ``(P, T)`` (``P = C * F`` channels
times bands, flattened channel-major) and ``L`` lags, the lagged feature vector
at bin ``t`` is ``z_t[p * L + l] = x[p, t - l]`` with ``x[p, t] = 0`` for
``t < 0``: lag 0 is the current bin and every stimulus starts from a zero
history. ``D = P * L`` is the number of regression coefficients per neuron,
and a coefficient vector reshaped ``(C, F, L)`` is an STRF in the model's
``(N, C, F, L)`` layout.

:class:`RidgeStatistics` accumulates, one stimulus at a time, everything a
closed-form ridge fit and its cross-validation need: Grams ``sum_t z_t z_t^T``,
cross-products ``sum_t z_t y_t^T``, feature and target sums, target sums of
squares and bin counts. They are kept per *group* (by default one group per
stimulus) so that cross-validation folds, which are unions of groups, are
obtained by adding or subtracting them; nothing in the lagged design matrix is
ever materialised for complete data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, List, Optional

import torch
from torch import Tensor

from strfsolver.ridge.lagged import CHUNK_ELEMENTS, design_rows, lagged_cross, lagged_gram, lagged_sum, pad_history
from strfsolver.utils.checks import check_tensor_size, short_repr

__all__ = ["RidgeStatistics"]

def _shared_class(before: int, code: int, empty: bool) -> Optional[int]:
    """The class a neuron lands in when it needs no statistics of its own, else None.

    ``before``: its class in the group (-1 in an empty group), ``code``: its
    pattern in the new stimulus (0 every bin, -1 none, k >= 1 partial).
    """
    if code == 0 and (before == 0 or (before == -1 and empty)):
        return 0  # every bin of the group so far and of this stimulus
    if code == -1 and before == -1:
        return -1
    return None


@dataclass
class BinClass:
    """Statistics of the bins a class of neurons is recorded at, within one group.

    Attributes:
        gram: ``(D, D)`` sum of ``z_t z_t^T`` over those bins.
        total: ``(D,)`` sum of ``z_t``.
        count: number of bins.
    """

    gram: Tensor
    total: Tensor
    count: int


class Group:
    """Statistics of one group of stimuli (one stimulus unless ``group=`` pools several).

    Neurons recorded at every bin of every stimulus of the group use the
    group's all-bins statistics (class ``0``); neurons with no bin in the group
    have class ``-1``; any other recorded-bins pattern is a class ``k >= 1``
    with its own :class:`BinClass` ``classes[k - 1]``. Per-neuron quantities
    (cross-products, target sums) need no classes: a bin where a neuron is not
    recorded just adds nothing to them.

    Attributes:
        all_bins: :class:`BinClass` over every bin of the group.
        classes: the partial classes.
        class_of: ``(N,)`` long, each neuron's class.
        cross: ``(D, N)`` sum of ``z_t y_t`` over each neuron's recorded bins.
        target_sum, target_sq: ``(N,)`` sums of ``y`` and ``y^2`` there.
        count: ``(N,)`` long, each neuron's number of recorded bins.
        stimuli: indices (order of ``add``) of the stimuli in the group.
    """

    def __init__(self, dim: int, n_outputs: int, dtype: torch.dtype, device: torch.device):
        self.all_bins = BinClass(torch.zeros(dim, dim, dtype=dtype, device=device), torch.zeros(dim, dtype=dtype, device=device), 0)
        self.classes: List[BinClass] = []
        self.class_of = torch.zeros(n_outputs, dtype=torch.long, device=device)
        self.cross = torch.zeros(dim, n_outputs, dtype=dtype, device=device)
        self.target_sum = torch.zeros(n_outputs, dtype=dtype, device=device)
        self.target_sq = torch.zeros(n_outputs, dtype=dtype, device=device)
        self.count = torch.zeros(n_outputs, dtype=torch.long, device=device)
        self.stimuli: List[int] = []

    def bin_class(self, index: int) -> Optional[BinClass]:
        """The :class:`BinClass` of class ``index``; None for ``-1`` (no bins)."""
        if index < 0:
            return None
        return self.all_bins if index == 0 else self.classes[index - 1]


class RidgeStatistics:
    """Sufficient statistics of a lagged linear model, accumulated stimulus by stimulus.

    Each :meth:`add` takes one stimulus' features and its neurons' targets and
    adds, in ``dtype`` (float64 by default, so that the subtractions of
    centering and of fold statistics keep their digits) on ``device``:

    * the Gram ``G = sum_t z_t z_t^T`` ``(D, D)``, from :func:`lagged_gram`
      (L products of ``(P, T) @ (T, P)`` instead of ``(D, T) @ (T, D)``);
    * the cross-products ``B = sum_t z_t y_t^T`` ``(D, N)`` from
      :func:`lagged_cross`, feature sums ``(D,)``, target sums and sums of
      squares ``(N,)`` and bin counts.

    **Missing targets.** NaN targets mark bins where a neuron is not recorded;
    a neuron contributes only its recorded bins. Neurons recorded at every bin
    of the stimulus use its full Gram, neurons recorded at none add nothing,
    and each *distinct* partial pattern of recorded bins costs one extra Gram
    over that pattern's bins (or over its missing bins, subtracted from the
    full Gram, when those are fewer), built from design rows in chunks of
    :data:`CHUNK_ELEMENTS` elements: ``O(K D^2)`` for K bins, where the full
    Gram costs ``O(L T P^2)``, plus ``D^2`` numbers of memory per pattern.
    Neurons with identical masks share it (500 neurons, one pattern: one
    Gram). More than ``max_patterns`` distinct partial patterns raise a
    ``ValueError`` rather than approximating.

    **Groups.** Statistics are kept per group; cross-validation folds are
    unions of groups. By default each stimulus is its own group, which costs
    ``D^2`` numbers per stimulus (118 MB at D = 3840 in float64). Pass the
    same ``group=`` label for several stimuli (e.g. their fold) to pool them
    and bound the memory; cross-validation then splits by those groups. Lags
    never cross stimuli either way.

    Args:
        n_lags: L, the number of lags (lag 0 = current bin).
        dtype: accumulation dtype.
        device: where the statistics live (and the fit runs).
        n_channels: C, when ``(P, T)`` features are passed that stack C
            channels of ``F = P / C`` bands (only the ``"laplacian"`` penalty
            needs it; ``(C, F, T)`` features say it themselves).
        max_patterns: the most distinct partial recorded-bins patterns one
            stimulus (and the most partial classes one group) may have.
        keep_data: also keep every stimulus' features and targets (needed by
            ``cv="gcv"``, which revisits the bins).
    """

    def __init__(self, n_lags: int, *, dtype: torch.dtype = torch.float64, device=None, n_channels: Optional[int] = None, max_patterns: int = 64, keep_data: bool = False):
        if not isinstance(n_lags, int) or isinstance(n_lags, bool) or n_lags < 1:
            raise ValueError(f"n_lags must be an integer >= 1; got {short_repr(n_lags)}")
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating dtype; got {dtype}")
        if not isinstance(max_patterns, int) or max_patterns < 0:
            raise ValueError(f"max_patterns must be an integer >= 0; got {short_repr(max_patterns)}")
        if n_channels is not None and (not isinstance(n_channels, int) or n_channels < 1):
            raise ValueError(f"n_channels must be None or an integer >= 1; got {short_repr(n_channels)}")
        self.n_lags, self.dtype, self.max_patterns, self.keep_data = n_lags, dtype, max_patterns, keep_data
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.n_channels: Optional[int] = n_channels
        self.n_bands: Optional[int] = None
        self.n_outputs: Optional[int] = None
        self.groups: List[Group] = []
        self.group_labels: List[Hashable] = []
        self.stimulus_group: List[int] = []
        #: ``(features (P, T), targets (N, T))`` per stimulus when ``keep_data``
        self.data: List[tuple] = []

    @property
    def n_features(self) -> Optional[int]:
        """P = C * F (None before the first :meth:`add`)."""
        return None if self.n_bands is None else self.n_channels * self.n_bands

    @property
    def dim(self) -> Optional[int]:
        """D = P * L, the number of coefficients per neuron."""
        return None if self.n_bands is None else self.n_features * self.n_lags

    @property
    def n_groups(self) -> int:
        """Number of groups: the units cross-validation splits by."""
        return len(self.groups)

    @property
    def n_stimuli(self) -> int:
        """Number of stimuli added."""
        return len(self.stimulus_group)

    def add(self, features: Tensor, targets: Tensor, group: Optional[Hashable] = None) -> int:
        """Add one stimulus.

        Args:
            features: ``(P, T)`` or ``(C, F, T)`` finite features (flattened
                channel-major to ``P = C * F``).
            targets: ``(N, T)`` targets; NaN where a neuron is not recorded.
            group: label of the group to add to; None starts a new group.

        Returns:
            The index of the group the stimulus went to.

        Raises:
            ValueError: on shapes that disagree with earlier stimuli, non-finite
                features, infinite targets, or more than ``max_patterns``
                distinct partial patterns.
        """
        with torch.no_grad():
            x, y, shape = self._check(features, targets)
            dim = x.shape[0] * self.n_lags
            check_tensor_size(  # (D, D) Grams, before any is allocated
                {"D (rows)": dim, "D (columns)": dim},
                f"the ridge Gram matrix of D = {x.shape[0]} features (channels x bands) x n_lags={self.n_lags} coefficients",
            )
            n_times = x.shape[1]
            recorded = ~torch.isnan(y)
            counts = recorded.sum(1)
            codes = torch.where(counts == n_times, 0, -1)
            partial = (counts > 0) & (counts < n_times)
            masks = recorded.new_zeros(0, n_times)
            if bool(partial.any()):
                masks, inverse = torch.unique(recorded[partial].to(torch.uint8), dim=0, return_inverse=True)
                if masks.shape[0] > self.max_patterns:
                    raise ValueError(
                        f"stimulus {self.n_stimuli} has {masks.shape[0]} distinct patterns of recorded bins among partially "
                        f"recorded neurons, more than max_patterns={self.max_patterns}; each costs one extra Gram. Drop the "
                        "partially recorded bins (set the whole stimulus to NaN for those neurons), fill them, or raise max_patterns"
                    )
                codes[partial] = inverse + 1
                masks = masks.bool()

            if group is None or group not in self.group_labels:
                index, new = len(self.groups), True
            else:
                index, new = self.group_labels.index(group), False
            g = Group(x.shape[0] * self.n_lags, y.shape[0], self.dtype, self.device) if new else self.groups[index]
            plan = self._plan(g, index, codes)  # raises before anything is changed
            self.n_channels, self.n_bands, self.n_outputs = shape

            padded = pad_history(x, self.n_lags)
            full = BinClass(lagged_gram(x, self.n_lags), lagged_sum(x, self.n_lags), n_times)
            stimulus_classes = [self._masked(padded, full, mask) for mask in masks]
            self._merge(g, plan, full, stimulus_classes)
            g.all_bins.gram += full.gram
            g.all_bins.total += full.total
            g.all_bins.count += n_times
            # NaN bins add zero to every per-neuron sum, so no mask is needed below
            observed = torch.where(recorded, y, 0.0)
            g.cross += lagged_cross(x, observed, self.n_lags)
            g.target_sum += observed.sum(1)
            g.target_sq += (observed * observed).sum(1)
            g.count += counts
            g.stimuli.append(self.n_stimuli)
            if new:
                self.groups.append(g)
                self.group_labels.append(object() if group is None else group)
            self.stimulus_group.append(index)
            if self.keep_data:
                self.data.append((x, y))
            return index

    def _check(self, features: Tensor, targets: Tensor):
        if not isinstance(features, Tensor) or features.dim() not in (2, 3):
            raise ValueError(f"features must be a (P, T) or (C, F, T) tensor; got {getattr(features, 'shape', type(features).__name__)}")
        if not isinstance(targets, Tensor) or targets.dim() != 2:
            raise ValueError(f"targets must be an (N, T) tensor; got {getattr(targets, 'shape', type(targets).__name__)}")
        if features.shape[-1] != targets.shape[-1] or features.shape[-1] < 1:
            raise ValueError(f"features have {features.shape[-1]} bins but targets have {targets.shape[-1]}; expected the same T >= 1")
        if features.dim() == 3:
            channels, bands = features.shape[0], features.shape[1]
        else:
            channels = self.n_channels or 1
            if features.shape[0] % channels:
                raise ValueError(f"features have P={features.shape[0]} rows, not a multiple of n_channels={channels}")
            bands = features.shape[0] // channels
        if self.n_bands is not None and (channels, bands, targets.shape[0]) != (self.n_channels, self.n_bands, self.n_outputs):
            raise ValueError(
                f"stimulus {self.n_stimuli} has C={channels}, F={bands}, N={targets.shape[0]}; earlier stimuli had "
                f"C={self.n_channels}, F={self.n_bands}, N={self.n_outputs}"
            )
        x = features.detach().reshape(channels * bands, -1).to(device=self.device, dtype=self.dtype)
        y = targets.detach().to(device=self.device, dtype=self.dtype)
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"features of stimulus {self.n_stimuli} are not all finite")
        if bool(torch.isinf(y).any()):
            raise ValueError(f"targets of stimulus {self.n_stimuli} contain infinite values; mark missing bins with NaN")
        return x, y, (channels, bands, targets.shape[0])

    def _masked(self, padded: Tensor, full: BinClass, mask: Tensor) -> BinClass:
        """Statistics over the bins of ``mask`` (``(T,)`` bool), from design rows in chunks.

        When fewer bins are missing than recorded, the missing bins' Gram is
        subtracted from the full one instead: the work follows the smaller set.
        """
        use_missing = int(mask.sum()) * 2 > mask.numel()
        bins = torch.nonzero(~mask if use_missing else mask).flatten()
        gram, total = torch.zeros_like(full.gram), torch.zeros_like(full.total)
        step = max(1, CHUNK_ELEMENTS // full.total.numel())
        for start in range(0, bins.numel(), step):
            rows = design_rows(padded, bins[start : start + step], self.n_lags)
            gram += rows.T @ rows
            total += rows.sum(0)
        if use_missing:
            return BinClass(full.gram - gram, full.total - total, full.count - bins.numel())
        return BinClass(gram, total, bins.numel())

    def _plan(self, g: Group, index: int, codes: Tensor):
        """Map each neuron's (class in the group, pattern in this stimulus) to its new class.

        Returns ``(pairs, inverse)`` from ``torch.unique`` over the neurons'
        pairs, classes before this stimulus being ``-1`` in a still empty group.
        Raises before the group changes when it would exceed ``max_patterns``
        partial classes.
        """
        empty = g.all_bins.count == 0
        before = torch.full_like(g.class_of, -1) if empty else g.class_of
        pairs, inverse = torch.unique(torch.stack([before, codes], 1), dim=0, return_inverse=True)
        pairs = pairs.tolist()
        n_partial = sum(1 for c, k in pairs if _shared_class(c, k, empty) is None)
        if n_partial > self.max_patterns:
            raise ValueError(
                f"group {index} would hold {n_partial} distinct recorded-bins classes, more than "
                f"max_patterns={self.max_patterns}; pool fewer stimuli per group, drop or fill the partially "
                "recorded bins, or raise max_patterns"
            )
        return pairs, inverse

    def _merge(self, g: Group, plan, full: BinClass, stimulus_classes: List[BinClass]) -> None:
        """Give every neuron its class after this stimulus (before ``all_bins`` is updated)."""
        pairs, inverse = plan
        empty = g.all_bins.count == 0
        uses = {}
        for c, _ in pairs:
            uses[c] = uses.get(c, 0) + 1
        new_classes: List[BinClass] = []
        new_ids = []
        for c, k in pairs:
            shared = _shared_class(c, k, empty)
            if shared is not None:
                new_ids.append(shared)
                continue
            base = g.bin_class(c)
            added = None if k == -1 else (full if k == 0 else stimulus_classes[k - 1])
            if base is not None and c >= 1 and uses[c] == 1:
                if added is not None:  # sole heir of that class: update it in place, no copy
                    base.gram += added.gram
                    base.total += added.total
                    base.count += added.count
                merged = base
            elif base is None:
                merged = BinClass(added.gram.clone(), added.total.clone(), added.count)
            elif added is None:  # clone: the all-bins statistics are about to grow in place
                merged = BinClass(base.gram.clone(), base.total.clone(), base.count)
            else:
                merged = BinClass(base.gram + added.gram, base.total + added.total, base.count + added.count)
            new_classes.append(merged)
            new_ids.append(len(new_classes))
        g.classes = new_classes
        g.class_of = torch.tensor(new_ids, dtype=torch.long, device=self.device)[inverse]

    def class_codes(self) -> Tensor:
        """``(n_groups, N)`` long: each neuron's class in each group (-1: no bin there)."""
        return torch.stack([g.class_of for g in self.groups]) if self.groups else torch.zeros(0, 0, dtype=torch.long)
