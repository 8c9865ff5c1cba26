"""Stand-ins for scikit-learn's estimator base classes, used when scikit-learn is not installed.

scikit-learn is an optional extra (``pip install strfsolver[sklearn]``):
without it :py:class:`~strfsolver.estimator.STRFEstimator` builds on these
classes, which give it the parameter protocol (``get_params``,
``set_params``, the ``repr``) and the ``NotFittedError`` it raises, so that
fitting, predicting, scoring and saving work the same way. The choice
between these and scikit-learn's own classes is made in
:py:mod:`strfsolver.estimator.estimator`.
"""

from __future__ import annotations

import inspect
from typing import Any, Dict, List
from strfsolver.utils.checks import short_repr

# the classes are private: they stand in for scikit-learn's, whose names are the public ones
__all__: List[str] = []


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
                raise ValueError(f"{short_repr(name)} is not a parameter of {type(self).__name__}; parameters are {valid}.")
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
