"""The one declared schema of each config kind (``strfsolver fit``, ``strfsolver compare``) and
the one validator that walks it, so that a new key gets its check by construction.

A schema maps each key to a :py:class:`Key`: its default (``REQUIRED`` for a
required key) and its check, a function ``(value, key) -> value`` that raises
:py:class:`ConfigError` naming the key, what was expected and what came (the
value shown through :py:func:`~strfsolver.utils.checks.short_repr`, so a huge
or aliased value never makes a huge message). :py:func:`validate_keys` refuses
non-string, unknown and missing keys, fills in the defaults and runs every
check; the config modules add only the checks that tie several keys together.
:py:func:`read_config_file` is the one reader of config files.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

from strfsolver.utils.checks import check_device, check_seed, short_repr
from strfsolver.utils.deprecation import renamed

__all__ = ["ConfigError", "Key", "REQUIRED", "RENAMED_KEYS", "validate_keys", "read_config_file", "FIT_SCHEMA", "COMPARE_SCHEMA"]

#: config keys renamed in 0.2 (old: new), of the fit and the compare configs; the old key works for one release
RENAMED_KEYS = {"out": "logdir"}
REQUIRED = ...


class ConfigError(ValueError):
    """A config that cannot be run; the message is one line naming the key."""


@dataclass(frozen=True)
class Key:
    """One config key: its default (``REQUIRED`` when it must be given) and its check ``(value, key) -> value``."""

    default: Any
    check: Callable[[Any, str], Any]


def _refuse(key: str, expected: str, value: Any) -> None:
    raise ConfigError(f"config key {short_repr(key)} must be {expected}, got {type(value).__name__} {short_repr(value)}")


# ------------------------------------------------------------------ checks of one value
def mapping(value: Any, key: str) -> Dict[str, Any]:
    """A mapping with string keys (keyword arguments)."""
    if not isinstance(value, Mapping):
        _refuse(key, "a mapping of keyword arguments", value)
    bad = next((k for k in value if not isinstance(k, str)), None)
    if bad is not None or any(k is None for k in value):
        raise ConfigError(f"config key {short_repr(key)} must map names (strings) to values, but has the key {type(bad).__name__} {short_repr(bad)}")
    return dict(value)


def _data_path(value: Any, key: str) -> str:
    if not isinstance(value, (str, os.PathLike)) or isinstance(value, bool):
        _refuse(key, "a path to a .npz or .nwb file or a dataset folder", value)
    if Path(value).suffix.lower() not in (".npz", ".nwb") and not Path(value).is_dir():
        raise ConfigError(f"config key {short_repr(key)} must name a .npz or .nwb file or a dataset folder "
                          f"(strfsolver.data.FolderWriter), got {short_repr(str(value))}")
    return value


def data_file(value: Any, key: str) -> str:
    """A path to an existing .npz or .nwb file, or a dataset folder."""
    _data_path(value, key)
    if not Path(value).is_file() and not Path(value).is_dir():
        raise ConfigError(f"config key {short_repr(key)}: no file at {Path(value)}")
    return value


def optional_data_path(value: Any, key: str) -> Optional[str]:
    """``None`` (the config names its data another way) or a path to a .npz or .nwb file (maybe not there yet)."""
    return None if value is None else _data_path(value, key)


def optional_data_file(value: Any, key: str) -> Optional[str]:
    """``None`` (the config names its data another way) or :py:func:`data_file`."""
    return None if value is None else data_file(value, key)


def session_files(value: Any, key: str) -> Optional[Dict[str, str]]:
    """``None``, or a non-empty mapping of session names to existing .npz or .nwb files."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or not value:
        _refuse(key, "a non-empty mapping {session name: data file}", value)
    for name, path in value.items():
        if not isinstance(name, str) or not name or "." in name:
            raise ConfigError(f"config key {short_repr(key)}: a session name must be a non-empty string without '.', got {short_repr(name)}")
        data_file(path, f"{key}.{name}")
    return dict(value)


def folder(value: Any, key: str) -> Optional[str]:
    """A folder path (that may not exist yet, but is not a file); ``None`` where the default is ``None``."""
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)) or isinstance(value, bool):
        _refuse(key, "a folder path", value)
    if Path(value).exists() and not Path(value).is_dir():
        raise ConfigError(f"config key {short_repr(key)} must be a folder, but {Path(value)} is a file")
    return value


def registered(registry_name: str, auto: bool = False) -> Callable[[Any, str], str]:
    """A name registered in ``strfsolver.<registry_name>`` (or ``"auto"``)."""

    def check(value: Any, key: str) -> str:
        import importlib

        from strfsolver.registry import closest_name

        module = importlib.import_module(f"strfsolver.{registry_name}")
        options = module.get_options()
        if not isinstance(value, str):
            _refuse(key, f"a registered {key} name ({', '.join(options)})", value)
        if auto and value == "auto":
            return value
        aliases = module._registry_state.aliases
        alias = aliases.lookup(value)
        if alias is not None and alias[1] is not None:
            return value  # another library's name of a registered one: init builds it
        if value not in options:
            close = closest_name(value, options, aliases)
            hint = f"; did you mean {close!r}?" if close else ""
            raise ConfigError(f"config key {short_repr(key)}: unknown {key} {short_repr(value)}{hint} (options: {', '.join(options)})")
        return value

    return check


