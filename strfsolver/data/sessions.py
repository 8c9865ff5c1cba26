"""Several recording sessions: a mapping ``{session: NeuralDataset}``, its splits, its loaders, and
their batches interleaved into one stream.

A multi-session data set is a plain ``dict`` of
:py:class:`~strfsolver.data.NeuralDataset`, one per session, in a chosen
order: each session has its own stimuli and its own neurons, and all share
the stimulus format (bands, channels, bin width). The functions here keep
the sessions apart while treating them alike:

- :py:func:`check_sessions`: the one check of such a mapping (its format part, :py:func:`check_same_format`,
  also checks the loaders of a ``"multi-session"`` fit);
- :py:func:`split_sessions`: each session split by stimulus, into parts that
  are again mappings (``train["s0"]`` is session s0's training part);
- :py:func:`session_loaders`: one :py:class:`~strfsolver.data.PaddedLoader` per session;
- :py:class:`SessionBatches`: the sessions' loaders as one loader whose
  batches carry ``batch["session"]``, in a seeded order that interleaves
  the sessions (what the ``"multi-session"`` solver trains on).
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Iterator, List, Mapping, Sequence, Union

import numpy as np
import torch

from strfsolver.data.dataset import NeuralDataset
from strfsolver.data.loader import PaddedLoader, make_loader
from strfsolver.utils.checks import check_count, check_flag, check_seed, short_repr

__all__ = ["check_session_name", "check_sessions", "check_same_format", "SESSION_FORMAT", "split_sessions", "session_loaders", "SessionBatches", "SESSION"]

#: the batch key naming the session a batch of :py:class:`SessionBatches` comes from
SESSION = "session"

#: what every session's data share: frequency bands, channels, stimulus layout and bin width
SESSION_FORMAT = ("n_freqs", "n_channels", "stim_ndim", "dt_ms")


def check_session_name(name: Any, what: str = "") -> str:
    """``name`` if it can name a session: a non-empty string without ``"."`` (torch's rule for module
    names: a model keeps one readout per session under its name).

    Raises:
        ValueError: naming what came instead (after ``what``, the context, when given).
    """
    if not isinstance(name, str) or not name or "." in name:
        raise ValueError(f"{what + ': ' if what else ''}a session name must be a non-empty string without '.', got {short_repr(name)}.")
    return name


def check_sessions(datasets: Any, what: str = "the sessions") -> Dict[str, NeuralDataset]:
    """``datasets`` as a ``dict`` if it is a non-empty mapping of session names to
    :py:class:`~strfsolver.data.NeuralDataset` that share bands, channels, stimulus layout and bin width.

    Raises:
        ValueError: naming the session and what differs from the first session.
    """
    if not isinstance(datasets, Mapping) or not datasets:
        raise ValueError(f"{what} must be a non-empty mapping {{session: NeuralDataset}}, got {short_repr(datasets)}.")
    checked: Dict[str, NeuralDataset] = {}
    for name, dataset in datasets.items():
        check_session_name(name, what)
        if not isinstance(dataset, NeuralDataset):
            raise ValueError(f"{what}: session {name!r} must be a strfsolver.data.NeuralDataset, got {type(dataset).__name__}.")
        checked[name] = dataset
    check_same_format({f"session {name!r}": dataset for name, dataset in checked.items()}, what)
    return checked


def check_same_format(datasets: Mapping[str, Any], what: str = "the sessions") -> None:
    """Refuse data of several sessions whose stimulus formats differ: each of :data:`SESSION_FORMAT`
    (bands, channels, stimulus layout, bin width) must be the same in every dataset that has it
    (one without an attribute, such as a loader that serves no dataset, is not compared on it).

    Args:
        datasets: ``{label: dataset}``, the label naming the data in the message (``"session 's0'"``).

    Raises:
        ValueError: naming the two datasets, the attribute and both values.
    """
    for attribute in SESSION_FORMAT:
        having = [(label, getattr(data, attribute)) for label, data in datasets.items() if getattr(data, attribute, None) is not None]
        for label, value in having[1:]:
            first_label, first = having[0]
            if value != first:
                raise ValueError(f"{what}: {label} has {attribute}={value} but {first_label} has {first}; "
                                 "one model reads every session's stimuli alike.")


def split_sessions(datasets: Mapping[str, NeuralDataset], fractions: Union[float, Sequence[float]], seed: int = 0) -> List[Dict[str, NeuralDataset]]:
    """Split every session by stimulus (:py:meth:`NeuralDataset.split`, same ``fractions`` and ``seed``).

    Returns:
        One mapping ``{session: part}`` per fraction, the sessions in their order.
    """
    checked = check_sessions(datasets)
    parts = {name: dataset.split(fractions, seed=seed) for name, dataset in checked.items()}
    n_parts = len(next(iter(parts.values())))
    return [{name: parts[name][k] for name in checked} for k in range(n_parts)]


def session_loaders(datasets: Mapping[str, NeuralDataset], batch_size: int = 1, shuffle: bool = False, seed: int = 0,
                    device: Union[str, torch.device] = "cpu") -> Dict[str, PaddedLoader]:
    """One :py:func:`~strfsolver.data.make_loader` per session, with the same options."""
    return {name: make_loader(dataset, batch_size=batch_size, shuffle=shuffle, seed=seed, device=device)
            for name, dataset in check_sessions(datasets).items()}


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    state = np.random.SeedSequence([seed, epoch, 0x5E55]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed((int(state[0]) << 31) ^ int(state[1]))


class SessionBatches:
    """The batches of several sessions' loaders as one loader, interleaved; each batch names its session.

    An epoch serves every batch of every session's loader once (each loader
    iterated once, in its own order), so a session weighs in proportion to
    its batches, that is to its stimuli. With ``shuffle`` the sessions'
    turns are a permutation drawn from a generator seeded by ``(seed,
    epoch)`` only (no global random state is read or changed); without, the
    sessions follow each other in order. Each batch is the session loader's
    dict plus ``batch["session"]`` (:data:`SESSION`).

    Like :py:class:`~strfsolver.data.PaddedLoader` it counts epochs;
    :py:meth:`state_dict` / :py:meth:`load_state_dict` hold its own epoch and
    seed and every session loader's state, so a resumed fit sees the same
    batches in the same order.

    Args:
        loaders: ``{session: loader}``, each an iterable of batch dicts with a ``len``.
        shuffle: Interleave the sessions in a new seeded order every epoch.
        seed: Seed of that order (>= 0).
    """

    def __init__(self, loaders: Mapping[str, Iterable[Dict[str, Any]]], shuffle: bool = True, seed: int = 0):
        if not isinstance(loaders, Mapping) or not loaders:
            raise ValueError(f"SessionBatches needs a non-empty mapping {{session: loader}}, got {short_repr(loaders)}.")
        for name, loader in loaders.items():
            check_session_name(name, "SessionBatches")
            if not hasattr(loader, "__len__") or not hasattr(loader, "__iter__"):
                raise ValueError(f"the loader of session {name!r} must be an iterable of batches with a len(), got {type(loader).__name__}.")
        self.loaders = dict(loaders)
        self.shuffle = check_flag(shuffle, "shuffle")
        self.seed = check_seed(seed, "seed")
        self.epoch = 0

    @property
    def sessions(self) -> List[str]:
        """The session names, in order."""
        return list(self.loaders)

    def __len__(self) -> int:
        return sum(len(loader) for loader in self.loaders.values())

    def order(self, epoch: int) -> List[str]:
        """The session of each batch of ``epoch``, in serving order."""
        epoch = check_count(epoch, "epoch", 0)
        turns = [name for name, loader in self.loaders.items() for _ in range(len(loader))]
        if not self.shuffle:
            return turns
        permutation = torch.randperm(len(turns), generator=_epoch_generator(self.seed, epoch))
        return [turns[i] for i in permutation.tolist()]

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        order = self.order(self.epoch)
        self.epoch += 1  # counted when the epoch starts, as PaddedLoader does
        # every session's loader starts its epoch now, so its epoch count never depends on where a fit stopped
        iterators = {name: iter(loader) for name, loader in self.loaders.items()}
        return self._serve(order, iterators)

    def _serve(self, order: List[str], iterators: Dict[str, Iterator[Dict[str, Any]]]) -> Iterator[Dict[str, Any]]:
        for name in order:
            try:
                batch = next(iterators[name])
            except StopIteration:
                raise ValueError(f"the loader of session {name!r} served fewer batches than its len() says "
                                 f"({len(self.loaders[name])}).") from None
            yield {**batch, SESSION: name}

    def set_epoch(self, epoch: int) -> None:
        """Serve ``epoch`` at the next ``iter()`` (the session loaders keep their own counts)."""
        self.epoch = check_count(epoch, "epoch", 0)

    def state_dict(self) -> Dict[str, Any]:
        """``{"epoch", "seed", "sessions": {session: its loader's state}}`` (loaders without a state are left out)."""
        states = {name: loader.state_dict() for name, loader in self.loaders.items() if callable(getattr(loader, "state_dict", None))}
        return {"epoch": self.epoch, "seed": self.seed, "sessions": states}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :py:meth:`state_dict` returned.

        Raises:
            ValueError: for a state of other sessions, naming both lists.
        """
        if not isinstance(state, Mapping) or set(state) != {"epoch", "seed", "sessions"}:
            raise ValueError(f"expected a dict with keys 'epoch', 'seed' and 'sessions', got {short_repr(state)}.")
        unknown = sorted(set(state["sessions"]) - set(self.loaders))
        if unknown:
            raise ValueError(f"the saved state has the sessions {sorted(state['sessions'])}, these batches {self.sessions}; "
                             f"{unknown} would be lost.")
        values = {k: v.item() if isinstance(v, torch.Tensor) and v.numel() == 1 else v for k, v in state.items() if k != "sessions"}
        self.epoch = check_count(values["epoch"], "state['epoch']", 0)
        self.seed = check_count(values["seed"], "state['seed']", 0)
        for name, saved in state["sessions"].items():
            self.loaders[name].load_state_dict(saved)

    def __repr__(self) -> str:
        return f"SessionBatches(sessions={self.sessions}, shuffle={self.shuffle}, seed={self.seed}, epoch={self.epoch})"
