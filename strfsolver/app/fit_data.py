"""The data of a ``strfsolver fit`` config: reading its file, choosing its stimuli, splitting it.

Shared by the fit of one data file (:py:mod:`strfsolver.app.fit_config`) and
of several sessions (:py:mod:`strfsolver.app.sessions_fit`), which splits
each session's file by the same rules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from strfsolver.app.config_schema import ConfigError
from strfsolver.utils.checks import short_repr

__all__ = ["select_stimuli", "split_data", "load_data"]


def select_stimuli(dataset, chosen, key: str):
    """Positions of the stimuli ``chosen`` names (``meta["name"]``) or positions; raises ConfigError naming ``key``."""
    names = [str(m.get("name", "")) for m in dataset.meta]
    positions = []
    for item in chosen:
        if isinstance(item, int):
            if not -dataset.n_stims <= item < dataset.n_stims:
                raise ConfigError(f"config key {short_repr(key)}: stimulus {item} is out of range; the data have {dataset.n_stims} stimuli")
            positions.append(item % dataset.n_stims)
        elif isinstance(item, str) and names.count(item) > 1:
            matches = [i for i, name in enumerate(names) if name == item]
            raise ConfigError(
                f"config key {short_repr(key)}: {len(matches)} stimuli are named {short_repr(item)} (positions {matches[:10]}); "
                "name them by position instead"
            )
        elif item in names:
            positions.append(names.index(item))
        else:
            import difflib

            close = difflib.get_close_matches(item, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"config key {short_repr(key)}: no stimulus named {short_repr(item)}{hint}")
    if len(set(positions)) != len(positions):
        raise ConfigError(f"config key {short_repr(key)} names a stimulus twice: {short_repr(chosen)}")
    return positions


def split_data(dataset, config: Mapping[str, Any]):
    """Training, validation and test data (the last ``None`` without a test split): named stimuli where
    the config names them, fractions otherwise."""
    from strfsolver.workflow.experiment import choose_valid_count

    if config["valid_stimuli"] is None and config["test_stimuli"] is None:
        valid_fraction = config["valid_fraction"]
        if valid_fraction == "auto":
            # counted on the stimuli left after the test share, so a test split does not shrink validation
            kept = len(dataset) - round(config["test_fraction"] * len(dataset))
            valid_fraction = choose_valid_count(kept) / len(dataset) if kept >= 2 else 0.5
        fractions = [1 - valid_fraction - config["test_fraction"], valid_fraction]
        if config["test_fraction"] > 0:
            fractions.append(config["test_fraction"])
        try:
            parts = dataset.split(fractions, seed=config["split_seed"])
        except ValueError as error:
            raise ConfigError(f"config keys 'valid_fraction'/'test_fraction': {error}") from None
        return parts[0], parts[1], (parts[2] if len(parts) > 2 else None)
    import numpy as np

    test = [] if config["test_stimuli"] is None else select_stimuli(dataset, config["test_stimuli"], "test_stimuli")
    rest = [i for i in range(dataset.n_stims) if i not in test]
    if config["valid_stimuli"] is not None:
        valid = select_stimuli(dataset, config["valid_stimuli"], "valid_stimuli")
        both = sorted(set(valid) & set(test))
        if both:
            raise ConfigError(f"config keys 'valid_stimuli' and 'test_stimuli' share stimulus {both[0]}")
    else:
        # the validation share of the stimuli left after the named test ones, drawn with split_seed
        if config["valid_fraction"] == "auto":
            n_valid = max(1, choose_valid_count(len(rest))) if len(rest) >= 2 else 1
        else:
            n_valid = max(1, int(round(config["valid_fraction"] * dataset.n_stims)))
        order = np.random.default_rng(config["split_seed"]).permutation(len(rest))
        valid = [rest[i] for i in sorted(order[:n_valid].tolist())]
    train = [i for i in rest if i not in valid]
    if not train:
        raise ConfigError("config keys 'valid_stimuli'/'test_stimuli' leave no stimulus to train on")
    return dataset.subset(train), dataset.subset(sorted(valid)), (dataset.subset(sorted(test)) if test else None)


def load_data(config: Mapping[str, Any]):
    """The dataset of the config's ``data`` file or dataset folder (with ``data_options`` for an NWB file); ConfigError naming the key."""
    from strfsolver.data import from_nwb, load_npz, open_folder

    path = Path(config["data"])
    try:
        if path.is_dir():
            if config["data_options"]:
                raise ConfigError("config key 'data_options' applies to .nwb files only")
            return open_folder(path)
        if path.suffix.lower() == ".npz":
            if config["data_options"]:
                raise ConfigError("config key 'data_options' applies to .nwb files only")
            return load_npz(path)
        return from_nwb(path, **config["data_options"])
    except ConfigError:
        raise
    except TypeError as error:
        raise ConfigError(f"config key 'data_options': {error}") from None
    except (ValueError, ImportError) as error:
        raise ConfigError(f"config key 'data': {str(error).splitlines()[0]}") from None
