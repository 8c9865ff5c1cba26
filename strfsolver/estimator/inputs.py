"""The inputs of :py:class:`~strfsolver.estimator.STRFEstimator`: checks and conversions.

The estimator takes scikit-learn's layout, time on axis 0 (``X``:
``(n_times, n_freqs)``, ``y``: ``(n_times, n_neurons)`` or
``(n_repeats, n_times, n_neurons)``, or lists of them, one per stimulus);
the solvers take the data contract's ``(F, T)`` stimuli and ``(N, R, T)``
responses. This module checks the former, with errors that name the
stimulus and both shapes, and converts between the two. It also holds out
the validation data that ``fit`` stops on.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from strfsolver.utils.checks import as_float32, check_seed, short_repr

__all__ = ["dataset_to_arrays", "stimulus_tensors"]

# a single stimulus is cut into this many contiguous blocks to hold some out
_N_BLOCKS = 10


def _is_sparse(value: Any) -> bool:
    return type(value).__module__.startswith("scipy.sparse") or (
        hasattr(value, "tocsr") and hasattr(value, "toarray")
    )


def _is_stimulus_list(value: Any) -> bool:
    """A list (or tuple) of arrays that are not 1-D rows: one array per stimulus.

    A list of numbers, of nested lists or of 1-D arrays is one array, as in
    scikit-learn (``X.tolist()`` is the same data as ``X``).
    """
    if not isinstance(value, (list, tuple)) or not value:
        return False
    return all(getattr(item, "ndim", None) not in (None, 0, 1) for item in value)


def _feature_names(value: Any) -> Optional[np.ndarray]:
    """The column names of a data frame when all are strings (scikit-learn's rule), else None."""
    columns = getattr(value, "columns", None)
    if columns is None or not hasattr(value, "iloc") or len(columns) == 0:
        return None
    names = np.asarray(list(columns), dtype=object)
    kinds = {type(name) for name in names}
    if str in kinds and len(kinds) > 1:
        raise TypeError(
            "X has column names of mixed types "
            f"{sorted(k.__name__ for k in kinds)}; feature names must all be strings "
            "(X.columns = X.columns.astype(str)) or none of them."
        )
    return names if kinds == {str} else None


def _as_float_array(value: Any, what: str) -> np.ndarray:
    """``value`` as a float64 NumPy array, with errors that say what came."""
    if value is None:
        raise ValueError(f"{what} is None; expected an array.")
    if _is_sparse(value):
        raise ValueError(
            f"{what} is a sparse matrix ({type(value).__name__}); STRFEstimator needs dense arrays: "
            "pass value.toarray()."
        )
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as error:  # ragged nesting
        raise ValueError(f"{what} must be an array of real numbers, got a {type(value).__name__} that is not one ({error}).") from None
    if np.iscomplexobj(array):
        raise ValueError(f"Complex data not supported: {what} has dtype {array.dtype}; expected real numbers.")
    if array.dtype.kind == "O":
        try:  # object arrays of numbers convert
            array = array.astype(np.float64)
        except (ValueError, TypeError) as error:  # the same type as NumPy's, as scikit-learn's checks expect
            raise type(error)(f"{what} holds objects that are not numbers ({error}); expected real numbers.") from None
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{what} must hold real numbers, got an array of dtype {array.dtype}; convert it to floats "
                         "(times, strings and bytes are not data).")
    return array.astype(np.float64, copy=False)


def _first_nonfinite(array: np.ndarray) -> Tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])


class _Data:
    """Validated stimuli ``(T_i, F)`` and responses ``(N, R_i, T_i)`` plus how they came."""

    def __init__(self, stims: List[np.ndarray], responses: Optional[List[np.ndarray]], is_list: bool, y_1d: bool, names):
        self.stims = stims
        self.responses = responses
        self.is_list = is_list
        self.y_1d = y_1d
        self.feature_names = names

    @property
    def n_freqs(self) -> int:
        return self.stims[0].shape[1]

    @property
    def n_neurons(self) -> int:
        return self.responses[0].shape[0]

    @property
    def single_repeat(self) -> bool:
        """Whether no stimulus has two recorded repeats of a neuron (an all-NaN repeat does not count)."""
        return all(int((~np.isnan(r)).any(axis=2).sum(axis=1).max()) <= 1 for r in self.responses)


