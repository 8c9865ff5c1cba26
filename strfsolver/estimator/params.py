"""The constructor parameters of :py:class:`~strfsolver.estimator.STRFEstimator`: their
checks, their old names, and what they make of a fit (the solver's options, the loggers)."""

from __future__ import annotations

import inspect
import math
from typing import Any, Dict, List, Optional


from strfsolver.utils.checks import check_count, check_device, check_real
from strfsolver.utils.deprecation import renamed
from strfsolver.utils.checks import short_repr

__all__ = ["check_params", "solver_options", "fit_loggers", "renamed_params", "RENAMED_PARAMS"]

#: constructor parameters renamed in 0.2 (old name: new name); the old name works for one release
RENAMED_PARAMS = {"verbose": "progress", "log_dir": "logdir"}

# reserved model arguments: the estimator derives them from the data
_RESERVED_MODEL_KWARGS = ("n_freqs", "n_lags", "n_neurons")


def check_params(estimator) -> Dict[str, Any]:
    """Validate an estimator's constructor parameters; returns the model keyword arguments."""
    if not isinstance(estimator.model, str):
        raise ValueError(
            f"model must be the registered name of a model (see strfsolver.models.get_options()), got {short_repr(estimator.model)}."
        )
    if not isinstance(estimator.solver, str):
        raise ValueError(
            f"solver must be the registered name of a solver (see strfsolver.solver.get_options()), got {short_repr(estimator.solver)}."
        )
    check_count(estimator.n_lags, "n_lags", 1)
    if estimator.batch_size != "auto":
        check_count(estimator.batch_size, "batch_size", 1)
    check_count(estimator.max_epochs, "max_epochs", 1)
    check_count(estimator.patience, "patience", 1, allow_none=True)
    check_real(estimator.lr, "lr", 0.0, math.inf, low_open=True, high_open=True, allow_none=True)
    check_real(estimator.weight_decay, "weight_decay", 0.0, math.inf, low_open=False, high_open=True)
    if estimator.val_fraction != "auto":
        check_real(estimator.val_fraction, "val_fraction", 0.0, 1.0, low_open=False, high_open=True)
    if not (isinstance(estimator.loss, str) or callable(estimator.loss)):
        raise ValueError(f"loss must be a registered loss name ('mse', 'poisson') or a callable, got {short_repr(estimator.loss)}.")
    if estimator.model_kwargs is not None and not isinstance(estimator.model_kwargs, dict):
        raise ValueError(f"model_kwargs must be a dict or None, got {type(estimator.model_kwargs).__name__}.")
    kwargs = dict(estimator.model_kwargs or {})
    reserved = [k for k in _RESERVED_MODEL_KWARGS if k in kwargs]
    if reserved:
        raise ValueError(
            f"model_kwargs sets {reserved}; the estimator takes n_freqs from X, n_neurons from y and "
            "n_lags from its own n_lags parameter: remove them from model_kwargs."
        )
    check_device(estimator.device)
    return kwargs


def renamed_params(estimator) -> Dict[str, Any]:
    """``{new name: value}`` of the :py:data:`RENAMED_PARAMS`, an old spelling resolved at fit time
    (scikit-learn keeps the constructor's arguments as given): a ``DeprecationWarning`` for an old
    name, a ``ValueError`` for both names of one parameter."""
    defaults, values = inspect.signature(type(estimator).__init__).parameters, {}
    for old, new in RENAMED_PARAMS.items():
        values[new] = renamed(getattr(estimator, new), getattr(estimator, old), new, old, where=type(estimator).__name__,
                              default=defaults[new].default, error=ValueError, stacklevel=4)  # at the caller of fit
    return values


def fitter_stop_reason(fitter: Any) -> Optional[str]:
    """Why a fit ended (the best seed's fit for several seeds)."""
    reason = getattr(fitter, "stop_reason_", None)
    if reason is None and getattr(fitter, "result_", None) is not None:
        reason = fitter.result_.best_run.final.get("stop_reason")
    return reason


def fit_loggers(estimator, solver_name: str, options: Dict[str, Any], logdir: Any) -> List[Any]:
    """The fit's logger objects; for several seeds a per-seed factory goes into ``options`` instead.
    ``logdir`` is the estimator's, its old spelling resolved (:py:func:`renamed_params`)."""
    from strfsolver.loggers.logger_choice import check_logger_choices, logger_factory, make_loggers

    if estimator.loggers is None:
        return []
    if isinstance(estimator.loggers, (str, dict)) or not isinstance(estimator.loggers, (list, tuple)):
        raise ValueError(f"loggers must be a list of loggers or logger names, got {short_repr(estimator.loggers)}.")
    objects = [item for item in estimator.loggers if callable(item)]
    names = check_logger_choices([item for item in estimator.loggers if not callable(item)], "loggers")
    if names and logdir is None:
        raise ValueError(f"loggers names {[n['kind'] for n in names]}: give logdir, the folder they write into.")
    if solver_name == "multi-seed":
        if objects:
            raise ValueError("with solver='multi-seed' give logger names and logdir: each seed needs loggers of its own.")
        if names:
            options["logger_factory"] = logger_factory(names, logdir)
        return []
    return objects + (make_loggers(names, logdir) if names else [])


def solver_options(estimator, solver_name: str, monitor: str, mode: str) -> Dict[str, Any]:
    """The solver's options from the estimator's parameters and the monitored metric."""
    options: Dict[str, Any] = dict(monitor=monitor, mode=mode)
    if solver_name != "ridge":
        options.update(lr=estimator.lr, weight_decay=estimator.weight_decay, max_epochs=estimator.max_epochs, patience=estimator.patience)
    else:  # the closed form has no step size, epochs or patience (ridge refuses them)
        options.update(cv=estimator.cv, penalty=estimator.penalty)
        if estimator.alphas is not None:
            options["alphas"] = estimator.alphas if isinstance(estimator.alphas, (str, bytes, dict)) else list(estimator.alphas)
    return options
