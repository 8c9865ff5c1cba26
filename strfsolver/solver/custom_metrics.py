"""User-defined validation metrics: ``metrics={"name": callable}`` beside the built-in names.

The built-in metrics (:py:class:`~strfsolver.metrics.MetricAccumulator`) are
streamed from per-neuron sufficient statistics, batch by batch. A metric a
user writes has no such decomposition, so it sees the whole validation set at
once: the predictions and responses of every batch, concatenated along the
stimulus axis, each batch NaN-padded to the longest stimulus and to the
largest number of repeats (docs/conventions.md §1: NaN marks what was not
recorded). Predictions are NaN-padded as well, so a padded bin can never look
like a prediction of zero.

A custom metric is ``fn(pred (B, N, 1, T), responses (B, N, R, T)) -> (N,)``,
e.g. ``{"my_cc": lambda p, r: strfsolver.metrics.corrcoef(p, r)}``; its
per-neuron values appear in :py:meth:`~strfsolver.solver.Solver.validation`
under its name, its ``nanmean`` under ``val_<name>`` in the epoch dicts, and a
``monitor`` may name it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, Dict, List, Tuple

import torch
from torch import Tensor

from strfsolver.utils.checks import short_repr
from strfsolver.metrics import available_metrics

__all__ = ["split_metrics", "WholeSetCollector"]

MetricFunction = Callable[[Tensor, Tensor], Tensor]


def split_metrics(metrics: Any) -> Tuple[Tuple[str, ...], Dict[str, MetricFunction]]:
    """The metric names in order, and the callables of the custom ones.

    Args:
        metrics: A built-in name, a sequence whose items are built-in names or
            mappings ``name -> callable``, or one such mapping.

    Returns:
        ``(names, functions)``: every name (built-in and custom, in the given
        order) and the custom ones' callables.

    Raises:
        ValueError: for an unknown built-in name, a custom name that shadows a
            built-in one or repeats, a value that is not callable, or an item
            of another type.
    """
    builtin = set(available_metrics())
    items: List[Any] = [metrics] if isinstance(metrics, (str, Mapping)) else list(metrics)
    names: List[str] = []
    functions: Dict[str, MetricFunction] = {}
    for item in items:
        pairs = item.items() if isinstance(item, Mapping) else [(item, None)]
        for name, function in pairs:
            if not isinstance(name, str) or not name:
                raise ValueError(f"metrics: every metric name must be a non-empty string, got {short_repr(name)}.")
            if name in names:
                raise ValueError(f"metrics: the name {short_repr(name)} appears twice.")
            if function is None:
                if name not in builtin:
                    raise ValueError(
                        f"unknown metric(s) [{short_repr(name)}]; options are {', '.join(available_metrics())}, "
                        "or a mapping name -> callable(pred, responses) -> (N,) for a metric of your own."
                    )
            elif name in builtin:
                raise ValueError(f"metrics: the custom metric {short_repr(name)} has the name of a built-in metric; give it another name.")
            elif not callable(function):
                raise ValueError(
                    f"metrics: the custom metric {short_repr(name)} must be a callable (pred, responses) -> (N,), got {type(function).__name__}."
                )
            else:
                functions[name] = function
            names.append(name)
    if not names:
        raise ValueError(f"metrics must name at least one of {', '.join(available_metrics())} or map a name to a callable.")
    return tuple(names), functions


def _pad(tensor: Tensor, repeats: int, bins: int) -> Tensor:
    if tensor.shape[2] == repeats and tensor.shape[3] == bins:
        return tensor
    padded = tensor.new_full(tensor.shape[:2] + (repeats, bins), float("nan"))
    padded[:, :, : tensor.shape[2], : tensor.shape[3]] = tensor
    return padded


class WholeSetCollector:
    """Keeps every validation batch's prediction and responses for the custom metrics.

    Args:
        functions: ``name -> callable(pred, responses) -> (N,)``.
    """

    def __init__(self, functions: Dict[str, MetricFunction]):
        self.functions = dict(functions)
        self.preds: List[Tensor] = []
        self.responses: List[Tensor] = []

    def update(self, pred: Tensor, responses: Tensor) -> None:
        """Keep one batch (detached; on its device)."""
        self.preds.append(pred.detach())
        self.responses.append(responses.detach())

    def compute(self) -> Dict[str, Tensor]:
        """Each custom metric on the NaN-padded concatenation of the batches, as ``(N,)`` float64 on the CPU.

        Raises:
            ValueError: if a metric does not return ``N`` values.
        """
        if not self.functions or not self.preds:
            return {}
        repeats = max(r.shape[2] for r in self.responses)
        bins = max(r.shape[3] for r in self.responses)
        pred = torch.cat([_pad(p, 1, bins) for p in self.preds])
        responses = torch.cat([_pad(r, repeats, bins) for r in self.responses])
        n_neurons = responses.shape[1]
        out = {}
        for name, function in self.functions.items():
            values = torch.as_tensor(function(pred, responses))
            if values.shape != (n_neurons,):
                raise ValueError(
                    f"the custom metric {short_repr(name)} must return one value per neuron, shape ({n_neurons},), "
                    f"got shape {tuple(values.shape)}."
                )
            out[name] = values.detach().to("cpu", torch.float64)
        return out
