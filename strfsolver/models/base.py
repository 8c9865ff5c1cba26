"""The base class of every encoding model, and saving models to folders.

A :py:class:`NeuralModel` applies four slots in order, each an ``nn.Module``
and the identity by default:

    stims (B, C, F, T) -> standardize -> wav2spec -> prefiltering -> core -> readout -> (B, N, 1, T)

so a minimal model sets only a readout; recurrent and attention models
override :py:meth:`NeuralModel.forward`.

Saving. The constructor arguments of every subclass are captured
automatically (``__init_subclass__`` wraps each subclass ``__init__``; the
outermost constructor call wins), so :py:meth:`NeuralModel.save_pretrained`
can write them to ``config.json`` next to ``model.safetensors`` and
:py:meth:`NeuralModel.from_pretrained` can rebuild the model, by its
registered name, without running any code from the files.

A constructor argument that is not JSON (an ``nn.Module`` prefilter, a
custom kernel module, a tensor) cannot be written to ``config.json``. Rule:
``save_pretrained`` still saves (the module's weights are part of
``model.safetensors``), lists the argument under ``"pass_again"`` in
``config.json`` and warns, naming it; ``from_pretrained`` then raises a
``ValueError`` naming the argument unless it is passed again, e.g.
``NeuralModel.from_pretrained(folder, prefiltering=MyPrefilter())`` (its
weights are then restored from the file).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import numbers
import tempfile
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch
from torch import Tensor, nn

from strfsolver import prefilters
from strfsolver._version import __version__
from strfsolver.models import _registry as registry_module
from strfsolver.models import model_card as _card
from strfsolver.models.init_arguments import NOT_JSON, argument_to_json, bound_arguments
from strfsolver.models.sessions import SessionModelMixin, init_with_sessions
from strfsolver.nn.standardize import StimulusStandardizer
from strfsolver.utils import io
from strfsolver.utils.checks import check_device, check_finite_weights, check_tensor_size, short_repr

__all__ = ["NeuralModel", "CONFIG_FILE", "WEIGHTS_FILE", "from_pretrained"]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
_FORMAT = "strfsolver-model"
_FORMAT_VERSION = 1
def _capture_init(init):
    """Wrap ``__init__`` so the outermost call records its arguments on the instance."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        if "_init_arguments" not in self.__dict__:
            # object.__setattr__: nn.Module is not initialised yet at this point
            object.__setattr__(self, "_init_arguments", bound_arguments(signature, args, kwargs))
            if init_with_sessions(self, init, signature, args, kwargs):  # n_neurons={session: N_s, ...}
                return
        init(self, *args, **kwargs)

    wrapper._captures_arguments = True
    return wrapper


def _registry_entries():
    return registry_module._registry_state.entries