def _check_X(X: Any, *, n_features: Optional[int], label: str = "X", estimator_name: str = "STRFEstimator"):
    """Stimuli as a list of finite ``(T_i, F)`` float64 arrays.

    Returns:
        ``(stims, is_list, feature_names)``.
    """
    is_list = _is_stimulus_list(X)
    if isinstance(X, (list, tuple)) and not X:
        raise ValueError(f"{label} is an empty list; expected an (n_times, n_freqs) array or a list of them, one per stimulus.")
    items = list(X) if is_list else [X]
    stims, names = [], None
    for i, item in enumerate(items):
        where = f"{label}[{i}] (stimulus {i})" if is_list else label
        item_names = _feature_names(item)
        if i == 0:
            names = item_names
        elif (names is None) != (item_names is None) or (names is not None and list(names) != list(item_names)):
            raise ValueError(f"{where} has column names {item_names} but {label}[0] has {names}; every stimulus needs the same bands.")
        array = _as_float_array(item, where)
        if array.ndim != 2:
            hint = " Reshape your data: x.reshape(-1, 1) for a single band." if array.ndim == 1 else ""
            raise ValueError(
                f"{where} has shape {array.shape}; expected a 2-D (n_times, n_freqs) spectrogram with time on axis 0.{hint}"
            )
        if array.shape[1] == 0:
            raise ValueError(
                f"{where} has 0 feature(s) (shape={array.shape}) while a minimum of 1 is required: "
                "expected (n_times, n_freqs) with n_freqs >= 1."
            )
        if array.shape[0] == 0:
            raise ValueError(f"{where} has 0 time bins (shape={array.shape}); expected (n_times >= 1, n_freqs).")
        if not np.isfinite(array).all():
            t, f = _first_nonfinite(array)
            raise ValueError(
                f"{where} contains NaN or inf (first at time bin {t}, band {f}); stimuli must be finite "
                "(NaN marks missing data in y only)."
            )
        if n_features is not None and array.shape[1] != n_features:
            raise ValueError(
                f"X has {array.shape[1]} features, but {estimator_name} is expecting {n_features} features as input "
                f"({where} has shape {array.shape}; expected (n_times, {n_features}))."
            )
        if i > 0 and array.shape[1] != stims[0].shape[1]:
            raise ValueError(
                f"{where} has {array.shape[1]} bands (shape {array.shape}) but {label}[0] has {stims[0].shape[1]}; "
                "every stimulus needs the same frequency bands."
            )
        stims.append(array)
    return stims, is_list, names


