"""A validated set of stimuli and the responses they evoked.

Shapes follow docs/conventions.md §1: stimulus ``i`` is ``(F, T_i)`` (or
``(C, F, T_i)`` with C channels), its responses ``(N, R_i, T_i)`` with N
neurons, R_i repeats and NaN wherever nothing was recorded.

A dataset keeps every repeat (``repeats="all"``) or, with
``repeats="summary"``, each stimulus' PSTH and the per-neuron statistics of its
repeats that the built-in metrics read
(:py:class:`~strfsolver.metrics.RepeatStatistics`): R times less memory, the
same losses and metrics. Its arrays live in memory, or on disk read per
stimulus (:py:func:`strfsolver.data.open_folder`).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from strfsolver.data.inputs import Index, _as_list, _check_dt, _resolve_index, _shape, _to_float_tensor, shape_of, take
from strfsolver.metrics import RepeatStatistics, psth, repeat_statistics
from strfsolver.utils.checks import check_choice, check_seed, short_repr

__all__ = ["NeuralDataset", "REPEATS", "SummarisedRepeatsError"]

#: what a dataset keeps of the repeats: every one, or their summary
REPEATS = ("all", "summary")

ArrayLike = Union[Tensor, np.ndarray, Sequence]
# a few parts per million: fractions written as 0.7 + 0.2 + 0.1 must pass
_FRACTION_TOLERANCE = 1e-6


class SummarisedRepeatsError(ValueError):
    """Every repeat was asked of a dataset that keeps only their summary (``repeats="summary"``)."""


class NeuralDataset(torch.utils.data.Dataset):
    """Stimuli and the neural responses they evoked, validated once on construction.

    Every stimulus has its own length ``T_i`` and number of repeats ``R_i``; all
    share the number of frequency bands ``F`` (and channels ``C``) and of neurons
    ``N``. Inputs may be NumPy arrays or tensors; they are stored as float32
    CPU tensors. An input that is one already (float32, C-contiguous, on the
    CPU) is used in place, not copied: edit it afterwards and the dataset sees
    the edit, unchecked.

    Args:
        stims: A list of ``(F, T_i)`` or ``(C, F, T_i)`` stimuli (spectrograms),
            all finite and all with the same number of dimensions.
        responses: A list of ``(N, R_i, T_i)`` responses, one per stimulus,
            ``R_i >= 1``. NaN marks a missing repeat or bin; infinities are
            rejected.
        dt_ms: Width of a time bin in milliseconds (positive).
        meta: Optional list of dicts, one per stimulus (names, conditions...).
            Defaults to ``{"index": i}``.
        neuron_ids: Optional list of N neuron identifiers (strings); defaults
            to ``"0" .. "N-1"``. They follow :py:meth:`select_neurons`.
        repeats: ``"all"`` keeps every repeat; ``"summary"`` keeps, per
            stimulus, its PSTH and the :py:class:`~strfsolver.metrics.RepeatStatistics`
            every built-in metric needs (signal and noise power, both
            ``cc_norm``), and drops the repeats: losses and metrics are the same,
            while :py:attr:`responses` (and a loss or metric that reads each
            repeat) is refused.

    Raises:
        ValueError: On any inconsistency, naming the stimulus and both shapes.

    Example:
        >>> import numpy as np
        >>> data = NeuralDataset([np.ones((8, 50))], [np.zeros((3, 2, 50))], dt_ms=5.0)
        >>> data[0]["response"].shape
        torch.Size([3, 2, 50])
    """

    def __init__(self, stims: Sequence[ArrayLike], responses: Sequence[ArrayLike], dt_ms: float, meta: Optional[Sequence[Dict[str, Any]]] = None, neuron_ids: Optional[Sequence[Any]] = None, repeats: str = "all"):
        self._repeats_kept = check_choice(repeats, "repeats", REPEATS)
        stims = _as_list(stims, "stims")
        responses = _as_list(responses, "responses")
        if len(stims) == 0:
            raise ValueError("a NeuralDataset needs at least one stimulus, got empty lists.")
        if len(stims) != len(responses):
            raise ValueError(
                f"got {len(stims)} stimuli but {len(responses)} responses; expected one response array per stimulus."
            )
        self._dt_ms = _check_dt(dt_ms)
        # checks compare each stimulus with the first one, so the lists grow as they pass
        self._stims: List[Tensor] = []
        for i, stim in enumerate(stims):
            self._stims.append(self._check_stim(i, stim))
        self._responses: List[Tensor] = []
        summarised = self._repeats_kept == "summary"
        rows, self._repeat_counts = [], None if not summarised else []
        for i, response in enumerate(responses):
            checked = self._check_response(i, response)
            if summarised:
                # one stimulus' repeats at a time: they are never all in memory at once
                self._repeat_counts.append(int(checked.shape[1]))
                rows.append(repeat_statistics(checked.unsqueeze(0)))
                checked = psth(checked.unsqueeze(0))[0]
            self._responses.append(checked)
        self._summary: Optional[RepeatStatistics] = RepeatStatistics.cat(rows) if summarised else None
        self._recorded: Optional[Tensor] = None  # (S, N), known without reading the data (on disk)
        if all(bool(r.isnan().all()) for r in self._responses):
            raise ValueError(
                f"responses are NaN everywhere (all {len(self._responses)} stimuli): nothing was recorded, so there "
                "is nothing to fit; NaN marks missing repeats or bins only."
            )
        self._meta = self._check_meta(meta, len(stims))
        self.neuron_ids = neuron_ids

    # -- validation -----------------------------------------------------------------

    def _check_stim(self, i: int, value: Any) -> Tensor:
        stim = _to_float_tensor(value, f"stimulus {i}")
        if stim.ndim not in (2, 3):
            raise ValueError(
                f"stimulus {i} has shape {_shape(stim)}; expected (F, T) or (C, F, T)."
            )
        if stim.shape[-1] < 1:
            raise ValueError(f"stimulus {i} has shape {_shape(stim)} with no time bin; expected (..., T >= 1).")
        if i > 0:
            first = self._stims[0]
            if stim.ndim != first.ndim or stim.shape[:-1] != first.shape[:-1]:
                expected = tuple(first.shape[:-1]) + ("T",)
                raise ValueError(
                    f"stimulus {i} has shape {_shape(stim)} but stimulus 0 has shape {_shape(first)}; "
                    f"expected {str(expected).replace(chr(39), '')}."
                )
        finite = torch.isfinite(stim)
        if not bool(finite.all()):
            count = int((~finite).sum())
            raise ValueError(
                f"stimulus {i} (shape {_shape(stim)}) has {count} non-finite values (NaN or inf); "
                "stimuli must be finite everywhere (pad with zeros, not NaN)."
            )
        return stim

    def _check_response(self, i: int, value: Any) -> Tensor:
        response = _to_float_tensor(value, f"responses for stimulus {i}")
        bins = self._stims[i].shape[-1]
        if response.ndim != 3:
            raise ValueError(
                f"responses for stimulus {i} have shape {_shape(response)}; expected (N, R, {bins})."
            )
        neurons, repeats, length = response.shape
        if length != bins:
            raise ValueError(
                f"responses for stimulus {i} have shape {_shape(response)} but the stimulus has "
                f"{bins} bins; expected (N, R, {bins})." + self._transpose_hint(i, length)
            )
        if neurons < 1:
            raise ValueError(
                f"responses for stimulus {i} have shape {_shape(response)} with no neuron; expected (N >= 1, R, {bins})."
            )
        if repeats < 1:
            raise ValueError(
                f"responses for stimulus {i} have shape {_shape(response)} with no repeat; "
                f"expected ({neurons}, R >= 1, {bins})."
            )
        if i > 0:
            first = self._responses[0]
            if neurons != first.shape[0]:
                raise ValueError(
                    f"responses for stimulus {i} have shape {_shape(response)} but those for stimulus 0 "
                    f"have shape {_shape(first)}; expected ({first.shape[0]}, R, {bins})."
                )
        infinite = torch.isinf(response)
        if bool(infinite.any()):
            raise ValueError(
                f"responses for stimulus {i} (shape {_shape(response)}) have {int(infinite.sum())} infinite "
                "values; use NaN to mark missing repeats or bins."
            )
        return response

    def _transpose_hint(self, i: int, length: int) -> str:
        """A hint when stimulus ``i`` looks like a ``(T, F)`` array given where ``(F, T)`` is expected."""
        stim = self._stims[i]
        if stim.shape[-2] == length and stim.shape[-1] != length:
            return (
                f" Stimulus {i} has shape {_shape(stim)}: its {length} rows match the responses' {length} bins, so it "
                f"looks like a (T, F) array; stimuli are (F, T): pass its transpose (stim.T)."
            )
        return ""

    @staticmethod
    def _check_meta(meta: Any, n_stims: int) -> List[Dict[str, Any]]:
        if meta is None:
            return [{"index": i} for i in range(n_stims)]
        meta = _as_list(meta, "meta")
        if len(meta) != n_stims:
            raise ValueError(f"meta has {len(meta)} entries but there are {n_stims} stimuli; expected one dict per stimulus.")
        for i, entry in enumerate(meta):
            if not isinstance(entry, dict):
                raise ValueError(f"meta for stimulus {i} is a {type(entry).__name__}; expected a dict.")
        return [dict(entry) for entry in meta]

    @classmethod
    def _trusted(cls, stims: Sequence[Tensor], responses: Sequence[Tensor], dt_ms: float, meta: List[dict],
                 summary: Optional[RepeatStatistics] = None, repeat_counts: Optional[List[int]] = None) -> "NeuralDataset":
        """Build from tensors that already passed validation (subsets share them, no copy).

        With ``summary`` (the ``(S, N)`` repeat statistics) and ``repeat_counts``,
        ``responses`` are the ``(N, 1, T_i)`` PSTHs of a summarised dataset.
        """
        self = cls.__new__(cls)
        self._stims, self._responses, self._dt_ms = stims, responses, dt_ms
        self._meta = [dict(m) for m in meta]
        self._neuron_ids = None
        self._summary, self._repeat_counts = summary, repeat_counts
        self._repeats_kept = "all" if summary is None else "summary"
        self._recorded = None
        return self

    def _parts(self, stimuli: List[int], neurons: Optional[Tensor] = None) -> "NeuralDataset":
        """The stimuli ``stimuli`` (and neurons ``neurons``), sharing this dataset's tensors where they can."""
        index = torch.tensor(stimuli, dtype=torch.long)
        responses = take(self._responses, stimuli, neurons)
        summary = None if self._summary is None else self._summary.index_select(0, index)
        if neurons is not None and summary is not None:
            summary = summary.index_select(1, neurons)
        counts = None if self._repeat_counts is None else [self._repeat_counts[i] for i in stimuli]
        part = NeuralDataset._trusted(take(self._stims, stimuli), responses, self._dt_ms,
                                      [self._meta[i] for i in stimuli], summary, counts)
        if self._recorded is not None:
            recorded = self._recorded.index_select(0, index)
            part._recorded = recorded if neurons is None else recorded.index_select(1, neurons)
        return part

    def summarised(self) -> "NeuralDataset":
        """This dataset with ``repeats="summary"``: each stimulus' PSTH and repeat statistics (itself if it is one)."""
        if self._summary is not None:
            return self
        summary = NeuralDataset._trusted(self._stims, self.psths, self._dt_ms, self._meta, self.repeat_statistics, self.n_repeats)
        return summary._with_ids(self._neuron_ids)

    @property
    def on_disk(self) -> bool:
        """Whether the arrays stay on disk and are read per stimulus (:py:func:`strfsolver.data.open_folder`)."""
        return not isinstance(self._responses, list)

    @classmethod
    def concat(cls, parts: Sequence["NeuralDataset"]) -> "NeuralDataset":
        """The stimuli of ``parts``, in order, as one dataset; their tensors are shared, not copied.

        Build a large dataset piecewise (one file or stimulus at a time, each
        part summarised with ``repeats="summary"`` as it is read) so that the
        data are never held twice. Every stimulus' ``meta["index"]`` becomes
        its position in the result.

        Raises:
            ValueError: for an empty list, a part that is not an in-memory
                :py:class:`NeuralDataset`, or parts that differ in bin width,
                neurons (count or ids), stimulus layout or what they keep of the repeats.
        """
        parts = _as_list(parts, "parts")
        if not parts:
            raise ValueError("concat needs at least one dataset, got an empty list.")
        first = parts[0]
        for k, part in enumerate(parts):
            if not isinstance(part, NeuralDataset) or part.on_disk:
                what = "on disk (add its stimuli to one strfsolver.data.FolderWriter)" if isinstance(part, NeuralDataset) else f"a {type(part).__name__}"
                raise ValueError(f"concat: part {k} is {what}; expected an in-memory NeuralDataset.")
            for name in ("dt_ms", "repeats", "n_neurons", "neuron_ids", "n_channels", "n_freqs", "stim_ndim"):
                got, expected = getattr(part, name), getattr(first, name)
                if got != expected:
                    raise ValueError(f"concat: part {k} has {name} {short_repr(got)} but part 0 has {short_repr(expected)}; "
                                     "every part must match.")
        meta = [dict(m, index=i) for i, m in enumerate(m for part in parts for m in part._meta)]
        summary = None if first._summary is None else RepeatStatistics.cat([part._summary for part in parts])
        counts = None if first._repeat_counts is None else [c for part in parts for c in part._repeat_counts]
        whole = NeuralDataset._trusted([s for part in parts for s in part._stims], [r for part in parts for r in part._responses],
                                       first.dt_ms, meta, summary, counts)
        return whole._with_ids(first._neuron_ids)

    # -- contents ------------------------------------------------------------------

    @property
    def stims(self) -> List[Tensor]:
        """The stimuli, ``(F, T_i)`` or ``(C, F, T_i)`` float32 tensors; on disk, a
        sequence that reads each stimulus when it is indexed."""
        return list(self._stims) if not self.on_disk else self._stims

    @property
    def responses(self) -> List[Tensor]:
        """The responses, ``(N, R_i, T_i)`` float32 tensors (NaN = missing); on disk, a
        sequence that reads each stimulus when it is indexed.

        Raises:
            SummarisedRepeatsError: for a summarised dataset, which keeps no
                repeat (use :py:attr:`psths` and :py:attr:`repeat_statistics`).
        """
        if self._summary is not None:
            raise SummarisedRepeatsError(
                "this dataset was built with repeats='summary': it keeps each stimulus' PSTH (dataset.psths) and "
                "the statistics of its repeats (dataset.repeat_statistics), not the repeats; build it with "
                "repeats='all' for code that reads every repeat."
            )
        return list(self._responses) if not self.on_disk else self._responses

    @property
    def repeats(self) -> str:
        """What this dataset keeps of the repeats: ``"all"`` or ``"summary"``."""
        return self._repeats_kept

    @property
    def psths(self) -> List[Tensor]:
        """Each stimulus' PSTH, ``(N, 1, T_i)`` float32 (NaN where no repeat was recorded)."""
        if self._summary is not None:
            return list(self._responses)
        return [psth(r.unsqueeze(0))[0] for r in self._responses]

    @property
    def repeat_statistics(self) -> RepeatStatistics:
        """The ``(S, N)`` :py:class:`~strfsolver.metrics.RepeatStatistics` of the repeats (kept, or computed now)."""
        if self._summary is not None:
            return self._summary
        return RepeatStatistics.cat([repeat_statistics(r.unsqueeze(0)) for r in self._responses])

    @property
    def recorded(self) -> Tensor:
        """``(S, N)`` bool: whether neuron n has a recorded bin in stimulus s."""
        if self._recorded is not None:
            return self._recorded
        return torch.stack([~r.isnan().flatten(1).all(1) for r in self._responses])

    @property
    def neuron_ids(self) -> List[str]:
        """One identifier per neuron (strings)."""
        if self._neuron_ids is None:
            return [str(n) for n in range(self.n_neurons)]
        return list(self._neuron_ids)

    @neuron_ids.setter
    def neuron_ids(self, ids: Optional[Sequence[Any]]) -> None:
        if ids is None:
            self._neuron_ids = None
            return
        if isinstance(ids, (str, bytes)) or not hasattr(ids, "__len__"):
            raise ValueError(f"neuron_ids must be a list of {self.n_neurons} identifiers, got {short_repr(ids)}.")
        ids = [str(i) for i in ids]
        if len(ids) != self.n_neurons:
            raise ValueError(
                f"neuron_ids has {len(ids)} entries but the responses have {self.n_neurons} neurons; "
                f"expected one id per neuron."
            )
        self._neuron_ids = ids

    @property
    def dt_ms(self) -> float:
        """Width of a time bin in milliseconds."""
        return self._dt_ms

    @property
    def meta(self) -> List[Dict[str, Any]]:
        """One dict per stimulus."""
        return self._meta

    @property
    def n_stims(self) -> int:
        return len(self._stims)

    @property
    def n_neurons(self) -> int:
        return int(shape_of(self._responses, 0)[0])

    @property
    def n_freqs(self) -> int:
        return int(shape_of(self._stims, 0)[-2])

    @property
    def n_channels(self) -> int:
        """C for ``(C, F, T)`` stimuli, 1 for ``(F, T)`` ones."""
        return int(shape_of(self._stims, 0)[0]) if self.stim_ndim == 3 else 1

    @property
    def stim_ndim(self) -> int:
        """2 for ``(F, T)`` stimuli, 3 for ``(C, F, T)`` ones."""
        return len(shape_of(self._stims, 0))

    @property
    def lengths(self) -> List[int]:
        """``T_i``, the number of time bins of each stimulus."""
        return [int(shape_of(self._stims, i)[-1]) for i in range(len(self._stims))]

    @property
    def n_repeats(self) -> List[int]:
        """``R_i``, the number of repeats of each stimulus (as recorded, also when summarised)."""
        if self._repeat_counts is not None:
            return list(self._repeat_counts)
        return [int(shape_of(self._responses, i)[1]) for i in range(len(self._responses))]

    def __len__(self) -> int:
        return len(self._stims)

    def __getitem__(self, i: int) -> Dict[str, Any]:
        """One stimulus: ``{"stim": (F, T) or (C, F, T), "response": (N, R, T), "meta": dict}``.

        A summarised dataset's item holds the PSTH ``(N, 1, T)`` as
        ``"response"`` and the stimulus' ``(N,)`` statistics under ``"repeat_stats"``.
        """
        if isinstance(i, bool) or not isinstance(i, numbers.Integral):
            raise TypeError(f"NeuralDataset indices must be integers, got {type(i).__name__}; use subset() for several.")
        n = len(self._stims)
        if not -n <= i < n:
            raise IndexError(f"stimulus index {i} is out of range for a dataset of {n} stimuli.")
        i = int(i) % n
        item = {"stim": self._stims[i], "response": self._responses[i], "meta": dict(self._meta[i])}
        if self._summary is not None:
            item["repeat_stats"] = RepeatStatistics(*(field[i] for field in self._summary))
        return item

    def __repr__(self) -> str:
        shape = "C, F" if self.stim_ndim == 3 else "F"
        return (
            f"NeuralDataset(n_stims={self.n_stims}, n_neurons={self.n_neurons}, n_freqs={self.n_freqs}, "
            f"stims=({shape}, T), T in [{min(self.lengths)}, {max(self.lengths)}], "
            f"R in [{min(self.n_repeats)}, {max(self.n_repeats)}], dt_ms={self.dt_ms:g}"
            + (", repeats='summary')" if self._summary is not None else ")")
        )

    # -- derived datasets --------------------------------------------------------------

    def subset(self, indices: Index) -> "NeuralDataset":
        """The stimuli at ``indices`` (ints, a boolean mask, a slice), in that order.

        The tensors are shared with this dataset, not copied.
        """
        picked = _resolve_index(indices, self.n_stims, "stimulus")
        if not picked:
            raise ValueError(f"subset({short_repr(indices)}) selects no stimulus; a dataset needs at least one.")
        return self._parts(picked)._with_ids(self._neuron_ids)

    def split(self, fractions: Union[float, Sequence[float]], seed: int = 0) -> List["NeuralDataset"]:
        """Split by stimulus (never inside one) into parts of the given fractions.

        The stimuli are shuffled with a generator seeded by ``seed`` (the global
        random state is untouched), part ``k`` takes the next
        ``round(cumsum(fractions)[k] * n_stims)`` of them, and each part keeps
        its stimuli in their original order. Fractions summing to less than one
        leave the remaining stimuli out; a single number ``f`` means ``(f, 1 - f)``.

        Args:
            fractions: Positive fractions summing to at most 1.
            seed: Seed of the shuffle; the same seed gives the same split.

        Returns:
            One :py:class:`NeuralDataset` per fraction.

        Raises:
            ValueError: If a fraction is not positive, they sum to more than 1,
                or a part would hold no stimulus.
        """
        if isinstance(fractions, numbers.Real) and not isinstance(fractions, bool):
            fractions = (float(fractions), 1.0 - float(fractions))
        if isinstance(fractions, (str, bytes)) or not isinstance(fractions, (Sequence, np.ndarray)) or len(fractions) == 0:
            raise ValueError(f"fractions must be a non-empty sequence of positive numbers, got {short_repr(fractions)}.")
        values = []
        for f in fractions:
            if isinstance(f, bool) or not isinstance(f, numbers.Real) or not math.isfinite(f) or f <= 0:
                raise ValueError(f"every split fraction must be a positive number, got {short_repr(list(fractions))}.")
            values.append(float(f))
        total = sum(values)
        if total > 1 + _FRACTION_TOLERANCE:
            raise ValueError(f"split fractions {values} sum to {total:g}; expected a sum of at most 1.")
        seed = check_seed(seed, "seed")
        n = self.n_stims
        cumulative = np.cumsum(values)
        if abs(total - 1) <= _FRACTION_TOLERANCE:
            cumulative[-1] = 1.0  # so that rounding never drops the last stimulus
        bounds = [0] + [int(round(c * n)) for c in cumulative]
        sizes = np.diff(bounds)
        if (sizes < 1).any():
            empty = int(np.flatnonzero(sizes < 1)[0])
            raise ValueError(
                f"split fractions {values} of {n} stimuli give part {empty} {list(sizes)[empty]} stimuli "
                f"(sizes {list(map(int, sizes))}); every part needs at least one stimulus."
            )
        generator = torch.Generator().manual_seed(int(seed))
        order = torch.randperm(n, generator=generator).tolist()
        return [self.subset(sorted(order[a:b])) for a, b in zip(bounds[:-1], bounds[1:])]

    def select_neurons(self, idx: Index) -> "NeuralDataset":
        """Keep only the neurons ``idx`` (ints, a boolean mask, a slice or a tensor), in that order."""
        picked = _resolve_index(idx, self.n_neurons, "neuron")
        if not picked:
            raise ValueError(f"select_neurons({short_repr(idx)}) selects no neuron; a dataset needs at least one.")
        index = torch.tensor(picked, dtype=torch.long)
        return self._parts(list(range(self.n_stims)), index)._with_ids(
            None if self._neuron_ids is None else [self._neuron_ids[i] for i in picked]
        )

    def _with_ids(self, ids: Optional[List[str]]) -> "NeuralDataset":
        self._neuron_ids = None if ids is None else list(ids)
        return self
