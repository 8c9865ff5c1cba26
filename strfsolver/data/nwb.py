"""Read stimulus spectrograms and responses from an NWB file (optional: pynwb).

The layout expected, the common one for auditory experiments:

- each distinct stimulus is a ``TimeSeries`` in ``nwbfile.stimulus_template``
  (or ``nwbfile.stimulus``) whose ``data`` is the spectrogram ``(T_i, F)``
  sampled at ``rate`` Hz (so ``dt_ms = 1000 / rate``);
- every presentation is a row of the trials table (or of another intervals
  table) with a ``start_time`` and a column naming the stimulus; each
  presentation of a stimulus is one repeat;
- responses are either spike times in the ``units`` table, binned here into
  the stimulus' bins from each presentation's start, or an already binned
  ``TimeSeries`` ``(T_total, N)`` at the stimulus rate, sliced from each
  presentation's start.

Only what was recorded is data: a bin that is not entirely inside its
presentation's ``[start_time, stop_time)``, or (spikes) inside one of the
unit's ``obs_intervals``, is NaN for that unit, never a zero (nor the next
presentation's spikes). A presentation with a NaN (or infinite) start or stop
time, or a stop before its start, is refused with a ``ValueError`` naming its
row and id, not skipped: skipping would silently change the repeat count. A
sampling rate that is not positive and finite is refused too.

pynwb is imported only when :py:func:`from_nwb` is called.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence, Union

import numpy as np

from strfsolver.data.dataset import NeuralDataset
from strfsolver.utils.checks import as_float32, short_repr

__all__ = ["from_nwb"]


def _import_pynwb():
    try:
        import pynwb
    except ImportError as error:
        raise ImportError(
            "Reading NWB files needs pynwb: pip install strfsolver[nwb]"
        ) from error
    return pynwb


def _bin_spikes(spike_times: np.ndarray, unit_index: np.ndarray, n_units: int, start: float, n_bins: int, dt_s: float) -> np.ndarray:
    """Counts ``(n_units, n_bins)`` of the spikes in ``[start, start + n_bins*dt)``.

    ``spike_times`` is sorted; ``unit_index`` gives each spike's unit. Vectorised
    over units: one ``searchsorted`` and one ``bincount`` per presentation.
    """
    lo, hi = np.searchsorted(spike_times, [start, start + n_bins * dt_s], side="left")
    times = spike_times[lo:hi]
    units = unit_index[lo:hi]
    bins = np.floor((times - start) / dt_s).astype(np.int64)
    keep = (bins >= 0) & (bins < n_bins)
    flat = units[keep] * n_bins + bins[keep]
    return np.bincount(flat, minlength=n_units * n_bins).reshape(n_units, n_bins).astype(np.float32)


#: a bin counts as inside an interval when it sticks out by at most this fraction of a bin
#: (float rounding of times in seconds), at either end
_EDGE_TOLERANCE = 1e-3


def _merged(spans: np.ndarray, tol: float) -> np.ndarray:
    """``(k, 2)`` intervals sorted and merged where they overlap or touch (within ``tol``)."""
    spans = spans[np.argsort(spans[:, 0], kind="stable")]
    out = []
    for lo, hi in spans:
        if out and lo <= out[-1][1] + tol:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return np.asarray(out, dtype=np.float64).reshape(-1, 2)


def _covered(start: float, n_bins: int, dt_s: float, spans: np.ndarray) -> np.ndarray:
    """``(n_bins,)`` bool: whether bin ``k``, ``[start + k dt, start + (k+1) dt)``, lies inside
    one of the merged, sorted ``spans`` ``(k, 2)``."""
    if not len(spans):
        return np.zeros(n_bins, dtype=bool)
    tol = _EDGE_TOLERANCE * dt_s
    lo = start + np.arange(n_bins) * dt_s
    j = np.searchsorted(spans[:, 0], lo + tol, side="right") - 1
    return (j >= 0) & (spans[np.clip(j, 0, None), 1] >= lo + dt_s - tol)


def _observation_spans(nwbfile, rows, ids, path) -> Optional[list]:
    """Each selected unit's merged ``obs_intervals`` (``None``: the table has none, always observed)."""
    if "obs_intervals" not in nwbfile.units.colnames:
        return None
    spans = []
    for r, unit in zip(rows, ids):
        raw = np.asarray(nwbfile.units["obs_intervals"][r], dtype=np.float64).reshape(-1, 2)
        bad = ~np.isfinite(raw).all(axis=1) | (raw[:, 1] < raw[:, 0])
        if bad.any():
            raise ValueError(
                f"unit {unit} (row {r}) of {path} has obs_intervals {raw[bad][0].tolist()}; "
                "expected finite [start, stop] with stop >= start."
            )
        spans.append(_merged(raw, 0.0))
    return spans