def _check_y(y: Any, stims: List[np.ndarray], is_list: bool, *, n_neurons: Optional[int], label: str = "y", x_label: str = "X"):
    """Responses as a list of ``(N, R_i, T_i)`` float64 arrays matching ``stims``.

    Returns:
        ``(responses, y_1d)``; ``y_1d`` when every ``y`` was ``(n_times,)``.
    """
    if y is None:
        raise ValueError(
            f"STRFEstimator requires y to be passed, but the target {label} is None; give the responses as "
            "(n_times, n_neurons), (n_repeats, n_times, n_neurons) or a list of those."
        )
    if is_list:
        if not isinstance(y, (list, tuple)):
            shape = f" of shape {np.shape(y)}" if hasattr(y, "shape") else ""
            raise ValueError(
                f"{x_label} is a list of {len(stims)} stimuli but {label} is a {type(y).__name__}{shape}; "
                f"expected a list of {len(stims)} response arrays, one per stimulus."
            )
        if len(y) != len(stims):
            raise ValueError(
                f"{x_label} holds {len(stims)} stimuli but {label} holds {len(y)} response arrays; expected one per stimulus."
            )
        items = list(y)
    else:
        items = [y]
    responses, dims = [], []
    for i, (item, stim) in enumerate(zip(items, stims)):
        where = f"{label}[{i}] (stimulus {i})" if is_list else label
        x_where = f"{x_label}[{i}]" if is_list else x_label
        n_times = stim.shape[0]
        array = _as_float_array(item, where)
        expected = f"({n_times},), ({n_times}, n_neurons) or (n_repeats, {n_times}, n_neurons)"
        if array.ndim not in (1, 2, 3):
            raise ValueError(f"{where} has shape {array.shape}; expected {expected}.")
        time_axis = 1 if array.ndim == 3 else 0
        if array.shape[time_axis] != n_times:
            raise ValueError(
                f"{where} has shape {array.shape}, i.e. {array.shape[time_axis]} time bins, but {x_where} has "
                f"{n_times} (shape {stim.shape}); expected {expected}."
            )
        if np.isinf(array).any():
            position = tuple(int(k) for k in np.argwhere(np.isinf(array))[0])
            raise ValueError(f"{where} contains inf at index {position}; responses must be finite, NaN marks missing data.")
        dims.append(array.ndim)
        if array.ndim == 1:
            array = array[None, None, :]
        elif array.ndim == 2:
            array = array.T[:, None, :]
        else:
            array = np.transpose(array, (2, 0, 1))
        if array.shape[0] == 0:
            raise ValueError(f"{where} has shape {np.shape(item)} with no neuron; expected at least one column.")
        if array.shape[1] == 0:
            raise ValueError(f"{where} has shape {np.shape(item)} with no repeat; expected n_repeats >= 1.")
        reference = n_neurons if n_neurons is not None else (responses[0].shape[0] if responses else None)
        if reference is not None and array.shape[0] != reference:
            origin = "the fitted estimator" if n_neurons is not None else f"{label}[0]"
            raise ValueError(
                f"{where} has {array.shape[0]} neurons (shape {np.shape(item)}) but {origin} has {reference}; "
                "every stimulus needs the same neurons, in the same columns."
            )
        responses.append(np.ascontiguousarray(array))
    if len(set(d == 1 for d in dims)) > 1:
        raise ValueError(
            f"{label} mixes 1-D (one neuron) and 2-D/3-D arrays across stimuli; give every stimulus the same form."
        )
    return responses, dims[0] == 1


def _seed_from(random_state: Any) -> int:
    """An integer seed from ``random_state``, with scikit-learn's meaning of it.

    ``None`` draws from NumPy's global generator (so a seeded script stays
    reproducible), an integer is the seed itself, a ``RandomState`` or
    ``Generator`` is drawn from.
    """
    if random_state is None:
        return int(np.random.randint(0, 2**31 - 1))
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"random_state must be a non-negative integer, a RandomState, a Generator or None, got {short_repr(random_state)}.")
        return check_seed(random_state, "random_state")
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**31 - 1))
    raise ValueError(f"random_state must be None, an integer, a numpy RandomState or a Generator, got {short_repr(random_state)}.")


def dataset_to_arrays(dataset) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """Stimuli and responses of a :py:class:`~strfsolver.data.NeuralDataset` in the estimator's layout.

    Args:
        dataset: A ``NeuralDataset`` with ``(F, T_i)`` stimuli and ``(N, R_i, T_i)`` responses.

    Returns:
        ``(X, y)``: a list of ``(T_i, F)`` arrays and a list of
        ``(R_i, T_i, N)`` arrays (time on axis 0 of each stimulus, as
        scikit-learn expects; NaN kept).
    """
    from strfsolver.data import NeuralDataset

    if not isinstance(dataset, NeuralDataset):
        raise ValueError(f"dataset_to_arrays expects a strfsolver.data.NeuralDataset, got {type(dataset).__name__}.")
    if dataset.stim_ndim != 2:
        raise ValueError(
            "the estimator takes (n_times, n_freqs) stimuli; this dataset has multi-channel (C, F, T) stimuli. "
            "Fit those with a solver directly (strfsolver.solver.init(...).fit(loader))."
        )
    X = [stim.numpy().T.copy() for stim in dataset.stims]
    y = [np.transpose(response.numpy(), (1, 2, 0)).copy() for response in dataset.responses]
    return X, y


