"""Model cards and Hugging Face Hub sources of saved models.

:py:meth:`~strfsolver.models.NeuralModel.save_pretrained` writes, beside
``config.json`` and ``model.safetensors``:

- ``README.md``, a model card a person reads first (and that the Hub shows):
  the model, its constructor arguments, the shapes of the data it was fitted
  to, its scores (mean and median over neurons of every per-neuron metric
  given) and how to load it;
- ``metadata.json``: the same facts for programs, with the per-neuron
  scores, the strfsolver and torch versions and the parameter count.

:py:meth:`~strfsolver.models.NeuralModel.from_pretrained` takes a folder or a
Hub id (``"owner/name"``); a Hub id is resolved through the optional
``huggingface_hub`` package (``pip install huggingface_hub``), which honours
its own cache and offline settings (``HF_HUB_OFFLINE=1`` reads the local
cache only).
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import numpy as np
import torch
from strfsolver.utils.checks import short_repr

__all__ = ["CARD_FILE", "METADATA_FILE", "score_summary", "render_model_card", "resolve_pretrained", "data_shapes_of"]

CARD_FILE = "README.md"
METADATA_FILE = "metadata.json"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_SHAPE_ATTRIBUTES = ("n_channels", "n_freqs", "n_lags", "n_neurons", "dt_ms")


def data_shapes_of(model: Any) -> Dict[str, Any]:
    """The data sizes a model records about itself (``n_freqs``, ``n_neurons``, ...)."""
    shapes = {name: getattr(model, name) for name in _SHAPE_ATTRIBUTES if isinstance(getattr(model, name, None), (int, float))}
    config = getattr(model, "config", {}) or {}
    for name in _SHAPE_ATTRIBUTES:
        if name not in shapes and isinstance(config.get(name), (int, float)):
            shapes[name] = config[name]
    return shapes


def score_summary(scores: Optional[Mapping[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """Each score as ``{"mean", "median", "n_neurons", "per_neuron"}`` (a number: ``{"value": x}``).

    Raises:
        ValueError: for a score that is neither a number nor a 1-D tensor/array/list.
    """
    out: Dict[str, Dict[str, Any]] = {}
    for name, value in (scores or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[str(name)] = {"value": float(value)}
            continue
        try:
            tensor = torch.as_tensor(value, dtype=torch.float64).detach().cpu()
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"scores[{short_repr(name)}] must be a number or (N,) per-neuron values, got {type(value).__name__}.") from None
        if tensor.ndim == 0:
            out[str(name)] = {"value": float(tensor)}
            continue
        if tensor.ndim != 1:
            raise ValueError(f"scores[{short_repr(name)}] must be a number or (N,) per-neuron values, got shape {tuple(tensor.shape)}.")
        out[str(name)] = {
            "mean": float(tensor.nanmean()),
            # numpy's median averages the two middle values; torch's returns the lower one
            "median": float(np.nanmedian(tensor.numpy())) if bool((~tensor.isnan()).any()) else math.nan,
            "n_neurons": int(tensor.numel()),
            "per_neuron": tensor.tolist(),
        }
    return out


def _number(value: Any) -> str:
    return "NaN" if isinstance(value, float) and math.isnan(value) else f"{value:.4g}" if isinstance(value, float) else str(value)


def render_model_card(
    name: Optional[str], class_path: str, arguments: Mapping[str, Any], shapes: Mapping[str, Any], scores: Mapping[str, Dict[str, Any]],
    n_parameters: int, version: str, description: Optional[str] = None,
) -> str:
    """The Markdown text of ``README.md`` (see the module's docstring)."""
    title = name or class_path.rsplit(".", 1)[-1]
    lines = ["---", "library_name: strfsolver", "tags:", "- neuroscience", "- strf", "---", "", f"# {title}", ""]
    if description:
        lines += [description.strip(), ""]
    lines += [
        f"A strfsolver encoding model (`{class_path}`{f', registered as `{name}`' if name else ''}) with "
        f"{n_parameters} parameters, saved by strfsolver {version}.",
        "",
        "## Configuration",
        "",
        "| argument | value |",
        "|---|---|",
    ]
    lines += [f"| `{key}` | `{json.dumps(value)}` |" for key, value in arguments.items()]
    lines += ["", "## Data", ""]
    if shapes:
        lines += ["| size | value |", "|---|---|"] + [f"| `{key}` | {value} |" for key, value in shapes.items()]
        lines += ["", "Input: stimuli `(B, C, F, T)` (or `(B, F, T)`); output: `(B, N, 1, T)`."]
    else:
        lines += ["Not recorded."]
    lines += ["", "## Scores", ""]
    if scores:
        lines += ["| metric | mean over neurons | median | neurons |", "|---|---|---|---|"]
        for metric, summary in scores.items():
            if "value" in summary:
                lines.append(f"| {metric} | {_number(summary['value'])} | | |")
            else:
                lines.append(f"| {metric} | {_number(summary['mean'])} | {_number(summary['median'])} | {summary['n_neurons']} |")
        lines += ["", "Per-neuron values are in `metadata.json`."]
    else:
        lines += ["None given to `save_pretrained(..., scores=...)`."]
    lines += [
        "",
        "## Loading",
        "",
        "```python",
        "import strfsolver",
        'model = strfsolver.models.from_pretrained("<this folder or Hub id>")',
        "```",
        "",
    ]
    return "\n".join(lines)


def resolve_pretrained(source: Union[str, os.PathLike], revision: Optional[str] = None, cache_dir: Optional[Union[str, os.PathLike]] = None) -> Path:
    """The local folder of ``source``: an existing path, or the snapshot of a Hub id ``"owner/name"``.

    Only a string that is a plain ``owner/name`` id, and no existing path, goes
    to the Hub. A path that does not exist and looks local (starts with ``.``,
    ``/`` or ``~``, has a separator beyond the one ``owner/name`` slash, a
    backslash, or ends with a file extension such as ``.json``), any missing
    ``os.PathLike``, and any missing path when ``huggingface_hub`` is not
    installed are refused without a network call.

    Raises:
        FileNotFoundError: naming ``source``, which does not exist locally
            (and is not a Hub id, or the Hub package is missing).
        ValueError: ``revision`` given with a local folder.
    """
    path = Path(source)
    if path.exists():
        if revision is not None and path.is_dir():
            raise ValueError(f"revision={short_repr(revision)} applies to Hub ids; {short_repr(source)} is a local folder.")
        return path
    if not isinstance(source, str) or _looks_local(source):
        raise FileNotFoundError(
            f"{short_repr(str(source))} does not exist locally (no such folder); a saved model is read from the folder "
            "save_pretrained wrote, and only a plain 'owner/name' id is looked up on the Hugging Face Hub."
        )
    try:
        import huggingface_hub
    except ImportError as error:
        raise FileNotFoundError(
            f"{short_repr(source)} does not exist locally (no such folder), and reading it as a Hugging Face Hub id "
            f"needs the huggingface_hub package ({error}): pip install huggingface_hub"
        ) from None
    folder = huggingface_hub.snapshot_download(
        repo_id=source, revision=revision, cache_dir=None if cache_dir is None else os.fspath(cache_dir)
    )
    return Path(folder)


#: endings that name a file, not a Hub repository (whose names may hold dots, e.g. "lab/strf-1.0")
_FILE_EXTENSIONS = frozenset(
    ".json .safetensors .npz .npy .nwb .pt .pth .bin .ckpt .pkl .h5 .hdf5 .yaml .yml .csv .txt .md .zip .gz .tar".split()
)


def _looks_local(source: str) -> bool:
    """Whether the string ``source`` is meant as a local path rather than a Hub id ``owner/name``."""
    if source.startswith((".", "/", "~")) or "\\" in source or (os.altsep is not None and os.altsep in source):
        return True
    if os.sep != "/" and os.sep in source:
        return True
    if source.count("/") != 1 or not _HUB_ID.match(source):
        return True
    return Path(source).suffix.lower() in _FILE_EXTENSIONS
