"""A scikit-learn style estimator around a model and a solver: :py:class:`STRFEstimator`.

For users with arrays rather than training loops::

    est = STRFEstimator(model="linear", n_lags=20).fit(X, y)
    est.predict(X_test), est.score(X_test, y_test), est.strfs_, est.scores_

Shapes follow scikit-learn, time on axis 0 (CONVENTIONS.md §1):

- ``X``: ``(n_times, n_freqs)`` spectrogram, or a list of such arrays, one per
  stimulus (their lengths may differ);
- ``y``: ``(n_times, n_neurons)``, ``(n_repeats, n_times, n_neurons)`` (one
  row block per trial) or ``(n_times,)`` for one neuron; a list of those
  for a list ``X``. NaN marks a missing bin or repeat.

Rows of one array are consecutive time bins of one stimulus: the model is
time-lagged (a prediction at bin t uses bins t - n_lags + 1 .. t), so the
order of rows matters. A single 2-D ``X`` that is several stimuli glued
end to end is treated as one stimulus; the lags then run across the joins,
which costs at most ``n_lags - 1`` bins of mixed context per join. Pass a
list to keep stimuli apart.

scikit-learn is an optional extra (``pip install strfsolver[sklearn]``).
Without it the estimator still fits, predicts, scores and saves; only the
scikit-learn tools (``clone``, ``Pipeline``, ``GridSearchCV``...) need it.
"""

from __future__ import annotations

import inspect
import json
import math
import numbers
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from strfsolver.checks import check_count, check_real, to_json
from strfsolver.experiment import SCORE_METRICS

try:  # scikit-learn is optional: the estimator works without it
    from sklearn.base import BaseEstimator as _BaseEstimator
    from sklearn.base import RegressorMixin as _RegressorMixin
    from sklearn.exceptions import NotFittedError

    HAS_SKLEARN = True
except ImportError:  # pragma: no cover - exercised by monkeypatching in the tests
    HAS_SKLEARN = False
    _BaseEstimator = None
    _RegressorMixin = None
    NotFittedError = None

__all__ = ["STRFEstimator", "dataset_to_arrays", "NotFittedError", "HAS_SKLEARN"]

_FORMAT = "strfsolver-estimator"
_FORMAT_VERSION = 1
_PARAMS_FILE = "estimator.json"
_MODEL_FOLDER = "model"
# metrics reported per neuron in ``scores_``
# a single stimulus is cut into this many contiguous blocks to hold some out
_N_BLOCKS = 10
# reserved model arguments: the estimator derives them from the data
_RESERVED_MODEL_KWARGS = ("n_freqs", "n_lags", "n_neurons")


# ----------------------------------------------------------------------------------------
# fallbacks used when scikit-learn is not installed
# ----------------------------------------------------------------------------------------
class _FallbackNotFittedError(ValueError, AttributeError):
    """Raised when a method needs a fitted estimator (scikit-learn's class when installed)."""