def from_nwb(
    path: Union[str, os.PathLike],
    *,
    stim_column: str = "stimulus_name",
    intervals: str = "trials",
    responses: str = "spikes",
    binned_series: Optional[str] = None,
    stimuli: Optional[Sequence[str]] = None,
    units: Optional[Sequence[int]] = None,
) -> NeuralDataset:
    """Build a :py:class:`~strfsolver.data.NeuralDataset` from an NWB file.

    Args:
        path: The ``.nwb`` file.
        stim_column: Column of the intervals table naming each presentation's
            stimulus (a name of a stimulus ``TimeSeries``).
        intervals: ``"trials"`` or the name of another intervals table.
        responses: ``"spikes"`` to bin the ``units`` table's spike times, or
            ``"binned"`` to slice the ``TimeSeries`` named ``binned_series``
            (searched in acquisition and in every processing module).
        binned_series: Name of the binned responses ``(T_total, N)``.
        stimuli: Keep only these stimulus names, in this order (default: every
            stimulus presented, in order of first presentation).
        units: Keep only these rows of the units table (spikes only).

    Returns:
        The dataset; ``meta[i]["name"]`` is stimulus i's name and
        ``meta[i]["start_times"]`` the start of each of its presentations.
        ``neuron_ids`` holds the units table ids. Bins outside a
        presentation's ``[start_time, stop_time)`` or outside a unit's
        ``obs_intervals`` are NaN (not recorded) for that unit.

    Raises:
        ValueError: for a bad argument, a file that is not NWB, a stimulus
            ``rate`` that is not positive and finite, a presentation of a
            selected stimulus with a non-finite start or stop time (or a stop
            before its start), each naming what it found.
    """
    pynwb = _import_pynwb()
    if responses not in ("spikes", "binned"):
        raise ValueError(f"responses must be 'spikes' or 'binned', got {short_repr(responses)}.")
    if responses == "binned" and not binned_series:
        raise ValueError("responses='binned' needs binned_series=<name of the TimeSeries (T, N)>.")
    for value, name in ((stim_column, "stim_column"), (intervals, "intervals")):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string, got {short_repr(value)}.")
    stimuli = _check_names(stimuli)
    units = _check_units(units)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No NWB file at {path}.")
    try:
        io = pynwb.NWBHDF5IO(str(path), "r")
        nwbfile = io.read()
    except Exception as error:  # h5py and hdmf raise many kinds for a file that is not NWB
        raise ValueError(f"{path} is not a readable NWB file: {str(error).splitlines()[0] if str(error) else type(error).__name__}") from None
    with io:
        try:
            return _read(nwbfile, path, stim_column, intervals, responses, binned_series, stimuli, units)
        except ValueError as error:
            message = str(error)
            raise ValueError(message if str(path) in message else f"{path}: {message}") from None


