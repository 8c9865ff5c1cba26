"""deepSTRF's ``fit_multi_seed``: one :py:class:`~strfsolver.compat.deepstrf.fitter.Fitter` per seed, summarised.

``fit_multi_seed(model_factory, loader_factory, n_seeds=5, seeds=, fitter_kwargs=,
logger_factory=, output_dir=, set_seed_strict=)`` runs, for each seed, in
deepSTRF's order: seed every generator (:py:func:`strfsolver.set_random_seed`),
``model_factory(seed)``, ``loader_factory(seed) -> (train, val, test)``, a
Fitter's fit (the registered solver trains), then an evaluation of the final
state on validation and test. It returns deepSTRF's dict:

- ``seeds``, ``per_seed_histories`` (each seed's Fitter history);
- for every metric ``m`` (``loss`` and the validation metrics) and split
  ``val`` / ``test``: ``per_seed_<split>_<m>`` ``(n_seeds, N)`` (``(n_seeds, 1)``
  for the loss), ``mean_<split>_<m>`` and ``std_<split>_<m>`` across seeds
  (NaN-ignoring; the population standard deviation, ``ddof=0``);
- ``best_seed`` (best ``nanmean`` of the monitored metric on the validation of
  the final state; ties go to the earlier seed) and ``best_state_dict``.

With ``output_dir``: ``seed<seed>/history.json``, ``final.json``,
``final_neurons.pt``, ``best.pt`` and ``summary.json``, ``summary_neurons.pt``,
deepSTRF's files (per-neuron tensors in JSON as ``mean``, ``p10``, ``p50``,
``p90``, ``n_valid``), written atomically. For executors, strfsolver's own
files and a results table, use the ``"multi-seed"`` solver.
"""

from __future__ import annotations

import copy
import io as _bytes_io
import math
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from strfsolver.compat.deepstrf.fitter import DEFAULT_METRICS, Fitter, to_scalar
from strfsolver.utils import io
from strfsolver.utils import seeding as _random
from strfsolver.utils.checks import check_seed, short_repr

__all__ = ["fit_multi_seed"]

_MANAGED = ("model", "train_loader", "val_loader")


def _save_torch(path: Path, obj: Any) -> None:
    buffer = _bytes_io.BytesIO()
    torch.save(obj, buffer)
    io.atomic_write_bytes(path, buffer.getvalue())


