"""A model's constructor arguments, as :py:class:`~strfsolver.models.NeuralModel` records and saves them.

Every subclass ``__init__`` is wrapped so that the outermost call records
its bound arguments (:py:func:`bound_arguments`); ``save_pretrained`` writes
those that have a JSON form (:py:func:`argument_to_json`; unlike :py:func:`strfsolver.utils.checks.to_json`, a tensor or module has none) to ``config.json`` and lists
the others (``NOT_JSON``) as arguments to pass again.
"""

from __future__ import annotations

import inspect
import numbers
from typing import Any, Dict

__all__ = ["NOT_JSON", "argument_to_json", "bound_arguments"]

#: what :py:func:`argument_to_json` returns for a value without a JSON form (a module, a tensor, ...)
NOT_JSON = object()


def argument_to_json(value: Any) -> Any:
    """JSON form of a constructor argument, or ``NOT_JSON``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (list, tuple)):
        items = [argument_to_json(v) for v in value]
        return NOT_JSON if any(v is NOT_JSON for v in items) else items
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        items = {k: argument_to_json(v) for k, v in value.items()}
        return NOT_JSON if any(v is NOT_JSON for v in items.values()) else items
    return NOT_JSON


def bound_arguments(signature: inspect.Signature, args: tuple, kwargs: dict) -> Dict[str, Any]:
    """The arguments of one constructor call by name (``*args`` under ``"*<name>"``, ``**kwargs`` spread), without ``self``."""
    bound = signature.bind(None, *args, **kwargs)
    bound.apply_defaults()
    arguments: Dict[str, Any] = {}
    for index, (name, value) in enumerate(bound.arguments.items()):
        if index == 0:  # self
            continue
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            arguments.update(value)
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            if value:
                arguments["*" + name] = list(value)
        else:
            arguments[name] = value
    return arguments
