"""A scikit-learn style estimator around a model and a solver: :py:class:`STRFEstimator`.

For users with arrays rather than training loops::

    est = STRFEstimator(model="linear", n_lags=20).fit(X, y)
    est.predict(X_test), est.score(X_test, y_test), est.strfs_, est.scores_

Shapes follow scikit-learn, time on axis 0 (docs/conventions.md §1):

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

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from strfsolver.workflow.experiment import SCORE_METRICS
from strfsolver.estimator.files import load_estimator, save_estimator
from strfsolver.estimator.inputs import (
    stimulus_tensors,
    _check_recorded,
    _check_X,
    _check_y,
    _Data,
    _seed_from,
    _split_data,
    _to_dataset,
    _unpack_dataset,
    read_inputs,
)
from strfsolver.estimator.sessions import fit_sessions, is_sessions
from strfsolver.estimator.params import check_params, fit_loggers, fitter_stop_reason, renamed_params, solver_options
from strfsolver.estimator.sklearn_compat import _FallbackBaseEstimator, _FallbackNotFittedError, _FallbackRegressorMixin
from strfsolver.models.interpret import linear_strfs
from strfsolver.utils.checks import short_repr

# scikit-learn is optional: the estimator works without it. The choice is made
# here, where the class takes its bases, so that running this module with
# scikit-learn hidden gives the fallback class (tests/test_estimator.py does so)
try:
    from sklearn.base import BaseEstimator as _BaseEstimator
    from sklearn.base import RegressorMixin as _RegressorMixin
    from sklearn.exceptions import NotFittedError

    HAS_SKLEARN = True
except ImportError:  # pragma: no cover - exercised by monkeypatching in the tests
    HAS_SKLEARN = False
    _BaseEstimator = _FallbackBaseEstimator
    _RegressorMixin = _FallbackRegressorMixin
    NotFittedError = _FallbackNotFittedError

__all__ = ["STRFEstimator", "NotFittedError", "HAS_SKLEARN"]


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
            ``"linear"`` or ``"ln"``, or ``"auto"``: ``"ln"`` (non-negative
            output) for responses that never go below zero (counts, rates),
            ``"linear"`` for responses that do (LFP, ECoG, z-scored data).
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
        lr: Learning rate of the solver's AdamW optimizer; ``None``: the
            model's default (:py:attr:`strfsolver.models.NeuralModel.default_lr`;
            stimuli are standardized per band, so it suits any stimulus unit).
        weight_decay: Decoupled weight decay of the optimizer.
        batch_size: Stimuli per gradient step, or ``"auto"``: a quarter of the
            training stimuli, between 1 and 8 (several steps per epoch).
        max_epochs: Upper bound on training epochs.
        patience: Stop after this many epochs without improvement of the
            validation score (``None``: never stop early).
        val_fraction: Share held out for early stopping when ``fit`` gets no
            ``X_val``: of the stimuli for a list ``X``, of the time bins (in
            contiguous blocks, rounded to tenths) for a single stimulus.
            ``0`` trains on everything and stops on the training loss.
            ``"auto"``: a fifth of the stimuli, at least one and at most ten
            (:py:func:`strfsolver.workflow.experiment.choose_valid_count`), or a fifth
            of the bins of a single stimulus.
        random_state: Seed of the weights, the split and the shuffles
            (``None``: drawn from NumPy's global generator). The same seed
            gives the same fit on the CPU.
        device: Torch device to train and predict on (``"cpu"``, ``"cuda"``).
        progress: Show a progress bar over epochs.
        alphas: Ridge solver: absolute alphas to search (``None``: the
            default grid relative to the training Gram's mean eigenvalue).
        cv: Ridge solver: folds over stimuli (``K``, ``"loso"``, ``"gcv"``);
            an integer larger than the number of training stimuli becomes that
            number (``"gcv"`` for a single stimulus).
        penalty: Ridge solver: ``"ridge"`` or ``"laplacian"`` (smooth STRFs).
        loggers: Loggers of the fit: logger objects (``strfsolver.loggers.tracking``'s
            or any callable taking the epoch dict), or names among ``"csv"``,
            ``"jsonl"``, ``"tensorboard"``, ``"wandb"`` (or ``{"kind": name,
            ...options}``) that write into ``logdir``; with
            ``solver="multi-seed"`` names only, one set per seed.
        logdir: Folder of the named loggers.
        verbose, log_dir: Old names of ``progress`` and ``logdir``, taken for one
            release (a ``DeprecationWarning`` at ``fit``).

    Attributes:
        model_: The fitted ``nn.Module`` (best validation state).
        model_name_: The model fitted (``model``, or what ``"auto"`` chose).
        batch_size_: The batch size used (``batch_size``, or what ``"auto"`` chose).
        stop_reason_: Why training ended (``"patience"``, ``"max_epochs"``, ``"closed form"``...).
        solver_: The solver that fitted it. With ``solver="multi-seed"``
            three seeds (``random_state`` and the next two) are fitted and
            ``model_`` is the best seed's; ``solver_.result_`` holds them all.
        strfs_: ``(n_neurons, n_freqs, n_lags)`` STRFs for models with
            STRFs (``model.has_strf``), else ``None``. A model whose
            prefilter yields ``C > 1`` channels gives
            ``(n_neurons, C, F', n_lags)`` instead. Fitted on sessions: ``{session: (N_s, F, L)}``.
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
        model: str = "auto",
        solver: str = "auto",
        n_lags: int = 20,
        model_kwargs: Optional[Dict[str, Any]] = None,
        loss: Any = "mse",
        lr: Optional[float] = None,
        weight_decay: float = 1e-4,
        batch_size: Union[int, str] = "auto",
        max_epochs: int = 500,
        patience: Optional[int] = 20,
        val_fraction: Union[float, str] = "auto",
        random_state: Any = None,
        device: str = "cpu",
        progress: bool = False,
        alphas: Optional[Sequence[float]] = None,
        cv: Any = 5,
        penalty: str = "ridge",
        loggers: Optional[Sequence[Any]] = None,
        logdir: Optional[str] = None,
        verbose: Optional[bool] = None,
        log_dir: Optional[str] = None,
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
        self.progress = progress
        self.alphas = alphas
        self.cv = cv
        self.penalty = penalty
        self.loggers = loggers
        self.logdir = logdir
        self.verbose, self.log_dir = verbose, log_dir

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

    # ------------------------------------------------------------------ data
    def _set_feature_names(self, names) -> None:
        if names is not None:
            self.feature_names_in_ = names
        elif "feature_names_in_" in self.__dict__:
            del self.feature_names_in_

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None, X_val=None, y_val=None):
        """Fit the model to responses ``y`` evoked by stimuli ``X``.

        Args:
            X: ``(n_times, n_freqs)`` array or a list of them (one per
                stimulus), or a :py:class:`~strfsolver.data.NeuralDataset`
                (e.g. from :py:func:`strfsolver.data.load_npz`) with ``y=None``, or
                ``{session: NeuralDataset}`` (one shared core: :py:mod:`strfsolver.estimator.sessions`).
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
        if is_sessions(X):  # {session: NeuralDataset}: a shared core, a readout per session
            return fit_sessions(self, X, y, X_val)
        model_kwargs, settings = check_params(self), renamed_params(self)
        neuron_ids = getattr(X, "neuron_ids", None) if y is None else None  # a NeuralDataset names its neurons
        X, y, dt_ms = _unpack_dataset(X, y, "X", "y")
        if X_val is not None:
            X_val, y_val, _ = _unpack_dataset(X_val, y_val, "X_val", "y_val")
        data = read_inputs(self, X, y, fitting=True, need_y=True)
        if sum(s.shape[0] for s in data.stims) < 2:
            raise ValueError(
                f"X has a single time bin (n_samples=1, shape {data.stims[0].shape}); fitting needs at least 2 bins."
            )
        _check_recorded(data.responses, "y", data.is_list)
        if (X_val is None) != (y_val is None):
            raise ValueError("X_val and y_val go together: pass both or neither.")
        val = None
        if X_val is not None:
            val = _check_X(X_val, n_features=data.n_freqs, label="X_val", estimator_name=type(self).__name__)
            responses, _ = _check_y(y_val, val[0], val[1], n_neurons=data.n_neurons, label="y_val", x_label="X_val")
            val = _Data(val[0], responses, val[1], False, None)

        seed = _seed_from(self.random_state)
        from strfsolver.workflow.experiment import ExperimentSpec, build_experiment, choose_model, resolve_solver
        from strfsolver.utils.seeding import seeded

        # one seed for weights, split and shuffles: a repeated fit is the same fit; the
        # caller's random streams are left as they were (a scikit-learn estimator touches none)
        with seeded(seed):
            rng = np.random.default_rng(seed)
            train, val, split = _split_data(data, val, self.val_fraction, rng)
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
            model_name = choose_model(train.responses) if self.model == "auto" else self.model
            solver_name = resolve_solver(self.solver, model_name)
            options = solver_options(self, solver_name, monitor, mode)
            loggers = fit_loggers(self, solver_name, options, settings["logdir"])
            spec = ExperimentSpec(
                model=model_name, model_options=dict(model_kwargs, n_lags=self.n_lags), solver=solver_name,
                solver_options=options, loss=self.loss, batch_size=self.batch_size, device=self.device,
                progress=bool(settings["progress"]), loggers=loggers,
                # one fit per seed; the estimator keeps the best seed's model
                seeds=[seed, seed + 1, seed + 2] if solver_name == "multi-seed" else None, repeats="auto",
            )
            experiment = build_experiment(spec, train_set, valid_set, seed=seed)
            del train_set, valid_set  # the experiment holds what the fit needs (summarised when nothing reads each repeat)
            experiment.fit()
            fitter = experiment.solver
            net, log, best_epoch = experiment.model, experiment.history, experiment.best_epoch
            self._predictor = fitter
            self.model_name_, self.batch_size_, self.stop_reason_ = model_name, experiment.batch_size, fitter_stop_reason(fitter)
            if solver_name == "ridge":
                self.alphas_ = fitter.alphas_.numpy()

            import pandas as pd

            self.model_, self.solver_ = net, fitter
            self.dt_ms_, self.n_features_in_ = dt_ms, data.n_freqs
            self._set_feature_names(data.feature_names)
            self.n_neurons_ = data.n_neurons
            self._y_1d = data.y_1d
            self.n_iter_, self.best_epoch_ = len(log), best_epoch
            self.monitor_ = monitor
            self.validation_split_ = split
            self.history_ = pd.DataFrame([dict(row) for row in log])
            scored = val if val is not None else train
            self.scores_ = self._score_table(scored.stims, scored.responses, "validation" if val is not None else "training")
            if neuron_ids is not None:
                self.scores_.insert(0, "neuron_id", list(neuron_ids))
            self.strfs_ = linear_strfs(self.model_)
        return self

    # ------------------------------------------------------------------ prediction
    def _predict_list(self, stims: List[np.ndarray]) -> List[torch.Tensor]:
        """``(N, 1, T_i)`` float predictions on the CPU, one per stimulus."""
        tensors = stimulus_tensors(stims)
        preds = self._predictor.transform(tensors, batch_size=self.batch_size_)
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
        data = read_inputs(self, X, fitting=False, need_y=False)
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
        from strfsolver.workflow.experiment import evaluate

        tensors = stimulus_tensors(stims)
        return evaluate(self._predictor, tensors, responses, metrics, batch_size=self.batch_size_)

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
        data = read_inputs(self, X, y, fitting=False, need_y=True)
        metric = "cc" if data.single_repeat else "cc_norm"
        values = self._accumulate(data.stims, data.responses, (metric,))[metric]
        if np.isnan(values).all():
            return float("nan")
        return float(np.nanmean(values))

    def score_neurons(self, X, y=None):
        """Per-neuron table (``pandas.DataFrame``) of ``cc``, ``cc_norm``,
        ``cc_norm_hsu``, ``fve``, ``signal_power``, ``noise_power`` and ``snr`` on ``X``, ``y``."""
        X, y, _ = _unpack_dataset(X, y, "X", "y")
        data = read_inputs(self, X, y, fitting=False, need_y=True)
        return self._score_table(data.stims, data.responses, "given")

    # ------------------------------------------------------------------ STRFs and figures
    def plot_strfs(self, **kwargs):
        """Draw :py:attr:`strfs_` with :py:func:`strfsolver.models.plot_strfs`
        (needs matplotlib); keyword arguments go to it. Returns the figure."""
        self._check_is_fitted()
        if self.strfs_ is None:
            raise ValueError(
                f"model {short_repr(self.model_name_)} has no linear STRF; use strfsolver.models.gradient_strf(est.model_, stims) "
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
        return save_estimator(self, path)

    @classmethod
    def load(cls, path: Union[str, Path], device: Optional[str] = None) -> "STRFEstimator":
        """Read an estimator written by :py:meth:`save`.

        Args:
            path: The folder.
            device: Put the model there instead of the saved ``device``.

        Raises:
            ValueError: if the folder was not written by :py:meth:`save`.
        """
        return load_estimator(cls, path, device)
