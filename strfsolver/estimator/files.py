"""The folder :py:meth:`STRFEstimator.save <strfsolver.estimator.STRFEstimator.save>` writes
and :py:meth:`STRFEstimator.load <strfsolver.estimator.STRFEstimator.load>` reads.

No pickle: ``estimator.json`` holds the constructor parameters and the
fitted attributes (history and scores included), ``model/`` the model as
``NeuralModel.save_pretrained`` writes it (``config.json`` + safetensors).
The folder is written whole or not at all (:py:func:`strfsolver.utils.folders.write_folder`:
a temporary sibling renamed into place), and ``estimator.json`` records the
SHA-256 of the model's files, which ``load`` checks: a folder whose ``model/``
is not the one saved with its ``estimator.json`` is refused.
Parameters are written under their current names; a file of strfsolver 0.1
(``verbose``, ``log_dir``: see :py:data:`~strfsolver.estimator.params.RENAMED_PARAMS`)
loads under the new ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np

from strfsolver.utils.checks import short_repr, to_json
from strfsolver.utils.folders import recover_folder, write_folder
from strfsolver.utils.io import atomic_write_json, file_sha256, read_json
from strfsolver.models.base import CONFIG_FILE, WEIGHTS_FILE
from strfsolver.models.interpret import linear_strfs
from strfsolver.estimator.params import RENAMED_PARAMS

# the way in is STRFEstimator.save / STRFEstimator.load, documented there
__all__: List[str] = []

_FORMAT = "strfsolver-estimator"
_FORMAT_VERSION = 1
_PARAMS_FILE = "estimator.json"
_MODEL_FOLDER = "model"
_DIGEST_KEY = "model_sha256"
#: the files of model/ whose SHA-256 estimator.json records (the model card is prose, not checked)
_DIGESTED = (CONFIG_FILE, WEIGHTS_FILE)


def _savable_model(model):
    """The population model to write: the fitted one, or the one a neuron stack folds back into."""
    if callable(getattr(model, "save_pretrained", None)):
        return model
    to_population = getattr(model, "to_population", None)
    if callable(to_population):
        return to_population()  # raises a ValueError naming the shared tensors it cannot fold
    raise ValueError(
        f"the fitted model ({type(model).__name__}) has no save_pretrained(); pickle the estimator instead."
    )


def save_estimator(estimator, path: Union[str, Path]) -> Path:
    """Write the fitted ``estimator`` to the folder ``path``; see :py:meth:`STRFEstimator.save`."""
    folder = Path(path)
    if isinstance(estimator.n_neurons_, dict):
        raise ValueError("save() stores estimators of one session; save a multi-session fit's model with "
                         "est.model_.save_pretrained(folder) (every session's readout) and its tables with est.scores_.to_csv(...).")
    params = _current_names(estimator.get_params(deep=False))
    for key, value in params.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"parameter {key}={short_repr(value)} cannot be written to JSON, so save() cannot store it; use a "
                "registered name (or plain values in model_kwargs), or pickle the estimator instead."
            ) from None
    model = _savable_model(estimator.model_)
    names = estimator.__dict__.get("feature_names_in_")
    state = {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "params": params,
        "fitted": {
            "n_features_in_": int(estimator.n_features_in_),
            "feature_names_in_": None if names is None else [str(n) for n in names],
            "n_neurons_": int(estimator.n_neurons_),
            "dt_ms_": float(estimator.dt_ms_),
            "y_1d": bool(estimator._y_1d),
            "n_iter_": int(estimator.n_iter_),
            "model_name_": estimator.model_name_,
            "batch_size_": int(estimator.batch_size_),
            "stop_reason_": estimator.stop_reason_,
            "best_epoch_": estimator.best_epoch_,
            "monitor_": estimator.monitor_,
            "validation_split_": estimator.validation_split_,
            "history": estimator.history_.to_dict(orient="records"),
            "scores": estimator.scores_.to_dict(orient="list"),
            "scores_data": estimator.scores_.attrs.get("data"),
        },
    }
    with write_folder(folder, owned=(_PARAMS_FILE, _MODEL_FOLDER), what="an estimator folder") as temporary:
        model.save_pretrained(temporary / _MODEL_FOLDER)
        state[_DIGEST_KEY] = {name: file_sha256(temporary / _MODEL_FOLDER / name) for name in _DIGESTED}
        atomic_write_json(temporary / _PARAMS_FILE, to_json(state))
    return folder


def _check_model_digest(state: Dict[str, Any], file: Path, model_folder: Path) -> None:
    """Refuse a ``model/`` whose files are not those ``estimator.json`` was saved with."""
    digests = state.get(_DIGEST_KEY)
    if digests is None:
        return  # folders of strfsolver 0.1 carry no digest
    if not isinstance(digests, dict) or not digests or any(name not in _DIGESTED or not isinstance(d, str) for name, d in digests.items()):
        _fail(file, _DIGEST_KEY, f"a mapping of {' and '.join(_DIGESTED)} to SHA-256 digests", digests)
    for name, expected in sorted(digests.items()):
        target = model_folder / name
        if not target.is_file():
            raise ValueError(f"{file} records the SHA-256 of {target}, which is missing; the folder is incomplete.")
        found = file_sha256(target)
        if found != expected:
            raise ValueError(
                f"{target} does not match the SHA-256 recorded in {file} (recorded {expected[:12]}..., found {found[:12]}...): "
                f"the model in {model_folder} is not the one saved with {file}; the folder mixes files of two fits "
                "or was changed after it was saved."
            )


def load_estimator(cls, path: Union[str, Path], device: Optional[str] = None):
    """An instance of ``cls`` read from the folder ``path``; see :py:meth:`STRFEstimator.load`."""
    import pandas as pd

    from strfsolver import models as _models
    from strfsolver import solver as _solvers

    folder = Path(path)
    recover_folder(folder)  # a save that died between its renames left the old folder aside
    file = folder / _PARAMS_FILE
    if not file.is_file():
        raise ValueError(f"No {_PARAMS_FILE} in {folder}; expected a folder written by STRFEstimator.save().")
    state = read_json(file)
    params, fitted = _check_state(state, file, cls)
    if device is not None:
        params["device"] = device
    estimator = cls(**params)
    estimator.model_ = _models.from_pretrained(folder / _MODEL_FOLDER, device=params["device"])
    # after from_pretrained, which names a broken file precisely; this catches whole files of another fit
    _check_model_digest(state, file, folder / _MODEL_FOLDER)
    model_neurons = getattr(estimator.model_, "n_neurons", None)
    if model_neurons is not None and model_neurons != fitted["n_neurons_"]:
        raise ValueError(
            f"{file}: field 'fitted.n_neurons_' is {fitted['n_neurons_']} but the model in {folder / _MODEL_FOLDER} "
            f"has {model_neurons} neurons; the folder mixes files of two estimators."
        )
    monitor = fitted["monitor_"]
    options = dict(
        criterion=estimator.loss, device=params["device"],
        progress=bool(estimator.progress), monitor=monitor, mode="min" if monitor == "train_loss" else "max",
    )
    # a fresh solver around the loaded model: ready to predict, or to train further
    from strfsolver.workflow.experiment import resolve_solver

    # files of strfsolver 0.1 have no model_name_ (their model was never "auto")
    estimator.model_name_ = fitted.get("model_name_", estimator.model)
    estimator.batch_size_ = fitted.get("batch_size_", estimator.batch_size)
    estimator.stop_reason_ = fitted.get("stop_reason_")
    inner = resolve_solver(estimator.solver, estimator.model_name_)
    inner = "population" if inner == "multi-seed" else inner
    if inner != "ridge":  # the closed form has no step size, epochs or patience (ridge refuses them)
        options.update(lr=estimator.lr, weight_decay=estimator.weight_decay, max_epochs=estimator.max_epochs, patience=estimator.patience)
    try:
        estimator.solver_ = _solvers.init(inner, model=estimator.model_, **options)
    except ValueError as error:
        raise ValueError(f"{file}: field 'params' does not build a solver: {error}") from None
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
    estimator.strfs_ = linear_strfs(estimator.model_)
    return estimator


def _fail(file: Path, field: str, expected: str, value: Any) -> None:
    shown = f"a {type(value).__name__}" if isinstance(value, (dict, list)) else short_repr(value)
    raise ValueError(f"{file}: field {short_repr(field)} must be {expected}, got {shown}.")


def _is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


#: the fitted attributes load_estimator reads: (field, check, what it must be); None allowed where said
_FITTED_FIELDS = (
    ("n_features_in_", lambda v: _is_int(v, 1), "an integer >= 1"),
    ("n_neurons_", lambda v: _is_int(v, 1), "an integer >= 1"),
    ("dt_ms_", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0, "a positive number"),
    ("y_1d", lambda v: isinstance(v, bool), "true or false"),
    ("n_iter_", lambda v: _is_int(v, 0), "an integer >= 0"),
    ("best_epoch_", lambda v: v is None or _is_int(v, 0), "an integer >= 0 or null"),
    ("monitor_", lambda v: isinstance(v, str) and bool(v), "a key of the epoch dicts such as 'val_cc_norm'"),
    ("validation_split_", lambda v: isinstance(v, dict), "a mapping"),
    ("history", lambda v: isinstance(v, list) and all(isinstance(r, dict) for r in v), "a list of epoch dicts"),
    ("scores", lambda v: isinstance(v, dict) and all(isinstance(c, list) for c in v.values()), "a mapping of score names to per-neuron lists"),
)
_OPTIONAL_FIELDS = (
    ("feature_names_in_", lambda v: v is None or (isinstance(v, list) and all(isinstance(n, str) for n in v)), "a list of strings or null"),
    ("model_name_", lambda v: isinstance(v, str), "a registered model name"),
    ("batch_size_", lambda v: _is_int(v, 1), "an integer >= 1"),
    ("stop_reason_", lambda v: v is None or isinstance(v, str), "a string or null"),
)


def _check_state(state: Any, file: Path, cls) -> tuple:
    """The constructor parameters and fitted attributes of an ``estimator.json``, every field checked."""
    import inspect

    if not isinstance(state, dict) or state.get("format") != _FORMAT:
        raise ValueError(f"{file} was not written by STRFEstimator.save().")
    version = state.get("format_version", 1)
    if not _is_int(version, 1) or version > _FORMAT_VERSION:
        raise ValueError(f"{file}: field 'format_version' is {short_repr(version)}; this strfsolver reads versions 1 to {_FORMAT_VERSION}.")
    for key in ("params", "fitted"):
        if not isinstance(state.get(key), dict):
            _fail(file, key, "a mapping", state.get(key))
    params, fitted = _current_names(state["params"]), state["fitted"]
    known = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"{file}: field 'params' has {short_repr(unknown[0])}, which {cls.__name__} does not take; it takes {sorted(known)}.")
    if "device" not in params:
        raise ValueError(f"{file}: field 'params' has no 'device'.")
    for name, check, expected in _FITTED_FIELDS:
        if name not in fitted:
            raise ValueError(f"{file}: field 'fitted.{name}' is missing.")
        if not check(fitted[name]):
            _fail(file, f"fitted.{name}", expected, fitted[name])
    for name, check, expected in _OPTIONAL_FIELDS:
        if name in fitted and not check(fitted[name]):
            _fail(file, f"fitted.{name}", expected, fitted[name])
    names = fitted.get("feature_names_in_")
    if names is not None and len(names) != fitted["n_features_in_"]:
        raise ValueError(f"{file}: field 'fitted.feature_names_in_' has {len(names)} names for n_features_in_={fitted['n_features_in_']}.")
    lengths = {len(c) for c in fitted["scores"].values()}
    if lengths - {fitted["n_neurons_"]}:
        raise ValueError(f"{file}: field 'fitted.scores' must hold {fitted['n_neurons_']} values (one per neuron) per score, got lengths {sorted(lengths)}.")
    return params, fitted


def _current_names(params: Dict[str, Any]) -> Dict[str, Any]:
    """``params`` under the current names: an old name's value (unless ``None``, its default) moves to the new name."""
    params = dict(params)
    for old, new in RENAMED_PARAMS.items():
        value = params.pop(old, None)
        if value is not None:
            params[new] = value
    return params


def _split_from_json(split: Dict[str, Any]) -> Dict[str, Any]:
    restored = dict(split)
    for key in ("train", "val"):
        if key in restored:
            restored[key] = [tuple(run) for run in restored[key]]
    return restored