def _unpack_dataset(X, y, x_label: str, y_label: str):
    """``(X, y, dt_ms)``: a NeuralDataset given as ``X`` (with ``y`` None) becomes arrays."""
    from strfsolver.data import NeuralDataset

    if not isinstance(X, NeuralDataset):
        return X, y, None
    if y is not None:
        raise ValueError(f"{x_label} is a NeuralDataset, which holds the responses already; pass {y_label}=None.")
    X_arrays, y_arrays = dataset_to_arrays(X)
    return X_arrays, y_arrays, X.dt_ms


def _split_stimuli(n_stims: int, val_fraction: float, rng: np.random.Generator) -> List[int]:
    """Indices of the stimuli held out for validation (at least one, never all)."""
    n_val = min(n_stims - 1, max(1, int(round(val_fraction * n_stims))))
    return sorted(int(i) for i in rng.choice(n_stims, size=n_val, replace=False))


def _split_blocks(n_times: int, val_fraction: float, rng: np.random.Generator):
    """Contiguous ``(start, stop)`` runs of bins for training and for validation.

    The stimulus is cut into up to :data:`_N_BLOCKS` equal blocks of at least
    2 bins; ``round(val_fraction * blocks)`` of them (at least one, never all)
    are held out. Adjacent blocks of one side are merged so that every run
    keeps its own context. Returns ``(train_runs, val_runs)``, or ``None``
    when the stimulus is too short to cut (fewer than 4 bins).
    """
    n_blocks = min(_N_BLOCKS, n_times // 2)
    if n_blocks < 2:
        return None
    edges = np.linspace(0, n_times, n_blocks + 1).round().astype(int)
    n_val = min(n_blocks - 1, max(1, int(round(val_fraction * n_blocks))))
    held = set(int(i) for i in rng.choice(n_blocks, size=n_val, replace=False))
    runs: Dict[bool, List[List[int]]] = {True: [], False: []}
    previous = None
    for b in range(n_blocks):
        side = b in held
        if side == previous:
            runs[side][-1][1] = int(edges[b + 1])
        else:
            runs[side].append([int(edges[b]), int(edges[b + 1])])
        previous = side
    return [tuple(r) for r in runs[False]], [tuple(r) for r in runs[True]]


def _to_dataset(stims: List[np.ndarray], responses: List[np.ndarray], dt_ms: float):
    from strfsolver.data import NeuralDataset

    # the data contract is (F, T) stimuli: the estimator's (T, F) arrays are transposed views
    return NeuralDataset([s.T for s in stims], list(responses), dt_ms)


def _check_recorded(responses: List[np.ndarray], label: str, is_list: bool) -> None:
    """Every neuron needs at least one recorded (non-NaN) bin to be fitted."""
    recorded = np.zeros(responses[0].shape[0], dtype=bool)
    for r in responses:
        recorded |= ~np.isnan(r).all(axis=(1, 2))
    if not recorded.all():
        missing = np.flatnonzero(~recorded).tolist()
        scope = " in any stimulus" if is_list else ""
        raise ValueError(
            f"{label} has no recorded value (all NaN) for neuron(s) {missing[:10]} (column index){scope}; "
            "drop those columns before fitting."
        )


def _split_data(data: _Data, val: Optional[_Data], val_fraction: float, rng: np.random.Generator):
    """Training data, validation data (or None) and a description of the split.

    ``val`` given is used as it is; else ``val_fraction`` of the stimuli (of
    several) or of the time bins (of one) is held out, drawn from ``rng``.
    """
    if val is not None:
        return data, val, {"kind": "given"}
    n_stims = len(data.stims)
    if val_fraction == "auto":
        from strfsolver.workflow.experiment import choose_valid_fraction

        val_fraction = choose_valid_fraction(n_stims)
    if val_fraction == 0:
        return data, None, {"kind": "none"}
    if n_stims >= 2:
        held = _split_stimuli(n_stims, val_fraction, rng)
        kept = [i for i in range(n_stims) if i not in held]

        def pick(indices):
            return _Data([data.stims[i] for i in indices], [data.responses[i] for i in indices], True, data.y_1d, None)

        return pick(kept), pick(held), {"kind": "stimuli", "indices": held}
    runs = _split_blocks(data.stims[0].shape[0], val_fraction, rng)
    if runs is None:
        warnings.warn(
            f"X has only {data.stims[0].shape[0]} time bins, too few to hold out a validation block; "
            "training on all of them and stopping on the training loss.",
            UserWarning,
            stacklevel=3,
        )
        return data, None, {"kind": "none"}
    train_runs, val_runs = runs

    def cut(spans):
        stims = [data.stims[0][a:b] for a, b in spans]
        responses = [data.responses[0][..., a:b] for a, b in spans]
        return _Data(stims, responses, True, data.y_1d, None)

    train, held = cut(train_runs), cut(val_runs)
    # a held-out block with no recorded bin cannot score; keep validating on the others
    keep = [i for i, r in enumerate(held.responses) if not np.isnan(r).all()]
    if not keep:
        return data, None, {"kind": "none"}
    held = _Data([held.stims[i] for i in keep], [held.responses[i] for i in keep], True, data.y_1d, None)
    return train, held, {"kind": "blocks", "train": train_runs, "val": [val_runs[i] for i in keep]}


def _check_feature_names(fitted: Optional[np.ndarray], names: Optional[np.ndarray], name: str) -> None:
    """Compare the column names of a new ``X`` with those seen in ``fit``, as scikit-learn does.

    Args:
        fitted: ``feature_names_in_`` of the fitted estimator, or None.
        names: The column names of the new ``X``, or None.
        name: The estimator's class name, for the messages.

    Raises:
        ValueError: if both have names and they differ (a missing or
            unnamed side only warns).
    """
    if fitted is None and names is None:
        return
    if fitted is None:
        warnings.warn(f"X has feature names, but {name} was fitted without feature names", UserWarning, stacklevel=3)
        return
    if names is None:
        warnings.warn(f"X does not have valid feature names, but {name} was fitted with feature names", UserWarning, stacklevel=3)
        return
    if len(fitted) != len(names) or np.any(fitted != names):
        unseen = sorted(set(names) - set(fitted))
        missing = sorted(set(fitted) - set(names))
        message = "The feature names should match those that were passed during fit.\n"
        if unseen:
            message += "Feature names unseen at fit time:\n" + "".join(f"- {n}\n" for n in unseen[:5])
        if missing:
            message += "Feature names seen at fit time, yet now missing:\n" + "".join(f"- {n}\n" for n in missing[:5])
        if not unseen and not missing:
            message += "Feature names must be in the same order as they were in fit.\n"
        raise ValueError(message)


def read_inputs(estimator, X, y=None, *, fitting: bool, need_y: bool, x_label: str = "X", y_label: str = "y") -> _Data:
    """Check ``X`` (and ``y``) against what ``estimator`` was fitted on (nothing when ``fitting``)."""
    if not fitting:
        estimator._check_is_fitted()
    n_features = None if fitting else estimator.n_features_in_
    stims, is_list, names = _check_X(X, n_features=n_features, label=x_label, estimator_name=type(estimator).__name__)
    if not fitting and x_label == "X":
        _check_feature_names(estimator.__dict__.get("feature_names_in_"), names, type(estimator).__name__)
    responses, y_1d = None, False
    if need_y:
        responses, y_1d = _check_y(
            y, stims, is_list, n_neurons=None if fitting else estimator.n_neurons_, label=y_label, x_label=x_label
        )
    return _Data(stims, responses, is_list, y_1d, names)


def stimulus_tensors(stims: List[np.ndarray]) -> List[torch.Tensor]:
    """``(T_i, F)`` arrays as ``(F, T_i)`` float32 tensors, through the one checked cast (a value
    beyond float32's range is named with its position in ``X[i]``)."""
    return [torch.from_numpy(np.ascontiguousarray(as_float32(s, f"X[{i}]").T)) for i, s in enumerate(stims)]