class _FallbackBaseEstimator:
    """The parameter protocol of scikit-learn estimators, for use without scikit-learn.

    Parameters are the constructor's keyword arguments, stored as attributes
    of the same names.
    """

    @classmethod
    def _get_param_names(cls) -> List[str]:
        signature = inspect.signature(cls.__init__)
        return sorted(
            name
            for name, p in signature.parameters.items()
            if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        )

    def get_params(self, deep: bool = True) -> Dict[str, Any]:
        """The constructor parameters and their current values."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        """Set constructor parameters by name; returns the estimator."""
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"{name!r} is not a parameter of {type(self).__name__}; parameters are {valid}.")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {
            name: p.default for name, p in inspect.signature(type(self).__init__).parameters.items() if name != "self"
        }
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if defaults.get(k, inspect.Parameter.empty) != v]
        return f"{type(self).__name__}({', '.join(changed)})"


class _FallbackRegressorMixin:
    _estimator_type = "regressor"


if not HAS_SKLEARN:  # pragma: no cover - depends on the environment
    _BaseEstimator = _FallbackBaseEstimator
    _RegressorMixin = _FallbackRegressorMixin
    NotFittedError = _FallbackNotFittedError


# ----------------------------------------------------------------------------------------
# input checking
# ----------------------------------------------------------------------------------------
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
    array = np.asarray(value)
    if np.iscomplexobj(array):
        raise ValueError(f"Complex data not supported: {what} has dtype {array.dtype}; expected real numbers.")
    if array.dtype.kind not in "biuf":
        # object arrays of numbers convert; anything else raises numpy's own error
        array = array.astype(np.float64)
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
            raise ValueError(f"random_state must be a non-negative integer, a RandomState, a Generator or None, got {random_state!r}.")
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**31 - 1))
    raise ValueError(f"random_state must be None, an integer, a numpy RandomState or a Generator, got {random_state!r}.")


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


# ----------------------------------------------------------------------------------------
# the estimator
# ----------------------------------------------------------------------------------------
class STRFEstimator(_RegressorMixin, _BaseEstimator):
    """Fit an encoding model to neural responses with ``fit(X, y)``; scikit-learn compatible.

    The constructor only stores its arguments; they are checked by
    :py:meth:`fit`. ``fit`` builds the model
    (``strfsolver.models.init(model, n_freqs=..., n_lags=n_lags,
    n_neurons=..., **model_kwargs)``) and the solver
    (``strfsolver.solver.init(solver, model=..., criterion=loss, ...)``)
    and trains with early stopping on held-out data.

    Args:
        model: Registered model name (:py:mod:`strfsolver.models`), e.g.
            ``"linear"`` or ``"ln"``.
        solver: Registered solver name (:py:mod:`strfsolver.solver`), or
            ``"auto"``: the closed-form ``"ridge"`` for ``model="linear"``,
            ``"population"`` otherwise.
        n_lags: Temporal extent of the model's kernels, in bins (lag 0 = the
            current bin).
        model_kwargs: Extra keyword arguments of the model (``dt_ms``,
            ``kernel``, ``activation``...); ``n_freqs``, ``n_lags`` and
            ``n_neurons`` come from the data and ``n_lags``.
        loss: Registered loss name (``"mse"``, ``"poisson"``) or a callable
            ``loss(pred, responses)``.
        lr: Learning rate of the solver's AdamW optimizer.
        weight_decay: Decoupled weight decay of the optimizer.
        batch_size: Stimuli per gradient step.
        max_epochs: Upper bound on training epochs.
        patience: Stop after this many epochs without improvement of the
            validation score (``None``: never stop early).
        val_fraction: Share held out for early stopping when ``fit`` gets no
            ``X_val``: of the stimuli for a list ``X``, of the time bins (in
            contiguous blocks, rounded to tenths) for a single stimulus.
            ``0`` trains on everything and stops on the training loss.
        random_state: Seed of the weights, the split and the shuffles
            (``None``: drawn from NumPy's global generator). The same seed
            gives the same fit on the CPU.
        device: Torch device to train and predict on (``"cpu"``, ``"cuda"``).
        verbose: Show a progress bar over epochs.
        alphas: Ridge solver: absolute alphas to search (``None``: the
            default grid relative to the training Gram's mean eigenvalue).
        cv: Ridge solver: folds over stimuli (``K``, ``"loso"``, ``"gcv"``);
            an integer larger than the number of training stimuli becomes that
            number (``"gcv"`` for a single stimulus).
        penalty: Ridge solver: ``"ridge"`` or ``"laplacian"`` (smooth STRFs).

    Attributes:
        model_: The fitted ``nn.Module`` (best validation state).
        solver_: The solver that fitted it. With ``solver="multi-seed"``
            three seeds (``random_state`` and the next two) are fitted and
            ``model_`` is the best seed's; ``solver_.result_`` holds them all.
        strfs_: ``(n_neurons, n_freqs, n_lags)`` STRFs for models with
            STRFs (``model.has_strf``), else ``None``. A model whose
            prefilter yields ``C > 1`` channels gives
            ``(n_neurons, C, F', n_lags)`` instead.
        history_: ``pandas.DataFrame``, one row per epoch (``train_loss``,
            ``val_loss``, ``val_cc``, ``val_cc_norm``, ``lr``, ``seconds``...).
        scores_: ``pandas.DataFrame``, one row per neuron (index
            ``neuron``; a ``neuron_id`` column when ``fit`` was given a
            ``NeuralDataset``), with ``cc``, ``cc_norm``, ``cc_norm_hsu``, ``fve``,
            ``signal_power``, ``noise_power`` and ``snr`` of the fitted model
            on the validation data (on the training data when
            ``val_fraction=0``; ``scores_.attrs["data"]`` says which).
        alphas_: ``(n_neurons,)`` the alpha each neuron's ridge fit chose (ridge solver only).
        n_features_in_: Frequency bands ``F`` seen in ``fit``.
        feature_names_in_: Column names of a data frame ``X`` (only then).
        n_neurons_: Neurons ``N``.
        dt_ms_: Bin width in ms (``model_kwargs["dt_ms"]``, else the
            dataset's, else 5).
        n_iter_: Epochs run.
        best_epoch_: The epoch whose state was kept.
        monitor_: The validation key early stopping used (``"val_cc"``
            when every validation stimulus has one repeat, else
            ``"val_cc_norm"``; ``"train_loss"`` without validation data).
        validation_split_: What was held out: ``{"kind": "stimuli",
            "indices": [...]}``, ``{"kind": "blocks", "val": [(start,
            stop), ...], "train": [...]}``, ``{"kind": "given"}`` or
            ``{"kind": "none"}``.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> X = rng.random((300, 6))
        >>> y = np.convolve(X[:, 2], [0.0, 1.0, 0.5])[:300, None] + 0.1 * rng.standard_normal((300, 1))
        >>> est = STRFEstimator(model="linear", n_lags=4, lr=0.05, max_epochs=30, random_state=0).fit(X, y)
        >>> est.predict(X).shape, est.strfs_.shape
        ((300, 1), (1, 6, 4))
    """

    def __init__(
        self,
        model: str = "ln",
        solver: str = "auto",
        n_lags: int = 20,
        model_kwargs: Optional[Dict[str, Any]] = None,
        loss: Any = "mse",
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 8,
        max_epochs: int = 500,
        patience: Optional[int] = 20,
        val_fraction: float = 0.15,
        random_state: Any = None,
        device: str = "cpu",
        verbose: bool = False,
        alphas: Optional[Sequence[float]] = None,
        cv: Any = 5,
        penalty: str = "ridge",
    ):
        self.model = model
        self.solver = solver
        self.n_lags = n_lags
        self.model_kwargs = model_kwargs
        self.loss = loss
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.val_fraction = val_fraction
        self.random_state = random_state
        self.device = device
        self.verbose = verbose
        self.alphas = alphas
        self.cv = cv
        self.penalty = penalty

    # ------------------------------------------------------------------ scikit-learn protocol
    def __sklearn_is_fitted__(self) -> bool:
        return "model_" in self.__dict__

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        tags.target_tags.required = True
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        # a few epochs on the checks' i.i.d. toy data do not reach their R^2 > 0.5 bar
        tags.regressor_tags.poor_score = True
        # transform() gives the predicted responses: the estimator is also a transformer
        from sklearn.utils import TransformerTags

        tags.transformer_tags = TransformerTags(preserves_dtype=[])
        return tags

    def _check_is_fitted(self) -> None:
        if not self.__sklearn_is_fitted__():
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet; call fit(X, y) first "
                "(or STRFEstimator.load(path) for a saved one)."
            )

    # ------------------------------------------------------------------ parameters
    def _check_params(self) -> Dict[str, Any]:
        """Validate the constructor parameters; returns the model keyword arguments."""
        if not isinstance(self.model, str):
            raise ValueError(
                f"model must be the registered name of a model (see strfsolver.models.get_options()), got {self.model!r}."
            )
        if not isinstance(self.solver, str):
            raise ValueError(
                f"solver must be the registered name of a solver (see strfsolver.solver.get_options()), got {self.solver!r}."
            )
        check_count(self.n_lags, "n_lags", 1)
        check_count(self.batch_size, "batch_size", 1)
        check_count(self.max_epochs, "max_epochs", 1)
        check_count(self.patience, "patience", 1, allow_none=True)
        check_real(self.lr, "lr", 0.0, math.inf, low_open=True, high_open=True)
        check_real(self.weight_decay, "weight_decay", 0.0, math.inf, low_open=False, high_open=True)
        check_real(self.val_fraction, "val_fraction", 0.0, 1.0, low_open=False, high_open=True)
        if not (isinstance(self.loss, str) or callable(self.loss)):
            raise ValueError(f"loss must be a registered loss name ('mse', 'poisson') or a callable, got {self.loss!r}.")
        if self.model_kwargs is not None and not isinstance(self.model_kwargs, dict):
            raise ValueError(f"model_kwargs must be a dict or None, got {type(self.model_kwargs).__name__}.")
        kwargs = dict(self.model_kwargs or {})
        reserved = [k for k in _RESERVED_MODEL_KWARGS if k in kwargs]
        if reserved:
            raise ValueError(
                f"model_kwargs sets {reserved}; the estimator takes n_freqs from X, n_neurons from y and "
                "n_lags from its own n_lags parameter: remove them from model_kwargs."
            )
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError) as error:
            raise ValueError(f"device must name a torch device such as 'cpu' or 'cuda:0', got {self.device!r}: {error}") from None
        return kwargs

    # ------------------------------------------------------------------ data
    def _set_feature_names(self, names) -> None:
        if names is not None:
            self.feature_names_in_ = names
        elif "feature_names_in_" in self.__dict__:
            del self.feature_names_in_

    def _check_feature_names(self, names) -> None:
        fitted = self.__dict__.get("feature_names_in_")
        name = type(self).__name__
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

    def _read(self, X, y=None, *, fitting: bool, need_y: bool, x_label: str = "X", y_label: str = "y") -> _Data:
        if not fitting:
            self._check_is_fitted()
        n_features = None if fitting else self.n_features_in_
        stims, is_list, names = _check_X(X, n_features=n_features, label=x_label, estimator_name=type(self).__name__)
        if not fitting and x_label == "X":
            self._check_feature_names(names)
        responses, y_1d = None, False
        if need_y:
            responses, y_1d = _check_y(
                y, stims, is_list, n_neurons=None if fitting else self.n_neurons_, label=y_label, x_label=x_label
            )
        return _Data(stims, responses, is_list, y_1d, names)

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None, X_val=None, y_val=None):
        """Fit the model to responses ``y`` evoked by stimuli ``X``.

        Args:
            X: ``(n_times, n_freqs)`` array or a list of them (one per
                stimulus), or a :py:class:`~strfsolver.data.NeuralDataset`
                (e.g. from :py:func:`strfsolver.data.load_npz`) with ``y=None``.
            y: ``(n_times, n_neurons)``, ``(n_repeats, n_times, n_neurons)``
                or ``(n_times,)`` per stimulus, a list for a list ``X``; NaN
                marks missing data.
            X_val: Validation stimuli for early stopping, same forms as ``X``;
                ``None`` holds out ``val_fraction`` of the training data.
            y_val: Their responses (required with an array ``X_val``).

        Returns:
            The fitted estimator.

        Raises:
            ValueError: for malformed inputs (the message names the stimulus
                and both shapes) or invalid parameters.
        """
        model_kwargs = self._check_params()
        neuron_ids = getattr(X, "neuron_ids", None) if y is None else None  # a NeuralDataset names its neurons
        X, y, dt_ms = _unpack_dataset(X, y, "X", "y")
        if X_val is not None:
            X_val, y_val, _ = _unpack_dataset(X_val, y_val, "X_val", "y_val")
        data = self._read(X, y, fitting=True, need_y=True)
        if sum(s.shape[0] for s in data.stims) < 2:
            raise ValueError(
                f"X has a single time bin (n_samples=1, shape {data.stims[0].shape}); fitting needs at least 2 bins."
            )
        self._check_recorded(data.responses, "y", data.is_list)
        if (X_val is None) != (y_val is None):
            raise ValueError("X_val and y_val go together: pass both or neither.")
        val = None
        if X_val is not None:
            val = _check_X(X_val, n_features=data.n_freqs, label="X_val", estimator_name=type(self).__name__)
            responses, _ = _check_y(y_val, val[0], val[1], n_neurons=data.n_neurons, label="y_val", x_label="X_val")
            val = _Data(val[0], responses, val[1], False, None)

        seed = _seed_from(self.random_state)
        from strfsolver.experiment import ExperimentSpec, build_experiment, resolve_solver
        from strfsolver.random import seeded

        # one seed for weights, split and shuffles: a repeated fit is the same fit; the
        # caller's random streams are left as they were (a scikit-learn estimator touches none)
        with seeded(seed):
            rng = np.random.default_rng(seed)
            train, val, split = self._split(data, val, rng)
            if "dt_ms" in model_kwargs:
                dt_ms = float(model_kwargs["dt_ms"])
            elif dt_ms is not None:
                # the bin width of a dataset reaches models whose prefilters depend on it
                model_kwargs["dt_ms"] = dt_ms
            else:
                dt_ms = 5.0
            train_set = _to_dataset(train.stims, train.responses, dt_ms)
            valid_set = None if val is None else _to_dataset(val.stims, val.responses, dt_ms)
            if val is not None:
                monitor, mode = ("val_cc" if val.single_repeat else "val_cc_norm"), "max"
            else:
                monitor, mode = "train_loss", "min"
            solver_name = resolve_solver(self.solver, self.model)
            options = dict(
                lr=self.lr, weight_decay=self.weight_decay, max_epochs=self.max_epochs, patience=self.patience,
                monitor=monitor, mode=mode,
            )
            if solver_name == "ridge":
                options.update(cv=self.cv, penalty=self.penalty)
                if self.alphas is not None:
                    options["alphas"] = list(self.alphas)
            spec = ExperimentSpec(
                model=self.model, model_options=dict(model_kwargs, n_lags=self.n_lags), solver=solver_name,
                solver_options=options, loss=self.loss, batch_size=self.batch_size, device=self.device,
                progress=bool(self.verbose),
                # one fit per seed; the estimator keeps the best seed's model
                seeds=[seed, seed + 1, seed + 2] if solver_name == "multi-seed" else None,
            )
            experiment = build_experiment(spec, train_set, valid_set, seed=seed).fit()
            fitter = experiment.solver
            net, log, best_epoch = experiment.model, experiment.history, experiment.best_epoch
            self._predictor = fitter
            if solver_name == "ridge":
                self.alphas_ = fitter.alphas_.numpy()

            import pandas as pd

            self.model_ = net
            self.solver_ = fitter
            self.dt_ms_ = dt_ms
            self.n_features_in_ = data.n_freqs
            self._set_feature_names(data.feature_names)
            self.n_neurons_ = data.n_neurons
            self._y_1d = data.y_1d
            self.n_iter_ = len(log)
            self.best_epoch_ = best_epoch
            self.monitor_ = monitor
            self.validation_split_ = split
            self.history_ = pd.DataFrame([dict(row) for row in log])
            scored = val if val is not None else train
            self.scores_ = self._score_table(scored.stims, scored.responses, "validation" if val is not None else "training")
            if neuron_ids is not None:
                self.scores_.insert(0, "neuron_id", list(neuron_ids))
            self.strfs_ = self._strfs()
        return self

    @staticmethod
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

    def _split(self, data: _Data, val: Optional[_Data], rng: np.random.Generator):
        """Training data, validation data (or None) and a description of the split."""
        if val is not None:
            return data, val, {"kind": "given"}
        n_stims = len(data.stims)
        if self.val_fraction == 0:
            return data, None, {"kind": "none"}
        if n_stims >= 2:
            held = _split_stimuli(n_stims, self.val_fraction, rng)
            kept = [i for i in range(n_stims) if i not in held]

            def pick(indices):
                return _Data([data.stims[i] for i in indices], [data.responses[i] for i in indices], True, data.y_1d, None)

            return pick(kept), pick(held), {"kind": "stimuli", "indices": held}
        runs = _split_blocks(data.stims[0].shape[0], self.val_fraction, rng)
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

    # ------------------------------------------------------------------ prediction
    def _predict_list(self, stims: List[np.ndarray]) -> List[torch.Tensor]:
        """``(N, 1, T_i)`` float predictions on the CPU, one per stimulus."""
        tensors = [torch.from_numpy(np.ascontiguousarray(s.T, dtype=np.float32)) for s in stims]
        preds = self._predictor.transform(tensors, batch_size=self.batch_size)
        return [p.detach().cpu() for p in preds]

    def _format(self, preds: List[torch.Tensor], is_list: bool):
        arrays = []
        for p in preds:
            array = p[:, 0, :].T.double().numpy()  # (T, N)
            arrays.append(array[:, 0].copy() if self._y_1d else np.ascontiguousarray(array))
        return arrays if is_list else arrays[0]

    def predict(self, X):
        """Predicted responses.

        Args:
            X: ``(n_times, n_freqs)`` array, a list of them, or a
                :py:class:`~strfsolver.data.NeuralDataset` (read as a list).

        Returns:
            ``(n_times, n_neurons)`` float64 array (``(n_times,)`` when
            fitted on a 1-D ``y``), or a list of them for a list ``X``.
        """
        X, _, _ = _unpack_dataset(X, None, "X", "y")
        data = self._read(X, fitting=False, need_y=False)
        return self._format(self._predict_list(data.stims), data.is_list)

    def transform(self, X):
        """Same as :py:meth:`predict`: the predicted responses, so that the
        estimator can also be a step of a ``Pipeline`` that goes on after it."""
        return self.predict(X)

    def fit_transform(self, X, y, X_val=None, y_val=None):
        """Fit, then return the predicted responses to ``X`` (see :py:meth:`fit`, :py:meth:`predict`)."""
        return self.fit(X, y, X_val=X_val, y_val=y_val).predict(X)

    # ------------------------------------------------------------------ scoring
    def _accumulate(self, stims, responses, metrics) -> Dict[str, np.ndarray]:
        from strfsolver.experiment import evaluate

        tensors = [torch.from_numpy(np.ascontiguousarray(s.T, dtype=np.float32)) for s in stims]
        return evaluate(self._predictor, tensors, responses, metrics, batch_size=self.batch_size)

    def _score_table(self, stims, responses, data: str):
        import pandas as pd

        values = self._accumulate(stims, responses, SCORE_METRICS)
        table = pd.DataFrame(values, index=pd.RangeIndex(self.n_neurons_, name="neuron"))
        table.attrs["data"] = data
        return table

    def score(self, X, y=None):
        """Mean over neurons of the normalized correlation (``cc_norm``, Schoppe et al. 2016).

        With a single repeat everywhere the correction is undefined and the
        raw correlation ``cc`` of prediction and response is returned.
        Neurons whose score is undefined (no variance) are left out of the mean.

        Args:
            X: Stimuli, as in :py:meth:`fit`.
            y: Responses, as in :py:meth:`fit`.

        Returns:
            A float; NaN when no neuron has a defined score.
        """
        X, y, _ = _unpack_dataset(X, y, "X", "y")
        data = self._read(X, y, fitting=False, need_y=True)
        metric = "cc" if data.single_repeat else "cc_norm"
        values = self._accumulate(data.stims, data.responses, (metric,))[metric]
        if np.isnan(values).all():
            return float("nan")
        return float(np.nanmean(values))

    def score_neurons(self, X, y=None):
        """Per-neuron table (``pandas.DataFrame``) of ``cc``, ``cc_norm``,
        ``cc_norm_hsu``, ``fve``, ``signal_power``, ``noise_power`` and ``snr`` on ``X``, ``y``."""
        X, y, _ = _unpack_dataset(X, y, "X", "y")
        data = self._read(X, y, fitting=False, need_y=True)
        return self._score_table(data.stims, data.responses, "given")

    # ------------------------------------------------------------------ STRFs and figures
    def _strfs(self) -> Optional[np.ndarray]:
        has_strf = getattr(self.model_, "has_strf", None)
        if has_strf is False or not callable(getattr(self.model_, "strf", None)):
            return None
        try:
            # wrappers (the single-cell solver's neuron stack) have strf() without the has_strf flag
            with torch.no_grad():
                strfs = self.model_.strf().detach().cpu().double().numpy()
        except NotImplementedError:
            return None
        return strfs[:, 0] if strfs.shape[1] == 1 else strfs

    def _savable_model(self):
        """The population model to write: the fitted one, or the one a neuron stack folds back into."""
        if callable(getattr(self.model_, "save_pretrained", None)):
            return self.model_
        to_population = getattr(self.model_, "to_population", None)
        if callable(to_population):
            return to_population()  # raises a ValueError naming the shared tensors it cannot fold
        raise ValueError(
            f"the fitted model ({type(self.model_).__name__}) has no save_pretrained(); pickle the estimator instead."
        )

    def plot_strfs(self, **kwargs):
        """Draw :py:attr:`strfs_` with :py:func:`strfsolver.models.plot_strfs`
        (needs matplotlib); keyword arguments go to it. Returns the figure."""
        self._check_is_fitted()
        if self.strfs_ is None:
            raise ValueError(
                f"model {self.model!r} has no linear STRF; use strfsolver.models.gradient_strf(est.model_, stims) "
                "for an effective one."
            )
        from strfsolver.models import plot_strfs

        kwargs.setdefault("dt_ms", self.dt_ms_)
        return plot_strfs(self.strfs_, **kwargs)

    # ------------------------------------------------------------------ files
    def save(self, path: Union[str, Path]) -> Path:
        """Write the fitted estimator to the folder ``path`` (no pickle).

        ``estimator.json`` holds the parameters and the fitted attributes
        (history and scores included), ``model/`` the model as written by
        ``NeuralModel.save_pretrained`` (``config.json`` + safetensors).

        Returns:
            The folder.

        Raises:
            ValueError: if a parameter (a callable loss, a model_kwargs
                value) cannot be written to JSON.
        """
        self._check_is_fitted()
        from strfsolver.io import atomic_write_json

        folder = Path(path)
        params = self.get_params(deep=False)
        for key, value in params.items():
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                raise ValueError(
                    f"parameter {key}={value!r} cannot be written to JSON, so save() cannot store it; use a "
                    "registered name (or plain values in model_kwargs), or pickle the estimator instead."
                ) from None
        model = self._savable_model()
        folder.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(folder / _MODEL_FOLDER)
        names = self.__dict__.get("feature_names_in_")
        state = {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "params": params,
            "fitted": {
                "n_features_in_": int(self.n_features_in_),
                "feature_names_in_": None if names is None else [str(n) for n in names],
                "n_neurons_": int(self.n_neurons_),
                "dt_ms_": float(self.dt_ms_),
                "y_1d": bool(self._y_1d),
                "n_iter_": int(self.n_iter_),
                "best_epoch_": self.best_epoch_,
                "monitor_": self.monitor_,
                "validation_split_": self.validation_split_,
                "history": self.history_.to_dict(orient="records"),
                "scores": self.scores_.to_dict(orient="list"),
                "scores_data": self.scores_.attrs.get("data"),
            },
        }
        atomic_write_json(folder / _PARAMS_FILE, to_json(state))
        return folder

    @classmethod
    def load(cls, path: Union[str, Path], device: Optional[str] = None) -> "STRFEstimator":
        """Read an estimator written by :py:meth:`save`.

        Args:
            path: The folder.
            device: Put the model there instead of the saved ``device``.

        Raises:
            ValueError: if the folder was not written by :py:meth:`save`.
        """
        import pandas as pd

        from strfsolver import models as _models
        from strfsolver import solver as _solvers

        folder = Path(path)
        file = folder / _PARAMS_FILE
        if not file.is_file():
            raise ValueError(f"No {_PARAMS_FILE} in {folder}; expected a folder written by STRFEstimator.save().")
        try:
            state = json.loads(file.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{file} is not valid JSON: {error}.") from None
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise ValueError(f"{file} was not written by STRFEstimator.save().")
        params = dict(state["params"])
        if device is not None:
            params["device"] = device
        estimator = cls(**params)
        fitted = state["fitted"]
        estimator.model_ = _models.from_pretrained(folder / _MODEL_FOLDER, device=params["device"])
        monitor = fitted["monitor_"]
        options = dict(
            criterion=estimator.loss, lr=estimator.lr, weight_decay=estimator.weight_decay,
            max_epochs=estimator.max_epochs, patience=estimator.patience, device=params["device"],
            tqdm_on=bool(estimator.verbose), monitor=monitor, mode="min" if monitor == "train_loss" else "max",
        )
        # a fresh solver around the loaded model: ready to predict, or to train further
        from strfsolver.experiment import resolve_solver

        inner = resolve_solver(estimator.solver, estimator.model)
        inner = "population" if inner == "multi-seed" else inner
        estimator.solver_ = _solvers.init(inner, model=estimator.model_, **options)
        estimator.solver_.log = [dict(row) for row in fitted["history"]]
        estimator.model_ = estimator.solver_.model
        estimator._predictor = estimator.solver_
        estimator.n_features_in_ = fitted["n_features_in_"]
        if fitted.get("feature_names_in_") is not None:
            estimator.feature_names_in_ = np.asarray(fitted["feature_names_in_"], dtype=object)
        estimator.n_neurons_ = fitted["n_neurons_"]
        estimator.dt_ms_ = fitted["dt_ms_"]
        estimator._y_1d = fitted["y_1d"]
        estimator.n_iter_ = fitted["n_iter_"]
        estimator.best_epoch_ = fitted["best_epoch_"]
        estimator.monitor_ = monitor
        estimator.validation_split_ = _split_from_json(fitted["validation_split_"])
        estimator.history_ = pd.DataFrame(fitted["history"])
        estimator.scores_ = pd.DataFrame(fitted["scores"], index=pd.RangeIndex(estimator.n_neurons_, name="neuron"))
        estimator.scores_.attrs["data"] = fitted.get("scores_data")
        estimator.strfs_ = estimator._strfs()
        return estimator




def _split_from_json(split: Dict[str, Any]) -> Dict[str, Any]:
    restored = dict(split)
    for key in ("train", "val"):
        if key in restored:
            restored[key] = [tuple(run) for run in restored[key]]
    return restored
