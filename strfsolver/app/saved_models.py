"""``strfsolver predict`` and ``strfsolver evaluate``: a saved model on a data file.

A model written by ``strfsolver fit`` (its ``model/`` folder) or by
:py:meth:`~strfsolver.models.NeuralModel.save_pretrained` predicts the
responses to every stimulus of a ``.npz`` or ``.nwb`` file;
:py:func:`run_predict` writes the predictions, :py:func:`run_evaluate` the
per-neuron scores against the file's responses (the metrics of
docs/conventions.md §2).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Union

import numpy as np
import torch

from strfsolver.app.fit_config import ConfigError
from strfsolver.utils.checks import short_repr

__all__ = ["load_saved_model", "predict_dataset", "run_predict", "run_evaluate"]


def load_saved_model(folder: Union[str, os.PathLike], device: str = "cpu"):
    """The model saved in ``folder``; raises :py:class:`~strfsolver.app.fit_config.ConfigError` with the reason."""
    from strfsolver.models import from_pretrained

    from strfsolver.utils.checks import check_device

    try:
        check_device(device, "--device")
    except ValueError as error:
        raise ConfigError(str(error)) from None
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"model folder {folder} does not exist (strfsolver fit writes one to OUT/model)")
    try:
        return from_pretrained(folder, device=device)
    except (ValueError, OSError, KeyError) as error:
        raise ConfigError(f"{folder} is not a saved strfsolver model: {str(error).splitlines()[0]}") from None


def _load(data: Union[str, os.PathLike], data_options: Optional[Mapping[str, Any]]):
    from strfsolver.app.fit_data import load_data

    path = Path(data)
    if path.suffix.lower() not in (".npz", ".nwb"):
        raise ConfigError(f"data must be a .npz or .nwb file, got {short_repr(str(path))}")
    if not path.is_file():
        raise ConfigError(f"no data file at {path}")
    return load_data({"data": str(path), "data_options": dict(data_options or {})})


@torch.no_grad()
def predict_dataset(model, dataset, device: str = "cpu") -> List[np.ndarray]:
    """One ``(N, T_i)`` prediction per stimulus of ``dataset``, in eval mode."""
    from strfsolver.data import neural_collate

    if dataset.n_freqs != getattr(model, "n_freqs", dataset.n_freqs):
        raise ConfigError(f"the model takes {model.n_freqs} frequency bands but the data have {dataset.n_freqs}")
    if dataset.n_neurons != getattr(model, "n_neurons", dataset.n_neurons):
        raise ConfigError(f"the model predicts {model.n_neurons} neurons but the data have {dataset.n_neurons}")
    model = model.to(device).eval()
    preds = []
    for i in range(len(dataset)):
        batch = neural_collate([dataset[i]])
        pred = model(batch["stims"].to(device))
        preds.append(pred[0, :, 0].detach().cpu().numpy())
    return preds


def _output_file(out, suffix: Optional[str], what: str) -> Path:
    """``out`` as a path, checked before any work: a file name (not a folder), with ``suffix`` when given."""
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"--out {short_repr(str(out))} is a folder; give a file name for {what}, e.g. {short_repr(str(out / ('out' + (suffix or '.csv'))))}")
    if suffix is not None and out.suffix.lower() != suffix:
        raise ConfigError(f"{what} are written to a {suffix} file, got {short_repr(str(out))}")
    return out


def run_predict(model_dir, data, out, *, data_options=None, device: str = "cpu", print_fn: Callable[[str], Any] = print) -> Path:
    """Predict every stimulus of ``data`` with the saved model; write ``out`` (``.npz``).

    The file holds ``pred_<i>`` ``(N, T_i)`` per stimulus, ``stim_names``,
    ``neuron_ids`` and ``dt_ms``.
    """
    from strfsolver.utils.io import atomic_write_bytes

    out = _output_file(out, ".npz", "predictions")
    model = load_saved_model(model_dir, device)
    dataset = _load(data, data_options)
    preds = predict_dataset(model, dataset, device)
    out.parent.mkdir(parents=True, exist_ok=True)
    import io as _stdio

    buffer = _stdio.BytesIO()
    arrays = {f"pred_{i}": p for i, p in enumerate(preds)}
    np.savez_compressed(
        buffer, **arrays, stim_names=np.asarray([str(m.get("name", i)) for i, m in enumerate(dataset.meta)]),
        neuron_ids=np.asarray(dataset.neuron_ids), dt_ms=np.asarray(dataset.dt_ms),
    )
    atomic_write_bytes(out, buffer.getvalue())
    print_fn(f"wrote predictions of {dataset.n_neurons} neurons for {len(preds)} stimuli to {out}")
    return out


def run_evaluate(model_dir, data, out, *, data_options=None, device: str = "cpu", print_fn: Callable[[str], Any] = print) -> Dict[str, Any]:
    """Score the saved model on ``data``; write the per-neuron table to ``out`` (``.csv``).

    Returns:
        ``{"rows": one dict per neuron, "path": the CSV}``.
    """
    from strfsolver.workflow.experiment import SCORE_METRICS, score_predictions
    from strfsolver.utils.io import atomic_write_text
    from strfsolver.app.report import rows_to_csv, summary_lines

    out = _output_file(out, None, "the per-neuron table")
    model = load_saved_model(model_dir, device)
    dataset = _load(data, data_options)
    scores = score_predictions(predict_dataset(model, dataset, device), dataset.responses, SCORE_METRICS)
    single = max(dataset.n_repeats) < 2
    # one repeat: cc_norm is cc and the noise terms are undefined; the table says so by leaving them out
    metrics = ("cc", "fve") if single else SCORE_METRICS
    rows = [{"neuron": n, "neuron_id": nid, **{m: float(scores[m][n]) for m in metrics}} for n, nid in enumerate(dataset.neuron_ids)]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, rows_to_csv(rows))
    print_fn(f"per-neuron scores on {dataset.n_stims} stimuli ({dataset.n_neurons} neurons):")
    for line in summary_lines(rows, [m for m in metrics if m in ("cc", "cc_norm", "fve", "snr")], width=10):
        print_fn(line)
    print_fn(f"wrote {out}")
    return {"rows": rows, "path": out}