class NeuralModel(SessionModelMixin, nn.Module):
    """Base class of encoding models: ``(B, F, T)`` or ``(B, C, F, T)`` -> ``(B, N, 1, T)``.

    Built with ``n_neurons={session: N_s, ...}`` a model has one readout per session and a shared
    rest; ``model(stims, session=s)`` gives ``(B, N_s, 1, T)`` (:py:mod:`strfsolver.models.sessions`).

    Args:
        n_freqs: Frequency bands ``F`` of the stimuli.
        n_lags: Temporal extent of the model's kernels, in bins.
        n_neurons: Neurons ``N``.
        n_channels: Stimulus channels ``C`` (1: ``(B, F, T)`` stimuli are accepted).
        prefiltering: ``None``, a name registered in :py:mod:`strfsolver.prefilters`
            (built with ``n_freqs``, ``dt_ms``, ``n_channels`` and ``prefiltering_options``)
            or an ``nn.Module`` mapping ``(B, C, F, T)`` to ``(B, C', F', T)``. The
            model's core sees ``C'`` channels (:py:attr:`feature_channels`), e.g. 2 after
            ``"adaptrans"``.
        prefiltering_options: Extra keyword arguments of a named prefilter.
        dt_ms: Bin width in ms (used by prefilters).

    Attributes:
        feature_channels: Channels ``C'`` after prefiltering.
        feature_freqs: Bands ``F'`` after prefiltering.
        stateful: Whether the model keeps a state between calls (recurrent models).
        has_strf: Whether :py:meth:`strf` is defined.
        default_lr: The learning rate a solver's default optimizer uses for
            this model when given none (``lr=None``); a subclass whose
            parameters learn at another pace declares its own.
    """

    has_strf = False
    stateful = False
    default_lr = 3e-3

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and not getattr(init, "_captures_arguments", False):
            cls.__init__ = _capture_init(init)

    def __init__(
        self,
        n_freqs: int,
        n_lags: int,
        n_neurons: int,
        n_channels: int = 1,
        prefiltering: Optional[Union[str, nn.Module]] = None,
        prefiltering_options: Optional[dict] = None,
        dt_ms: float = 5.0,
    ):
        if "_init_arguments" not in self.__dict__:  # NeuralModel built directly
            object.__setattr__(
                self,
                "_init_arguments",
                dict(n_freqs=n_freqs, n_lags=n_lags, n_neurons=n_neurons, n_channels=n_channels,
                     prefiltering=prefiltering, prefiltering_options=prefiltering_options, dt_ms=dt_ms),
            )
        super().__init__()
        for value, name in ((n_freqs, "n_freqs"), (n_lags, "n_lags"), (n_neurons, "n_neurons"), (n_channels, "n_channels")):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {short_repr(value)}.")
        if isinstance(dt_ms, bool) or not isinstance(dt_ms, numbers.Real) or not dt_ms > 0:
            raise ValueError(f"dt_ms must be a number > 0, got {short_repr(dt_ms)}.")
        sizes = dict(n_neurons=n_neurons, n_channels=n_channels, n_freqs=n_freqs, n_lags=n_lags)
        check_tensor_size(sizes, "the STRF weights (n_neurons, n_channels, n_freqs, n_lags)")  # before any allocation
        self.n_freqs, self.n_lags, self.n_neurons, self.n_channels = int(n_freqs), int(n_lags), int(n_neurons), int(n_channels)
        self.dt_ms = float(dt_ms)
        # per-band standardization with training statistics; the identity until a solver fits it
        self.standardize = StimulusStandardizer(self.n_channels, self.n_freqs)
        self.wav2spec = nn.Identity()
        self.prefiltering = self._build_prefilter(prefiltering, prefiltering_options)
        self.core = nn.Identity()
        self.readout = nn.Identity()
        self.feature_channels, self.feature_freqs = self._feature_shape()
        check_tensor_size(dict(sizes, n_channels=self.feature_channels, n_freqs=self.feature_freqs), "the STRF weights on the prefilter's features")

    # ------------------------------------------------------------------ building
    def _build_prefilter(self, prefiltering, options) -> nn.Module:
        if options is not None and not isinstance(options, dict):
            raise ValueError(f"prefiltering_options must be a dict or None, got {type(options).__name__}.")
        if prefiltering is None:
            if options:
                raise ValueError("prefiltering_options were given without a prefiltering name.")
            return nn.Identity()
        if isinstance(prefiltering, str):
            return prefilters.init(prefiltering, n_freqs=self.n_freqs, dt_ms=self.dt_ms, n_channels=self.n_channels, **(options or {}))
        if isinstance(prefiltering, nn.Module):
            if options:
                raise ValueError("prefiltering_options apply to a prefilter given by name, not to a module.")
            return prefiltering
        raise ValueError(f"prefiltering must be None, a registered prefilter name or an nn.Module, got {type(prefiltering).__name__}.")

    def _feature_shape(self):
        """Channels and bands the core sees, found by passing a blank stimulus through the front end."""
        if isinstance(self.wav2spec, nn.Identity) and isinstance(self.prefiltering, nn.Identity):
            return self.n_channels, self.n_freqs
        param = next(self.prefiltering.parameters(), None)
        device = param.device if param is not None else None
        with torch.no_grad():
            blank = torch.zeros(1, self.n_channels, self.n_freqs, 4, device=device)
            out = self.prefiltering(self.wav2spec(blank))
        if not isinstance(out, Tensor) or out.dim() != 4 or out.shape[0] != 1 or out.shape[-1] != 4:
            shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(
                f"the prefilter must map (B, C, F, T) = (1, {self.n_channels}, {self.n_freqs}, 4) to (1, C', F', 4), got {shape}."
            )
        return int(out.shape[1]), int(out.shape[2])

    # ------------------------------------------------------------------ running
    def _as_4d(self, stims: Tensor) -> Tensor:
        """Checks a stimulus batch and returns it as ``(B, C, F, T)``."""
        if not isinstance(stims, Tensor):
            raise ValueError(f"stims must be a torch.Tensor of shape (B, F, T) or (B, C, F, T), got {type(stims).__name__}.")
        given = tuple(stims.shape)
        if stims.dim() == 3:
            if self.n_channels != 1:
                raise ValueError(
                    f"the model expects (B, {self.n_channels}, {self.n_freqs}, T) stimuli (n_channels={self.n_channels}), "
                    f"got {tuple(stims.shape)}."
                )
            stims = stims.unsqueeze(1)
        if stims.dim() != 4 or stims.shape[1] != self.n_channels or stims.shape[2] != self.n_freqs:
            expected = f"(B, {self.n_freqs}, T) or " if self.n_channels == 1 else ""
            raise ValueError(
                f"stims must have shape {expected}(B, {self.n_channels}, {self.n_freqs}, T), got {given}."
            )
        return stims

    def forward(self, stims: Tensor) -> Tensor:
        """Predict responses.

        Args:
            stims: ``(B, F, T)`` or ``(B, C, F, T)`` stimuli.

        Returns:
            ``(B, N, 1, T)`` predictions; bin t depends on stimulus bins <= t only.
        """
        return self.readout(self.core(self.front_end(stims)))

    def front_end(self, stims: Tensor) -> Tensor:
        """``(B, F, T)`` or ``(B, C, F, T)`` -> ``(B, C', F', T)``: the checked stimulus, standardized
        per band (:py:class:`~strfsolver.nn.standardize.StimulusStandardizer`), through
        ``wav2spec`` and the prefilter: what the core sees."""
        return self.prefiltering(self.wav2spec(self.standardize(self._as_4d(stims))))

    def detach(self) -> "NeuralModel":
        """Cut the autograd history of any state kept between calls (truncated BPTT).

        A no-op for stateless models; returns the model.
        """
        return self

    def reset_state(self) -> "NeuralModel":
        """Forget any state kept between calls (no-op for stateless models)."""
        return self

    @contextlib.contextmanager
    def stateless(self):
        """Context in which a stateful model neither uses nor changes its kept state."""
        was = self.__dict__.get("stateful", type(self).stateful)
        self.stateful = False
        try:
            yield self
        finally:
            self.stateful = was

    def strf(self) -> Tensor:
        """The model's ``(N, C', F', L)`` STRF, for models that have one (``has_strf``).

        Other models raise ``NotImplementedError``; use
        :py:func:`strfsolver.models.gradient_strf` for an effective STRF.
        """
        raise NotImplementedError(
            f"{type(self).__name__} has no linear STRF; use strfsolver.models.gradient_strf(model, stims) instead."
        )

    def count_parameters(self, trainable_only: bool = True) -> int:
        """Number of (trainable) scalar parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    @torch.no_grad()
    def validate(self, n_times: int = 8) -> "NeuralModel":
        """Check the model: finite parameters and a ``(1, N, 1, n_times)`` finite output on a blank stimulus.

        Raises:
            ValueError: naming the non-finite parameter or the wrong output shape.

        Returns:
            The model.
        """
        for name, param in self.named_parameters():
            if not bool(torch.isfinite(param).all()):
                raise ValueError(f"parameter {short_repr(name)} of {type(self).__name__} has non-finite values.")
        param = next(self.parameters(), None)
        device = param.device if param is not None else None
        blank = torch.zeros(1, self.n_channels, self.n_freqs, n_times, device=device)
        counts = self.n_neurons if self.sessions else {None: self.n_neurons}
        for session, n_neurons in counts.items():
            with self.stateless():
                out = self(blank, session=session)
            if not isinstance(out, Tensor) or tuple(out.shape) != (1, n_neurons, 1, n_times):
                shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                raise ValueError(
                    f"{type(self).__name__} returned {shape} for a (1, {self.n_channels}, {self.n_freqs}, {n_times}) "
                    f"stimulus; expected (B, N, 1, T) = (1, {n_neurons}, 1, {n_times})."
                )
            if not bool(torch.isfinite(out).all()):
                raise ValueError(f"{type(self).__name__} returned non-finite values for a blank stimulus.")
        return self

    # ------------------------------------------------------------------ saving
    @property
    def config(self) -> Dict[str, Any]:
        """The constructor arguments this model was built with (a copy)."""
        return dict(self.__dict__.get("_init_arguments", {}))

    def registered_name(self) -> Optional[str]:
        """The name under which this model's class is registered in :py:mod:`strfsolver.models` (or ``None``)."""
        arguments = self.config
        for name, entry in _registry_entries().items():
            if entry.cls is type(self) and all(arguments.get(k) == v for k, v in entry.fixed_kwargs.items()):
                return name
        return None

    def save_pretrained(
        self,
        folder: Union[str, Path],
        scores: Optional[Dict[str, Any]] = None,
        data_shapes: Optional[Dict[str, Any]] = None,
        description: Optional[str] = None,
        *,
        metadata: Optional[Dict[str, Any]] = None,
        model_card: Optional[str] = None,
    ) -> Path:
        """Write ``config.json`` (constructor arguments), ``model.safetensors`` (weights), a model
        card ``README.md`` and ``metadata.json`` to ``folder`` (:py:mod:`strfsolver.models.model_card`).

        Non-JSON constructor arguments are listed in ``config.json`` under
        ``"pass_again"`` (with a warning): :py:meth:`from_pretrained` needs them again.

        Args:
            folder: The folder (created).
            scores: Scores for the card: ``name -> number`` or ``name -> (N,)``
                per-neuron values (e.g. ``solver.validation(test_loader)``'s tensors).
            data_shapes: Sizes of the data fitted (default: the model's own
                ``n_freqs``, ``n_neurons``, ``n_lags``, ``n_channels``, ``dt_ms``).
            description: A paragraph for the top of the card.
            metadata: Your own JSON facts, kept in ``metadata.json`` for ``from_pretrained(..., return_metadata=True)``.
            model_card: Markdown for ``README.md`` instead of the generated card (deepSTRF's ``model_card``).

        Returns:
            The folder.
        """
        folder = Path(folder)
        user_metadata = _card.check_user_metadata(metadata, model_card)  # before anything is written
        folder.mkdir(parents=True, exist_ok=True)
        arguments, pass_again = {}, {}
        for key, value in self.config.items():
            converted = argument_to_json(value)
            if converted is NOT_JSON:
                pass_again[key] = type(value).__name__
            else:
                arguments[key] = converted
        if pass_again:
            warnings.warn(
                f"{type(self).__name__}.save_pretrained: argument(s) "
                + ", ".join(f"{k}=<{t}>" for k, t in pass_again.items())
                + " cannot be stored as JSON; their weights are saved, but from_pretrained will need them passed again "
                f"(e.g. from_pretrained({short_repr(str(folder))}, {next(iter(pass_again))}=...)).",
                UserWarning,
                stacklevel=2,
            )
        state = {k: v.detach() for k, v in self.state_dict().items()}
        io.save_tensors(folder / WEIGHTS_FILE, state, metadata={"format": _FORMAT})
        config = {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "strfsolver_version": __version__,
            "name": self.registered_name(),
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "arguments": arguments,
            "pass_again": pass_again,
        }
        io.atomic_write_json(folder / CONFIG_FILE, config)
        shapes = dict(data_shapes) if data_shapes is not None else _card.data_shapes_of(self)
        _card.write_card(folder, config, shapes, scores, sum(p.numel() for p in self.parameters()), description,
                         model_card=model_card, user_metadata=user_metadata)
        return folder

    def push_to_hub(self, repo_id: str, *, private: bool = False, token: Optional[str] = None, commit_message: Optional[str] = None, **saved) -> str:
        """Upload :py:meth:`save_pretrained`'s folder (``**saved``: its ``metadata``, ``model_card``, ``scores``, ...) to
        the Hub repository ``repo_id``, created if missing (:py:func:`~strfsolver.models.model_card.push_folder`); returns the commit's URL."""
        _card.check_hub_id(repo_id)
        with tempfile.TemporaryDirectory() as folder:
            self.save_pretrained(folder, **saved)
            return _card.push_folder(folder, repo_id, private=private, token=token, commit_message=commit_message)

    @classmethod
    def from_pretrained(
        cls,
        folder: Union[str, Path],
        device: Union[str, torch.device] = "cpu",
        *,
        map_location: Optional[Union[str, torch.device]] = None,
        strict: bool = True,
        revision: Optional[str] = None,
        cache_dir: Optional[Union[str, Path]] = None,
        token: Optional[str] = None,
        extra_kwargs: Optional[Dict[str, Any]] = None,
        return_metadata: bool = False,
        **overrides,
    ) -> "NeuralModel":
        """Rebuild a model saved by :py:meth:`save_pretrained`, from a folder or the Hugging Face Hub.

        Called on ``NeuralModel`` the class is found by its registered name in
        ``config.json``; called on a subclass, that class is built.

        Args:
            folder: The folder written by ``save_pretrained``, or a Hub id
                ``"owner/name"`` (a plain id that is no existing path), fetched
                with the optional ``huggingface_hub`` package into its cache.
            device: Where to put the model.
            map_location: The same as ``device`` (torch's name for it); wins when given.
            strict: Refuse weights missing from or unknown to the rebuilt model;
                ``False`` loads those that match by name (shapes must still agree).
            revision: A Hub branch, tag or commit (Hub ids only).
            cache_dir: The Hub cache folder (default: huggingface_hub's own).
            token, extra_kwargs: A Hub token (Hub ids only); constructor arguments as a dict, as ``**overrides``.
            return_metadata: Return ``(model, the metadata given to save_pretrained or None)``.
            **overrides: Constructor arguments replacing the saved ones; the
                non-JSON arguments listed under ``"pass_again"`` are required.

        Raises:
            ValueError: missing files, a required argument not passed again,
                an unknown name or weights that do not fit the rebuilt model.
            FileNotFoundError: a path that does not exist locally: one that looks
                local (starts with ``.``, ``/`` or ``~``, more than one ``/``, a
                file extension) is never sent to the Hub, nor is any path when
                ``huggingface_hub`` is not installed; or a Hub id that can be
                neither found in the cache nor downloaded (huggingface_hub's own
                error, e.g. offline).
        """
        device = check_device(device if map_location is None else map_location, "device" if map_location is None else "map_location")
        overrides = _card.merge_overrides(extra_kwargs, overrides)
        folder = _card.resolve_pretrained(folder, revision=revision, cache_dir=cache_dir, token=token)
        config_path = folder / CONFIG_FILE
        if not config_path.is_file():
            raise ValueError(f"No {CONFIG_FILE} in {folder}; expected a folder written by save_pretrained.")
        config = io.read_json(config_path)
        if not isinstance(config, dict) or config.get("format") != _FORMAT:
            raise ValueError(f"{config_path} was not written by NeuralModel.save_pretrained (format {short_repr(config.get('format') if isinstance(config, dict) else None)}).")
        for key in ("arguments", "pass_again"):
            if not isinstance(config.get(key, {}), dict):
                raise ValueError(f"{config_path}: field {short_repr(key)} must be a mapping, got {type(config[key]).__name__}.")
        missing = [k for k in config.get("pass_again", {}) if k not in overrides]
        if missing:
            described = ", ".join(f"{k} (a {config['pass_again'][k]})" for k in missing)
            raise ValueError(
                f"{folder} was saved from a model built with non-JSON argument(s) {described}; pass them again, "
                f"e.g. from_pretrained({short_repr(str(folder))}, {missing[0]}=...)."
            )
        arguments = {**config.get("arguments", {}), **overrides}
        if cls is NeuralModel:
            name = config.get("name")
            entries = _registry_entries()
            if name is None or name not in entries:
                raise ValueError(
                    f"{config_path} names the class {short_repr(config.get('class'))} under the registered name {short_repr(name)}, which "
                    f"strfsolver.models does not know; register the class or call YourClass.from_pretrained(folder)."
                )
            entry = entries[name]
            kwargs = {k: v for k, v in arguments.items() if k not in entry.fixed_kwargs}
            build = lambda: registry_module.init(name, **kwargs)  # noqa: E731
        else:
            build = lambda: cls(**arguments)  # noqa: E731
        try:
            model = build()
        except (TypeError, ValueError) as error:
            raise ValueError(f"{config_path}: field 'arguments' does not build the model: {error}") from None
        state = io.load_tensors(folder / WEIGHTS_FILE, device="cpu")
        check_finite_weights(state, str(folder / WEIGHTS_FILE), "weights")
        try:
            model.load_state_dict(state, strict=strict)
        except RuntimeError as error:
            raise ValueError(f"the weights in {folder / WEIGHTS_FILE} do not fit the rebuilt {type(model).__name__}: {error}") from None
        model.to(device)
        return (model, _card.read_user_metadata(folder)) if return_metadata else model


def from_pretrained(folder: Union[str, Path], device: Union[str, torch.device] = "cpu", **options) -> NeuralModel:
    """Shortcut for :py:meth:`NeuralModel.from_pretrained` (same options: ``map_location``,
    ``strict``, ``revision``, ``cache_dir``, ``token``, ``extra_kwargs``, ``return_metadata`` and constructor overrides)."""
    return NeuralModel.from_pretrained(folder, device=device, **options)
