"""Checks of the training data against the model, made when a fit starts.

The data contract of each stimulus on its own is checked by
:py:class:`~strfsolver.data.NeuralDataset`; what can only be judged with the
model in hand lives here, so that a fit that could not learn part of its
model stops before its first epoch instead of finishing silently.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional

import torch
from torch import nn

from strfsolver.utils.checks import is_count, short_repr

__all__ = ["declared_neurons", "served_dataset", "check_fit_data", "check_bin_width", "may_serve_empty_batches", "check_lags_fit_stimuli", "check_neurons_have_training_data", "describe_non_finite"]


def served_dataset(loader: Any) -> Any:
    """The dataset a loader serves, through any ``torch.utils.data.Subset`` (whose neurons and
    stimulus format are its dataset's); ``None`` for a loader that does not say."""
    dataset = getattr(loader, "dataset", None)
    while isinstance(dataset, torch.utils.data.Subset):
        dataset = dataset.dataset
    return dataset


def _dataset(loader: Any) -> Any:
    """The :py:class:`~strfsolver.data.NeuralDataset` a loader serves, or ``None`` when it does not say.

    Unlike :py:func:`served_dataset` it does not look through a ``Subset``: the checks here read the
    stimuli's lengths and which neurons were recorded, which a ``Subset`` of stimuli changes."""
    dataset = getattr(loader, "dataset", None)
    return dataset if all(hasattr(dataset, name) for name in ("n_neurons", "n_freqs", "lengths")) else None


def _recorded(dataset: Any):
    """``(S, N)`` bool, neuron n recorded in stimulus s: the dataset's own table (kept for data on
    disk or summarised, so that no check reads the responses), else computed one stimulus at a time."""
    recorded = getattr(dataset, "recorded", None)
    if recorded is not None:
        return recorded
    return torch.stack([~responses.isnan().flatten(1).all(1) for responses in dataset.responses])


def declared_neurons(model: Any) -> Optional[int]:
    """The number of neurons a model declares: ``model.n_neurons``, or deepSTRF's ``model.O``
    (its output count); ``None`` when it declares neither."""
    for attribute in ("n_neurons", "O"):
        value = getattr(model, attribute, None)
        if is_count(value, 1):
            return int(value)
    return None


def check_fit_data(model: Any, loader: Any, valid_loader: Optional[Any] = None, test_loader: Optional[Any] = None,
                   n_neurons: Optional[int] = None) -> None:
    """Every check of the data against the model and against each other, run when a fit starts,
    before any work: lags against stimulus lengths, the neurons and bands of every loader against
    the training data's and the model's, and every neuron recorded in the training data.

    Loaders that do not serve a :py:class:`~strfsolver.data.NeuralDataset` are not inspected.

    Args:
        n_neurons: The neurons the solver knows the model to have where the model does not
            declare them (:py:func:`declared_neurons`), e.g. from its per-neuron tensors' shapes.

    Raises:
        ValueError: naming the loader, the quantity and both values; for a mapping (``{session:
            loader}``, data of several sessions) in place of a loader.
    """
    for name, given in (("training", loader), ("validation", valid_loader), ("test", test_loader)):
        if isinstance(given, Mapping):
            raise ValueError(f"the {name} data are a mapping with keys {short_repr(list(given))}, not one loader; a "
                             "{session: loader} mapping of several recording sessions needs the 'multi-session' solver "
                             "(strfsolver.solver.init('multi-session', model=...), a model built with n_neurons={session: N}).")
    check_lags_fit_stimuli(model, loader)
    train = _dataset(loader)
    if train is None:
        return
    for label, attribute in (("neurons", "n_neurons"), ("frequency bands", "n_freqs")):
        expected = getattr(train, attribute)
        declared = getattr(model, attribute, None)
        if attribute == "n_neurons":
            declared = declared_neurons(model) or n_neurons
        if is_count(declared, 1) and declared != expected:
            raise ValueError(f"the model has {attribute}={declared} but the training data have {expected} {label}; "
                             f"build the model with {attribute}={expected}.")
        for name, other in (("validation", valid_loader), ("test", test_loader)):
            data = _dataset(other)
            if data is not None and getattr(data, attribute) != expected:
                raise ValueError(f"the {name} data have {getattr(data, attribute)} {label} but the training data have "
                                 f"{expected}; every split must hold the same {label}, in the same order.")
    check_bin_width(model, train, valid_loader, test_loader)
    check_neurons_have_training_data(train)


def check_bin_width(model: Any, train: Any, valid_loader: Optional[Any] = None, test_loader: Optional[Any] = None) -> None:
    """The bin width of every split against the training data's, and against that of each part of the
    model whose effect depends on it (a prefilter with time constants in ms: ``depends_on_bin_width``),
    which would otherwise run at the wrong time scale without a word.

    Raises:
        ValueError: naming the split or the part, and both bin widths.
    """
    expected = float(train.dt_ms)
    for name, other in (("validation", valid_loader), ("test", test_loader)):
        data = _dataset(other)
        if data is not None and not math.isclose(float(data.dt_ms), expected, rel_tol=1e-9):
            raise ValueError(f"the {name} data have {float(data.dt_ms):g} ms bins but the training data have {expected:g} ms; "
                             "every split must share one bin width.")
    for path, part in model.named_modules() if isinstance(model, nn.Module) else ():
        built = getattr(part, "dt_ms", None)
        if getattr(part, "depends_on_bin_width", False) and built is not None and not math.isclose(float(built), expected, rel_tol=1e-9):
            raise ValueError(f"the model's {type(part).__name__} ({path or 'model'}) was built for {float(built):g} ms bins but the "
                             f"training data have {expected:g} ms bins, so its time constants would be off by a factor of "
                             f"{expected / float(built):g}; build the model with dt_ms={expected:g}.")


def check_neurons_have_training_data(dataset: Any) -> None:
    """Refuse neurons without one recorded bin in the training data: their fit would keep its
    initial weights, and a validation score of it would look like any other.

    Raises:
        ValueError: naming the neurons (index and id).
    """
    recorded = _recorded(dataset).any(0)
    if bool(recorded.all()):
        return
    missing = (~recorded).nonzero().flatten().tolist()
    ids = dataset.neuron_ids
    named = ", ".join(f"{n} ({short_repr(ids[n])})" for n in missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
    raise ValueError(
        f"{len(missing)} neuron(s) have no recorded bin in the training stimuli: {named}. Their fits would keep "
        "their initial weights. Leave them out (dataset.select_neurons) or put stimuli where they were recorded "
        "into the training split."
    )


def may_serve_empty_batches(loader: Any) -> bool:
    """Whether a training batch may hold no recorded response at all: ``False`` only when the
    loader's dataset says every stimulus has a recorded bin (then no batch needs the check)."""
    dataset = _dataset(loader)
    if dataset is None:
        return True
    return not bool(_recorded(dataset).any(1).all())


def describe_non_finite(batch: dict) -> Optional[str]:
    """Where a batch holds data no loss can use: a NaN or infinite stimulus value, or an infinite
    response (NaN responses mean "not recorded"); ``None`` when there is none."""
    checks = [("stims", batch.get("stims"), lambda t: ~torch.isfinite(t)), ("responses", batch.get("responses"), torch.isinf)]
    for name, tensor, bad in checks:
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
            continue
        flags = bad(tensor)
        if bool(flags.any()):
            position = [int(i) for i in flags.nonzero()[0]]
            meta = batch.get("meta")
            item = meta[position[0]] if isinstance(meta, list) and len(meta) > position[0] else None
            stimulus = item.get("index", position[0]) if isinstance(item, dict) else position[0]  # the dataset's index
            return (f"batch[{short_repr(name)}] holds {float(tensor[tuple(position)])} at {tuple(position)} (stimulus {stimulus}, "
                    f"bin {position[-1]}); every stimulus value must be finite, a response finite or NaN (not recorded)")
    return None


def check_lags_fit_stimuli(model: Any, loader: Any) -> None:
    """Refuse a model whose ``n_lags`` exceeds the longest training stimulus.

    Lag ``l`` of an STRF sees the stimulus ``l`` bins back; when every
    stimulus is shorter than ``l + 1`` bins that weight never meets an input,
    gets no gradient and stays at its random start. The check needs a loader
    over a :py:class:`~strfsolver.data.NeuralDataset` (``loader.dataset.lengths``);
    other loaders are not inspected.

    Raises:
        ValueError: naming ``n_lags`` and the longest stimulus' length.
    """
    n_lags = getattr(model, "n_lags", None)
    lengths = getattr(getattr(loader, "dataset", None), "lengths", None)
    if not is_count(n_lags, 1) or not lengths:
        return
    longest = max(lengths)
    if n_lags > longest:
        raise ValueError(
            f"n_lags={n_lags} is longer than every training stimulus (the longest has {longest} bins): lags "
            f"{longest} to {n_lags - 1} would never see the stimulus and keep their initial values; use "
            f"n_lags <= {longest} or longer stimuli."
        )