def _check_names(stimuli: Optional[Sequence[str]]) -> Optional[list]:
    if stimuli is None:
        return None
    if isinstance(stimuli, str) or not isinstance(stimuli, Sequence):
        raise ValueError(f"stimuli must be a list of stimulus names or None, got {short_repr(stimuli)}.")
    if len(stimuli) == 0:
        raise ValueError("stimuli=[] selects no stimulus; pass None for every stimulus presented, or a list of names.")
    bad = [s for s in stimuli if not isinstance(s, str)]
    if bad:
        raise ValueError(f"stimuli must be names (strings), got {short_repr(bad[0])}.")
    if len(set(stimuli)) != len(stimuli):
        raise ValueError(f"stimuli names a stimulus twice: {list(stimuli)}.")
    return list(stimuli)


def _check_units(units: Optional[Sequence[int]]) -> Optional[list]:
    if units is None:
        return None
    if isinstance(units, (str, bytes)) or not isinstance(units, (Sequence, np.ndarray)):
        raise ValueError(f"units must be a list of row indices of the units table or None, got {short_repr(units)}.")
    if len(units) == 0:
        raise ValueError("units=[] selects no unit; pass None for every unit, or a list of row indices.")
    bad = [u for u in units if isinstance(u, (bool, np.bool_)) or not isinstance(u, (int, np.integer)) or u < 0]
    if bad:
        raise ValueError(f"units must be non-negative row indices of the units table, got {short_repr(bad[0])}.")
    return [int(u) for u in units]