def seed(value: Any, key: str) -> int:
    """A seed in [0, 2**63 - 1]."""
    try:
        return check_seed(value, f"config key {key!r}")
    except ValueError as error:
        raise ConfigError(str(error)) from None


def seed_list(value: Any, key: str) -> list:
    """A non-empty list of distinct seeds."""
    if not isinstance(value, list) or not value:
        _refuse(key, "a list of seeds (integers in [0, 2**63 - 1]), not empty", value)
    seeds = [seed(s, f"{key}[{i}]") for i, s in enumerate(value)]
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"config key {short_repr(key)} repeats a seed: {short_repr(value)}")
    return seeds


def count(minimum: int, auto: bool = False) -> Callable[[Any, str], Any]:
    """An integer >= ``minimum`` (or ``"auto"``)."""

    def check(value: Any, key: str) -> Any:
        if auto and value == "auto":
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            _refuse(key, f"an integer >= {minimum}" + (" or 'auto'" if auto else ""), value)
        if value < minimum:
            raise ConfigError(f"config key {short_repr(key)} must be >= {minimum}, got {short_repr(value)}")
        return value

    return check


def fraction(auto: bool = False, positive: bool = False) -> Callable[[Any, str], Any]:
    """A number in [0, 1) ((0, 1) with ``positive``), or ``"auto"``."""

    def check(value: Any, key: str) -> Any:
        if auto and value == "auto":
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _refuse(key, "a fraction between 0 and 1" + (" or 'auto'" if auto else ""), value)
        if not 0 <= value < 1:
            raise ConfigError(f"config key {short_repr(key)} must lie in [0, 1), got {short_repr(value)}")
        if positive and not value > 0:
            raise ConfigError(f"config key {short_repr(key)} must be > 0: early stopping needs validation stimuli")
        return value

    return check


def device(value: Any, key: str) -> str:
    """A device this machine can compute on (:py:func:`~strfsolver.utils.checks.check_device`)."""
    if not isinstance(value, str):
        _refuse(key, "a torch device name such as 'cpu' or 'cuda:0'", value)
    try:
        check_device(value, f"config key {key!r}")
    except ValueError as error:
        raise ConfigError(str(error)) from None
    return value


def stimuli(value: Any, key: str) -> Optional[list]:
    """``None`` or a non-empty list of distinct stimulus positions or names."""
    if value is None:
        return None
    if not isinstance(value, list) or not value or any(isinstance(v, bool) or not isinstance(v, (int, str)) for v in value):
        _refuse(key, "a non-empty list of stimulus positions or names", value)
    return value


def loggers(value: Any, key: str) -> list:
    """Logger names or mappings (:py:func:`~strfsolver.loggers.logger_choice.check_logger_choices`)."""
    from strfsolver.loggers.logger_choice import check_logger_choices

    try:
        check_logger_choices(value, f"config key {key!r}")
    except ValueError as error:
        raise ConfigError(str(error)) from None
    return value


def frequencies(value: Any, key: str) -> Optional[list]:
    """``None`` or a list of positive frequencies in Hz."""
    if value is not None and (not isinstance(value, list) or any(isinstance(f, bool) or not isinstance(f, (int, float)) or not f > 0 for f in value)):
        _refuse(key, "a list of positive frequencies in Hz", value)
    return value


def choice(options: Sequence[str]) -> Callable[[Any, str], str]:
    def check(value: Any, key: str) -> str:
        if not isinstance(value, str) or value not in options:
            raise ConfigError(f"config key {short_repr(key)} must be {', '.join(repr(o) for o in options[:-1])} or {short_repr(options[-1])}, got {short_repr(value)}")
        return value

    return check


def model_specs(value: Any, key: str) -> Dict[str, Dict[str, Any]]:
    """``{name: spec}``: names are strings, each spec a mapping whose option keys are mappings."""
    if not isinstance(value, Mapping) or not value:
        raise ConfigError(f"config key {short_repr(key)} must map model names to specs, e.g. {{\"ridge\": {{\"model\": \"linear\"}}}}, got {short_repr(value)}")
    specs = {}
    for name, spec in mapping(value, key).items():
        if not isinstance(spec, Mapping):
            raise ConfigError(f"config key {short_repr(key)}: {short_repr(name)} must be a mapping of spec keys, got {type(spec).__name__}")
        spec = mapping(spec, f"{key}.{name}")
        for sub in ("model_options", "solver_options"):
            if sub in spec:
                spec[sub] = mapping(spec[sub], f"{key}.{name}.{sub}")
        if "seeds" in spec and spec["seeds"] is not None:
            spec["seeds"] = seed_list(spec["seeds"], f"{key}.{name}.seeds")
        if "device" in spec and spec["device"] is not None:
            device(spec["device"], f"{key}.{name}.device")
        specs[name] = spec
    return specs


def anything(value: Any, key: str) -> Any:
    """Checked later, by what the value is given to (a splitter, a grid), with the key named."""
    return value


