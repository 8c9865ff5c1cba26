"""Validation and prediction of a :py:class:`~strfsolver.solver.Solver`: the code behind its
``validation`` and ``transform`` hooks.

Both run the model in eval mode through the solver's ``prepare`` and its
``_inference`` hook, so a subclass that changes how a batch becomes a
prediction changes them too.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from strfsolver import losses as _losses
from strfsolver.utils.checks import as_float32, check_count
from strfsolver.data import ValidationCache, metric_responses
from strfsolver.metrics import MetricAccumulator
from strfsolver.solver.batches import begin_sequence, model_dtype
from strfsolver.solver.custom_metrics import WholeSetCollector
from strfsolver.solver.neurons import NeuronLossMean, bin_counts, neuron_losses
from strfsolver.solver.repeat_readers import check_repeats_available
from strfsolver.solver.state import NeuronTrainingState

__all__ = ["evaluate", "predict"]


@torch.no_grad()
def evaluate(solver: Any, loader: Iterable[Dict[str, Any]], cache: Optional[ValidationCache] = None) -> Dict[str, Any]:
    """What :py:meth:`Solver.validation` returns, from a loader or from a fit's validation cache."""
    check_repeats_available(solver, loader)
    was_training = solver.model.training
    solver.model.eval()
    accumulator = MetricAccumulator(solver.builtin_metrics) if solver.builtin_metrics else None
    collector = WholeSetCollector(solver.metric_functions) if solver.metric_functions else None
    builtin = isinstance(solver.criterion, (_losses.MSELoss, _losses.PoissonLoss))
    tracks_neurons = issubclass(solver.state_class, NeuronTrainingState)
    per_neuron = NeuronLossMean() if builtin or tracks_neurons else None
    loss_sum, n_stims = torch.zeros((), dtype=torch.float64, device=solver.device), 0
    pairs = cache.batches() if cache is not None else ((b, None) for b in map(solver.prepare, loader))
    try:
        for batch, summary in pairs:
            begin_sequence(solver.model)
            pred = solver._inference(batch)
            responses = batch["responses"]
            size = int(responses.shape[0])
            if per_neuron is not None:
                per_neuron.update(neuron_losses(solver.criterion, pred, responses), bin_counts(responses))
            if not builtin:
                loss_sum += solver.criterion(pred, responses).detach().double() * size
            n_stims += size
            if accumulator is not None:
                accumulator.update(pred, summary if summary is not None else metric_responses(batch))
            if collector is not None:
                collector.update(pred, responses)
    finally:
        solver.model.train(was_training)
    if n_stims == 0:
        raise ValueError("the validation loader yielded no batch.")
    result: Dict[str, Any] = {}
    if builtin:
        values = per_neuron.compute()
        reduction = solver.criterion.reduction
        result["loss"] = float(values.nanmean() if reduction in ("mean", "none") else values.nansum())
    else:
        result["loss"] = float(loss_sum) / n_stims
    if tracks_neurons:
        result["neuron_loss"] = per_neuron.compute().cpu()
    computed = accumulator.compute() if accumulator is not None else {}
    if collector is not None:
        computed.update(collector.compute())
    # in the order of solver.metrics, built-in and custom alike
    result.update({name: computed[name].cpu() for name in solver.metrics})
    return result


def _as_model_dtype(value: Any, dtype: torch.dtype, what: str) -> Tensor:
    # a float32 model gets its stimuli through the one checked cast: 1e39 is named, not turned into inf
    if dtype == torch.float32:
        return torch.as_tensor(as_float32(value, what))
    return torch.as_tensor(value, dtype=dtype)


@torch.no_grad()
def predict(solver: Any, stims: Union[Tensor, np.ndarray, Sequence[Union[Tensor, np.ndarray]]], batch_size: int = 32):
    """What :py:meth:`Solver.transform` returns: predictions in chunks, stimuli of a list padded within a chunk."""
    check_count(batch_size, "batch_size", 1)
    was_training = solver.model.training
    solver.model.eval()
    dtype = model_dtype(solver.model)

    def predict(chunk: Tensor, start: int) -> Tensor:
        if not bool(torch.isfinite(chunk).all()):
            bad = int((~torch.isfinite(chunk)).flatten(1).any(1).nonzero()[0])
            raise ValueError(f"stimulus {start + bad} of the input has NaN or infinite values; predictions need finite stimuli.")
        begin_sequence(solver.model)
        return solver._inference({"stims": chunk.to(solver.device)})

    try:
        if isinstance(stims, (Tensor, np.ndarray)):
            stims = _as_model_dtype(stims, dtype, "stims")
            if stims.ndim not in (3, 4):
                raise ValueError(
                    f"stims must be (B, F, T) or (B, C, F, T) or a list of (F, T) stimuli, got a tensor of shape {tuple(stims.shape)}."
                )
            return torch.cat([predict(stims[i : i + batch_size], i) for i in range(0, stims.shape[0], batch_size)], dim=0)
        items = [_as_model_dtype(s, dtype, f"stims[{i}]") for i, s in enumerate(stims)]
        for i, item in enumerate(items):
            if item.ndim not in (2, 3) or item.shape[:-1] != items[0].shape[:-1]:
                raise ValueError(
                    f"stimulus {i} has shape {tuple(item.shape)} but stimulus 0 has {tuple(items[0].shape)}; "
                    "expected (F, T_i) or (C, F, T_i) stimuli that differ only in T_i."
                )
        out = []
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            bins = max(item.shape[-1] for item in chunk)
            padded = chunk[0].new_zeros((len(chunk),) + tuple(chunk[0].shape[:-1]) + (bins,))
            for b, item in enumerate(chunk):
                padded[b, ..., : item.shape[-1]] = item
            pred = predict(padded, start)
            out.extend(pred[b, ..., : item.shape[-1]] for b, item in enumerate(chunk))
        return out
    finally:
        solver.model.train(was_training)