def _read(nwbfile, path, stim_column, intervals, responses, binned_series, stimuli, units) -> NeuralDataset:
    """The dataset of an open NWB file; the arguments are those of :py:func:`from_nwb`, checked."""
    templates = dict(nwbfile.stimulus_template)
    templates.update({k: v for k, v in nwbfile.stimulus.items() if k not in templates})
    if not templates:
        raise ValueError(f"{path} has no stimulus TimeSeries in stimulus_template or stimulus.")
    table = nwbfile.trials if intervals == "trials" else nwbfile.intervals.get(intervals) if nwbfile.intervals else None
    if table is None:
        raise ValueError(f"{path} has no intervals table {short_repr(intervals)}.")
    if stim_column not in table.colnames:
        raise ValueError(
            f"the {short_repr(intervals)} table of {path} has no column {short_repr(stim_column)}; "
            f"its columns are {list(table.colnames)}."
        )
    names = [str(s) for s in table[stim_column][:]]
    starts = np.asarray(table["start_time"][:], dtype=np.float64)
    stops = np.asarray(table["stop_time"][:], dtype=np.float64)
    trial_ids = np.asarray(table.id[:])
    unknown = sorted(set(names) - set(templates))
    if unknown:
        raise ValueError(
            f"presentations name stimuli {unknown[:5]} that are not stimulus TimeSeries "
            f"of {path} (those are {sorted(templates)[:10]})."
        )
    order = list(dict.fromkeys(names)) if stimuli is None else list(stimuli)
    missing = [s for s in order if s not in templates]
    if missing:
        raise ValueError(f"stimuli {missing} are not stimulus TimeSeries of {path}.")

    rates = {s: templates[s].rate for s in order}
    no_rate = [s for s, r in rates.items() if r is None]
    if no_rate:
        raise ValueError(f"stimulus TimeSeries {short_repr(no_rate[0])} of {path} has timestamps but no sampling rate; every stimulus needs rate=....")
    for s, r in rates.items():
        if not np.isfinite(r) or r <= 0:
            raise ValueError(f"stimulus TimeSeries {short_repr(s)} of {path} has rate={r}; expected a positive, finite sampling rate in Hz.")
    rate = float(next(iter(rates.values())))
    odd = {s: r for s, r in rates.items() if not np.isclose(r, rate)}
    if odd:
        raise ValueError(f"stimuli are sampled at different rates: {rate} Hz and {odd}; expected one rate.")
    dt_s = 1.0 / rate

    for i, name in enumerate(names):
        if name in order and not (np.isfinite(starts[i]) and np.isfinite(stops[i]) and stops[i] > starts[i]):
            raise ValueError(
                f"presentation {i} (id {trial_ids[i]}) of the {intervals!r} table of {path} has start_time={starts[i]} "
                f"and stop_time={stops[i]}; expected finite times with stop_time > start_time (fix or remove the row)."
            )

    spectrograms = [as_float32(np.asarray(templates[s].data[:]), f"stimulus TimeSeries {s!r} of {path} (T, F)").T for s in order]
    for s, spectrogram in zip(order, spectrograms):
        if spectrogram.ndim != 2:
            raise ValueError(f"stimulus TimeSeries {short_repr(s)} of {path} has data of shape {spectrogram.T.shape}; expected a spectrogram (T, F).")

    if responses == "spikes":
        if nwbfile.units is None or len(nwbfile.units) == 0:
            raise ValueError(f"{path} has no units table to read spike times from.")
        rows = list(range(len(nwbfile.units))) if units is None else units
        outside = [r for r in rows if r >= len(nwbfile.units)]
        if outside:
            raise ValueError(f"units={units} asks for row {outside[0]} but the units table of {path} has {len(nwbfile.units)} rows (0 to {len(nwbfile.units) - 1}).")
        ids = [str(i) for i in np.asarray(nwbfile.units.id[:])[rows]]
        trains = [np.asarray(nwbfile.units["spike_times"][r], dtype=np.float64) for r in rows]
        unit_index = np.concatenate([np.full(len(t), k, dtype=np.int64) for k, t in enumerate(trains)])
        all_times = np.concatenate(trains) if trains else np.zeros(0)
        sort = np.argsort(all_times, kind="stable")
        all_times, unit_index = all_times[sort], unit_index[sort]
        observed = _observation_spans(nwbfile, rows, ids, path)
    else:
        series = nwbfile.acquisition.get(binned_series)
        if series is None:
            for module in nwbfile.processing.values():
                if binned_series in module.data_interfaces:
                    series = module[binned_series]
                    break
        if series is None:
            raise ValueError(f"{path} has no TimeSeries {short_repr(binned_series)} in acquisition or processing.")
        if series.rate is None or not np.isclose(series.rate, rate):
            raise ValueError(
                f"binned series {short_repr(binned_series)} is sampled at {series.rate} Hz but the stimuli at "
                f"{rate} Hz; expected the same rate."
            )
        binned = as_float32(np.asarray(series.data[:]), f"binned series {binned_series!r} of {path}")
        if binned.ndim == 1:
            binned = binned[:, None]
        offset = float(series.starting_time or 0.0)
        ids = [str(n) for n in range(binned.shape[1])]

    all_responses, meta = [], []
    for s, spectrogram in zip(order, spectrograms):
        n_bins = spectrogram.shape[1]
        trials = [i for i, name in enumerate(names) if name == s]
        trial_starts = starts[trials]
        if len(trial_starts) == 0:
            raise ValueError(f"stimulus {short_repr(s)} is never presented in the {short_repr(intervals)} table.")
        repeats = []
        for start, stop in zip(trial_starts, stops[trials]):
            in_trial = _covered(start, n_bins, dt_s, np.array([[start, stop]]))
            if responses == "spikes":
                counts = _bin_spikes(all_times, unit_index, len(ids), start, n_bins, dt_s)
                counts[:, ~in_trial] = np.nan
                for k, spans in enumerate(observed or ()):
                    counts[k, ~_covered(start, n_bins, dt_s, spans)] = np.nan
                repeats.append(counts)
            else:
                first = int(round((start - offset) * rate))
                chunk = np.full((n_bins, binned.shape[1]), np.nan, dtype=np.float32)
                available = binned[max(first, 0) : first + n_bins]
                chunk[max(-first, 0) : max(-first, 0) + len(available)] = available
                chunk[~in_trial] = np.nan
                repeats.append(chunk.T)
        all_responses.append(np.stack(repeats, axis=1))
        meta.append({"index": len(meta), "name": s, "start_times": [float(t) for t in trial_starts]})
    return NeuralDataset(spectrograms, all_responses, dt_ms=1000.0 * dt_s, meta=meta, neuron_ids=ids)