#: the keys of a ``strfsolver fit`` config (docs: :py:mod:`strfsolver.app.fit_config`)
FIT_SCHEMA: Dict[str, Key] = {
    "data": Key(None, optional_data_file),  # this, or "sessions": fit_config checks that one of them is given
    "sessions": Key(None, session_files),
    "logdir": Key(REQUIRED, folder),
    "data_options": Key({}, mapping),
    "model": Key("auto", registered("models", auto=True)),
    "model_options": Key({}, mapping),
    "solver": Key("auto", registered("solver", auto=True)),
    "solver_options": Key({}, mapping),
    "loss": Key("mse", registered("losses")),
    "seeds": Key([0], seed_list),
    "valid_fraction": Key("auto", fraction(auto=True, positive=True)),
    "test_fraction": Key(0.0, fraction()),
    "split_seed": Key(0, seed),
    "batch_size": Key("auto", count(1, auto=True)),
    "device": Key("cpu", device),
    "valid_stimuli": Key(None, stimuli),
    "test_stimuli": Key(None, stimuli),
    "loggers": Key([], loggers),
    "freqs_hz": Key(None, frequencies),
}

#: the keys of a ``strfsolver compare`` config (docs: :py:mod:`strfsolver.app.compare_config`)
COMPARE_SCHEMA: Dict[str, Key] = {
    # this, or "sessions" (strfsolver.app.compare_sessions): compare_config checks that one of them is given
    "data": Key(None, optional_data_path),  # its existence is checked when the comparison runs
    "sessions": Key(None, session_files),
    "models": Key(REQUIRED, model_specs),
    "data_options": Key({}, mapping),
    "logdir": Key(None, folder),
    "cv": Key(5, anything),
    "param_grids": Key({}, mapping),
    "inner_cv": Key(3, anything),
    "metric": Key("cc_norm", choice(("cc_norm", "cc", "fve"))),
    "seed": Key(0, seed),
    "valid_fraction": Key("auto", fraction(auto=True, positive=True)),
    "n_boot": Key(2000, count(1)),
}


def defaults(schema: Mapping[str, Key]) -> Dict[str, Any]:
    """``{key: default}`` of a schema (``...`` for a required key)."""
    return {key: entry.default for key, entry in schema.items()}


def complete(config: Any, keys: Mapping[str, Any]) -> Dict[str, Any]:
    """``config`` with the defaults of ``keys`` (``{key: default}``, ``...`` = required) filled in, as a new
    dict; a non-string, unknown or missing required key is a :py:class:`ConfigError`."""
    if not isinstance(config, Mapping):
        raise ConfigError(f"a config is a mapping of keys to values, got {type(config).__name__}")
    bad = next((k for k in config if not isinstance(k, str)), None)
    if bad is not None or None in config:
        raise ConfigError(f"config keys must be strings, got the key {type(bad).__name__} {short_repr(bad)}")
    config = dict(config)
    for old, new in RENAMED_KEYS.items():
        if old in config:
            value = renamed(config.get(new, ...), config.pop(old), new, old, where="config", default=..., error=ConfigError, stacklevel=5)
            if value is not ...:
                config[new] = value
    unknown = sorted(set(config) - set(keys))
    if unknown:
        raise ConfigError(f"unknown config key {short_repr(unknown[0])}; known keys are {', '.join(keys)}")
    missing = [k for k, v in keys.items() if v is ... and k not in config]
    if missing:
        raise ConfigError(f"config key {short_repr(missing[0])} is required")
    # a deep copy of each default, so a caller editing the result never edits the defaults
    full = {k: json.loads(json.dumps(v)) for k, v in keys.items() if v is not ...}
    full.update(config)
    return full


def validate_keys(config: Any, schema: Mapping[str, Key]) -> Dict[str, Any]:
    """Refuse non-string, unknown and missing keys, fill in the defaults and run every key's check.

    Returns:
        A complete config (a new dict), each value as its check returned it.
    """
    full = complete(config, defaults(schema))
    for key, entry in schema.items():
        full[key] = entry.check(full[key], key)
    return full


def read_config_file(path: Union[str, os.PathLike]) -> Tuple[Path, Any]:
    """The path and the parsed content of a JSON (``.json``) or YAML (``.yaml``/``.yml``) config file.

    Refuses, naming the file: a missing path, a folder, bytes that are not UTF-8,
    malformed or too deeply nested JSON/YAML.
    """
    from strfsolver.utils.io import parse_json

    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder; give the path of a .json or .yaml config file")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {error.start}: {error.reason})") from None
    except OSError as error:
        raise ConfigError(f"config file {path} cannot be read: {error.strerror or error}") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigError("YAML configs need PyYAML: pip install strfsolver[yaml]") from None
        try:
            return path, yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ConfigError(f"{path} is not valid YAML: {str(error).splitlines()[0][:200]}") from None
        except RecursionError:
            raise ConfigError(f"{path} is nested too deeply to read as YAML") from None
    try:
        return path, parse_json(text, str(path))
    except ValueError as error:
        raise ConfigError(str(error)) from None