def _describe(values: Tensor) -> Dict[str, float]:
    """A per-neuron tensor in JSON: its nanmean, deciles 1, 5 and 9 of the finite values, and their count."""
    values = values.detach().double().cpu().reshape(-1)
    finite = values[~values.isnan()]
    quantiles = torch.quantile(finite, torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)).tolist() if finite.numel() else [math.nan] * 3
    return {"mean": to_scalar(values), "p10": quantiles[0], "p50": quantiles[1], "p90": quantiles[2], "n_valid": int(finite.numel())}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Tensor):
        return float(value) if value.numel() == 1 else _describe(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _stack(values: Sequence[Any], key: str) -> Tensor:
    """``(n_seeds, N)`` of per-neuron tensors, ``(n_seeds, 1)`` of numbers."""
    rows = [torch.as_tensor(v, dtype=torch.float64).detach().cpu().reshape(-1) for v in values]
    if len({row.shape for row in rows}) > 1:
        raise ValueError(f"{key}: the seeds gave values of different shapes {sorted({tuple(r.shape) for r in rows})}.")
    return torch.stack(rows)


def _nanstd(stacked: Tensor) -> Tensor:
    """Across seeds (axis 0), NaN-ignoring, ``ddof=0`` (deepSTRF's and the ``"multi-seed"`` solver's)."""
    deviation = stacked - stacked.nanmean(dim=0, keepdim=True)
    return (deviation**2).nanmean(dim=0).sqrt()


def _log_fn(logger: Any, user_log_fn: Any) -> Callable[[Mapping[str, Any]], None]:
    """The seed's logger, else ``fitter_kwargs["log_fn"]``, else silence (deepSTRF's order)."""
    if logger is not None:
        return logger
    return user_log_fn if user_log_fn is not None else (lambda epoch_dict: None)


def _check_loaders(loaders: Any, seed: int) -> tuple:
    if not isinstance(loaders, (tuple, list)) or len(loaders) != 3:
        raise ValueError(f"loader_factory(seed={seed}) must return (train_loader, val_loader, test_loader), got {short_repr(loaders)}.")
    return tuple(loaders)


def fit_multi_seed(
    model_factory: Callable[[int], nn.Module],
    loader_factory: Callable[[int], Any],
    n_seeds: int = 5,
    *,
    seeds: Optional[Sequence[int]] = None,
    fitter_kwargs: Optional[Mapping[str, Any]] = None,
    logger_factory: Optional[Callable[[int], Any]] = None,
    output_dir: Optional[Union[str, Path]] = None,
    set_seed_strict: bool = False,
) -> Dict[str, Any]:
    """Fit the same Fitter configuration under several seeds (see the module's documentation).

    Args:
        model_factory: ``seed -> nn.Module``, called after the seed is set.
        loader_factory: ``seed -> (train_loader, val_loader, test_loader)``.
        n_seeds: Seeds ``0 .. n_seeds - 1`` unless ``seeds`` is given.
        seeds: The seeds (distinct integers >= 0).
        fitter_kwargs: :py:class:`Fitter` keywords; ``ckpt_path`` becomes
            ``<stem>_seed<seed><suffix>`` per seed.
        logger_factory: ``seed -> logger``: the seed's ``log_fn``; afterwards its
            ``finalize({"val": ..., "test": ...})`` and ``close()`` when it has them.
        output_dir: Folder of deepSTRF's files (see above).
        set_seed_strict: Deterministic algorithms during each fit (put back after it).

    Raises:
        ValueError: for seeds that are not distinct integers >= 0, ``fitter_kwargs`` naming
            ``model`` or a loader, or a ``loader_factory`` that does not return three loaders.
        KeyError: if the monitored metric is not among the validation metrics.
    """
    seeds = list(range(n_seeds)) if seeds is None else list(seeds)
    if not seeds:
        raise ValueError(f"give at least one seed (n_seeds >= 1), got n_seeds={short_repr(n_seeds)}, seeds={short_repr(seeds)}.")
    seeds = [check_seed(seed, f"seeds[{i}]") for i, seed in enumerate(seeds)]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"the seeds must be distinct, got {seeds}.")
    fitter_kwargs = dict(fitter_kwargs or {})
    managed = [key for key in _MANAGED if key in fitter_kwargs]
    if managed:
        raise ValueError(f"fitter_kwargs may not set {managed}: fit_multi_seed builds them from model_factory and loader_factory.")
    user_log_fn = fitter_kwargs.pop("log_fn", None)
    ckpt = fitter_kwargs.pop("ckpt_path", None)
    monitor = fitter_kwargs.get("monitor", "val_cc_norm")
    mode = fitter_kwargs.get("mode", "max")
    out = None if output_dir is None else Path(output_dir)
    # the best seed is picked on the final validation by the monitor: a key it cannot have (a train_ one)
    # is refused before any seed trains, not after all of them
    metric_names = {"loss", *(DEFAULT_METRICS if fitter_kwargs.get("val_metrics") is None else fitter_kwargs["val_metrics"])}
    if not isinstance(monitor, str) or not monitor.startswith("val_") or monitor[len("val_"):] not in metric_names:
        raise KeyError(f"monitor {short_repr(monitor)} is not a validation metric; fit_multi_seed picks the best seed by "
                       f"one of {sorted('val_' + name for name in metric_names)}.")

    histories: List[List[Dict[str, Any]]] = []
    finals: List[Dict[str, Dict[str, Any]]] = []
    states: List[Dict[str, Tensor]] = []
    for seed in seeds:
        with _random.restored_determinism():  # strict mode lasts for this seed's fit only
            _random.set_random_seed(seed, strict=set_seed_strict)
            model = model_factory(seed)
            train_loader, val_loader, test_loader = _check_loaders(loader_factory(seed), seed)
            logger = logger_factory(seed) if logger_factory is not None else None
            kwargs = dict(fitter_kwargs, log_fn=_log_fn(logger, user_log_fn))
            if ckpt is not None:
                path = Path(ckpt)
                kwargs["ckpt_path"] = path.with_name(f"{path.stem}_seed{seed}{path.suffix}")
            fitter = Fitter(model, train_loader, val_loader, **kwargs)
            history = fitter.fit()
            final = {"val": fitter.evaluate(val_loader), "test": fitter.evaluate(test_loader)}
        if logger is not None and callable(getattr(logger, "finalize", None)):
            logger.finalize(final)
        if logger is not None and callable(getattr(logger, "close", None)):
            logger.close()
        state = copy.deepcopy(fitter.model.state_dict())
        histories.append(history)
        finals.append(final)
        states.append(state)
        if out is not None:
            _write_seed(out / f"seed{seed}", history, final, state)

    results: Dict[str, Any] = {"seeds": seeds, "per_seed_histories": histories}
    for name in finals[0]["val"]:
        for split in ("val", "test"):
            stacked = _stack([final[split][name] for final in finals], f"{split}_{name}")
            results[f"per_seed_{split}_{name}"] = stacked
            results[f"mean_{split}_{name}"] = stacked.nanmean(dim=0)
            results[f"std_{split}_{name}"] = _nanstd(stacked)
    key = monitor[len("val_"):] if monitor.startswith("val_") else monitor
    if key not in finals[0]["val"]:
        raise KeyError(f"monitor {short_repr(monitor)} is not a validation metric; the metrics are {sorted(finals[0]['val'])}.")
    scores = [to_scalar(final["val"][key]) for final in finals]
    ranked = [i for i in range(len(seeds)) if not math.isnan(scores[i])] or [0]
    best = (max if mode == "max" else min)(ranked, key=lambda i: scores[i])  # the first of equal scores wins
    results["best_seed"] = seeds[best]
    results["best_state_dict"] = states[best]
    if out is not None:
        _write_summary(out, results, monitor, mode)
    return results


def _write_seed(folder: Path, history: List[Dict[str, Any]], final: Dict[str, Dict[str, Any]], state: Dict[str, Tensor]) -> None:
    io.atomic_write_json(folder / "history.json", _jsonable(history))
    io.atomic_write_json(folder / "final.json", _jsonable(final))
    neurons = {split: {k: v.detach().cpu() for k, v in values.items() if isinstance(v, Tensor) and v.numel() > 1} for split, values in final.items()}
    _save_torch(folder / "final_neurons.pt", neurons)
    _save_torch(folder / "best.pt", state)


def _write_summary(folder: Path, results: Dict[str, Any], monitor: str, mode: str) -> None:
    summary: Dict[str, Any] = {"seeds": results["seeds"], "best_seed": results["best_seed"], "monitor": monitor, "mode": mode}
    tensors: Dict[str, Tensor] = {}
    for key, value in results.items():
        if not key.startswith(("per_seed_", "mean_", "std_")) or key == "per_seed_histories":
            continue
        summary[key] = float(value.nanmean()) if value.numel() == 1 else _describe(value)
        if value.numel() > 1:
            tensors[key] = value
    io.atomic_write_json(folder / "summary.json", _jsonable(summary))
    _save_torch(folder / "summary_neurons.pt", tensors)
