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
cache only). :py:meth:`~strfsolver.models.NeuralModel.push_to_hub` uploads
the folder through the same package (:py:func:`push_folder`).

As in deepSTRF, ``save_pretrained(..., metadata={...})`` keeps your own JSON
facts (in ``metadata.json``, under :data:`USER_METADATA`) and
``from_pretrained(..., return_metadata=True)`` gives them back;
``extra_kwargs={...}`` passes constructor arguments again.
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
from strfsolver._version import __version__
from strfsolver.utils import io
from strfsolver.utils.checks import short_repr, to_json

__all__ = ["CARD_FILE", "METADATA_FILE", "USER_METADATA", "score_summary", "write_card", "render_model_card", "resolve_pretrained",
           "data_shapes_of", "check_user_metadata", "read_user_metadata", "merge_overrides", "check_hub_id", "push_folder"]

CARD_FILE = "README.md"
METADATA_FILE = "metadata.json"
#: the key of ``metadata.json`` holding the ``metadata`` given to ``save_pretrained``
USER_METADATA = "user_metadata"
#: the extra that brings ``huggingface_hub``
HUB_EXTRA = "pip install 'strfsolver[hub]'"
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


def write_card(folder: Path, config: Mapping[str, Any], shapes: Dict[str, Any], scores: Optional[Mapping[str, Any]],
               n_parameters: int, description: Optional[str], *, model_card: Optional[str] = None, user_metadata: Any = None) -> None:
    """Write ``README.md`` (the generated card, or ``model_card``) and ``metadata.json`` of a saved model
    whose ``config.json`` holds ``config``."""
    summary = score_summary(scores)
    if model_card is None:
        model_card = render_model_card(config["name"], config["class"], config["arguments"], shapes, summary, n_parameters,
                                       __version__, description)
    io.atomic_write_text(Path(folder) / CARD_FILE, model_card)
    facts = {"strfsolver_version": __version__, "torch_version": torch.__version__, "n_parameters": n_parameters,
             "data_shapes": shapes, "scores": summary}
    if user_metadata is not None:
        facts[USER_METADATA] = user_metadata
    io.atomic_write_json(Path(folder) / METADATA_FILE, to_json(facts, nonfinite="repr"))


def check_user_metadata(metadata: Any, model_card: Any) -> Optional[Any]:
    """``save_pretrained``'s ``metadata`` as JSON, checked before anything is written.

    Raises:
        ValueError: for metadata that is not a dict of JSON values (naming the key), or a
            ``model_card`` that is not a string.
    """
    if model_card is not None and not isinstance(model_card, str):
        raise ValueError(f"model_card must be the Markdown text of README.md (a str), got {type(model_card).__name__}.")
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise ValueError(f"metadata must be a dict of JSON values, got {type(metadata).__name__}.")
    try:
        # a round trip: what from_pretrained gives back is what was given (tuples become lists, as in any JSON)
        return json.loads(json.dumps(dict(metadata), allow_nan=True))
    except (TypeError, ValueError) as error:
        raise ValueError(f"metadata must be a dict of JSON values (numbers, strings, lists, dicts); {error}.") from None


def read_user_metadata(folder: Path) -> Optional[Any]:
    """The ``metadata`` given to ``save_pretrained`` for ``folder`` (``None`` if none was)."""
    path = Path(folder) / METADATA_FILE
    if not path.is_file():
        return None
    facts = json.loads(path.read_text(encoding="utf-8"))
    return facts.get(USER_METADATA) if isinstance(facts, dict) else None


def merge_overrides(extra_kwargs: Optional[Mapping[str, Any]], overrides: Mapping[str, Any]) -> Dict[str, Any]:
    """``from_pretrained``'s constructor arguments from ``extra_kwargs`` (deepSTRF's dict) and keywords.

    Raises:
        ValueError: for ``extra_kwargs`` that is not a dict, or an argument given both ways.
    """
    if extra_kwargs is None:
        return dict(overrides)
    if not isinstance(extra_kwargs, Mapping):
        raise ValueError(f"extra_kwargs must be a dict of constructor arguments, got {type(extra_kwargs).__name__}.")
    both = sorted(set(extra_kwargs) & set(overrides))
    if both:
        raise ValueError(f"{both} given both in extra_kwargs and as keywords; give each argument once.")
    return {**extra_kwargs, **overrides}


def check_hub_id(repo_id: Any) -> str:
    """A Hub repository id ``"owner/name"``.

    Raises:
        ValueError: naming what came instead.
    """
    if not isinstance(repo_id, str) or not _HUB_ID.match(repo_id):
        raise ValueError(f"repo_id must be a Hugging Face Hub id 'owner/name', got {short_repr(repo_id)}.")
    return repo_id


def push_folder(folder: Union[str, os.PathLike], repo_id: str, *, private: bool = False, token: Optional[str] = None,
                commit_message: Optional[str] = None) -> str:
    """Upload a ``save_pretrained`` folder to the Hub model repository ``repo_id``, creating it if missing.

    Returns:
        The URL of the commit.

    Raises:
        ImportError: without the optional ``huggingface_hub`` package (naming the extra).
        ValueError: for a ``repo_id`` that is not ``"owner/name"``.
    """
    check_hub_id(repo_id)
    try:
        import huggingface_hub
    except ImportError as error:
        raise ImportError(f"push_to_hub needs the optional huggingface_hub package ({error}): {HUB_EXTRA}") from None
    api = huggingface_hub.HfApi(token=token)
    api.create_repo(repo_id=repo_id, repo_type="model", private=private, exist_ok=True)
    info = api.upload_folder(repo_id=repo_id, folder_path=os.fspath(folder), repo_type="model",
                             commit_message=commit_message or "Upload a strfsolver model")
    return str(getattr(info, "commit_url", info))


def resolve_pretrained(source: Union[str, os.PathLike], revision: Optional[str] = None, cache_dir: Optional[Union[str, os.PathLike]] = None,
                       token: Optional[str] = None) -> Path:
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
    extra = {} if token is None else {"token": token}
    folder = huggingface_hub.snapshot_download(
        repo_id=source, revision=revision, cache_dir=None if cache_dir is None else os.fspath(cache_dir), **extra
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
