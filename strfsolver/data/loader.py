"""A loader that pads a whole dataset once and serves batches by indexing.

``DataLoader(dataset, collate_fn=neural_collate)`` allocates and fills new
padded tensors for every batch, item by item, on the CPU. A
:py:class:`PaddedLoader` does that work once (on its first batch), for the whole dataset and
directly on the target device; a batch is then one ``index_select`` per
tensor, trimmed to the batch's longest stimulus and largest repeat count so
that it equals, value for value, what ``neural_collate`` would have built.
A dataset on disk is never padded whole: each batch is read and padded on its
own (:py:attr:`PaddedLoader.streams`), and so is a summarised one on the
CPU, whose PSTHs are small enough that a padded copy would only double them.
:py:class:`PsthView` serves a loader's batches with PSTHs in place of the
repeats (:py:mod:`strfsolver.data.views` says when a solver uses it).
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Union

import numpy as np
import torch
from torch import Tensor

from strfsolver.data.collate import neural_collate
from strfsolver.data.dataset import NeuralDataset
from strfsolver.metrics import RepeatStatistics, psth
from strfsolver.utils.checks import check_count, check_device, check_flag, check_seed
from strfsolver.utils.checks import short_repr

__all__ = ["PaddedLoader", "PsthView", "make_loader"]


def _epoch_seed(seed: int, epoch: int) -> int:
    # SeedSequence mixes the pair so that (seed, epoch) and (seed', epoch')
    # never share a stream by arithmetic coincidence (unlike seed * K + epoch)
    state = np.random.SeedSequence([seed, epoch]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


class PaddedLoader:
    """Batches of a :py:class:`NeuralDataset`, padded once on ``device``.

    Iterating yields the same dicts as
    ``DataLoader(dataset.subset(order), batch_size, collate_fn=neural_collate)``
    (``stims``, ``responses``, ``valid_mask``, ``meta``; see
    :py:func:`neural_collate`), with tensors on ``device``. ``order`` is
    ``range(len(dataset))``, or with ``shuffle=True`` a permutation drawn from a
    generator seeded by ``(seed, epoch)`` only: no global random state is used
    or changed.

    The loader counts epochs: each ``iter(loader)`` serves epoch
    :py:attr:`epoch` and then advances it by one. :py:meth:`state_dict` /
    :py:meth:`load_state_dict` save and restore ``{"epoch", "seed"}`` so that
    a resumed run sees exactly the shuffles it would have seen;
    :py:meth:`set_epoch` picks the next epoch by hand.

    Build it with :py:func:`make_loader`.

    Args:
        dataset: The data.
        batch_size: Stimuli per batch (> 0).
        shuffle: Draw a new order each epoch.
        seed: Seed of the shuffle (>= 0).
        device: Where the padded tensors live and batches are served.
        drop_last: Leave out a last, smaller batch.
    """

    def __init__(self, dataset: NeuralDataset, batch_size: int = 1, shuffle: bool = False, seed: int = 0, device: Union[str, torch.device] = "cpu", drop_last: bool = False):
        if not isinstance(dataset, NeuralDataset):
            raise ValueError(
                f"make_loader needs a strfsolver.data.NeuralDataset, got {type(dataset).__name__}; "
                "wrap arrays with NeuralDataset(stims, responses, dt_ms) first."
            )
        self.batch_size = check_count(batch_size, "batch_size", 1)
        self.shuffle = check_flag(shuffle, "shuffle")
        self.seed = check_seed(seed, "seed")
        self.drop_last = check_flag(drop_last, "drop_last")
        self.device = check_device(device)
        self.dataset = dataset
        self.epoch = 0
        # padded on first use: a solver that trains on PSTHs (see
        # psth_view) never needs the repeats padded at all
        self._padded = None
        # batch extents are computed on the host: no device sync per batch
        self._lengths = torch.tensor(dataset.lengths, dtype=torch.long)
        summarised = dataset.repeats == "summary"
        self._repeats = torch.tensor([1] * len(dataset) if summarised else dataset.n_repeats, dtype=torch.long)
        self._meta = dataset.meta
        self._repeat_stats: RepeatStatistics = dataset.repeat_statistics.to(self.device) if summarised else None
        #: whether each batch is read from the dataset when served, rather than cut from one padded copy of it
        self.streams = dataset.on_disk or (summarised and self.device.type == "cpu")

    def _pad(self):
        if self._padded is None:
            # padding on the CPU first keeps one host-to-device copy per tensor
            padded = neural_collate([self.dataset[i] for i in range(len(self.dataset))])
            self._padded = (
                padded["stims"].to(self.device),
                padded["responses"].to(self.device),
                # selecting a stored bool mask costs a quarter of the bytes of recomputing isnan per batch
                padded["valid_mask"].to(self.device),
            )
        return self._padded

    @property
    def is_padded(self) -> bool:
        """Whether the padded tensors exist yet (they are built on the first batch)."""
        return self._padded is not None

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def order(self, epoch: int) -> Tensor:
        """The stimulus order of ``epoch``, a ``(n_stims,)`` long tensor on the CPU."""
        epoch = check_count(epoch, "epoch", 0)
        n = len(self.dataset)
        if not self.shuffle:
            return torch.arange(n)
        generator = torch.Generator().manual_seed(_epoch_seed(self.seed, epoch))
        return torch.randperm(n, generator=generator)

    def batch(self, indices: Union[Tensor, List[int]]) -> Dict[str, Any]:
        """The padded batch of the stimuli ``indices``, as ``neural_collate`` would build it."""
        index = torch.as_tensor(indices).to(device="cpu", dtype=torch.long).reshape(-1)
        if index.numel() == 0:
            raise ValueError("a batch needs at least one stimulus index, got none.")
        n = len(self.dataset)
        if int(index.min()) < 0 or int(index.max()) >= n:
            raise ValueError(f"stimulus indices must lie in [0, {n - 1}], got {index.tolist()}.")
        if self.streams:
            batch = neural_collate([self.dataset[i] for i in index.tolist()])
            return {key: value.to(self.device) if isinstance(value, (Tensor, RepeatStatistics)) else value
                    for key, value in batch.items()}
        bins = int(self._lengths[index].max())
        repeats = int(self._repeats[index].max())
        on_device = index.to(self.device, non_blocking=True)
        padded_stims, padded_responses, padded_valid = self._pad()
        # slicing first makes index_select copy only the trimmed block
        stims = padded_stims[..., :bins].index_select(0, on_device)
        responses = padded_responses[:, :, :repeats, :bins].index_select(0, on_device)
        valid = padded_valid[:, :, :repeats, :bins].index_select(0, on_device)
        meta = [dict(self._meta[i]) for i in index.tolist()]
        batch = {"stims": stims, "responses": responses, "valid_mask": valid, "meta": meta}
        if self._repeat_stats is not None:
            batch["repeat_stats"] = self._repeat_stats.index_select(0, on_device)
        return batch

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        order = self.order(self.epoch)
        self.epoch += 1  # counted when the epoch starts, so state_dict() mid-epoch names the next one
        stop = len(self) * self.batch_size
        return (self.batch(order[start : min(start + self.batch_size, len(order))]) for start in range(0, stop, self.batch_size))

    def set_epoch(self, epoch: int) -> None:
        """Serve ``epoch`` at the next ``iter(loader)``."""
        self.epoch = check_count(epoch, "epoch", 0)

    def psth_view(self) -> "PsthView":
        """This loader's batches, in its order, with each stimulus' PSTH ``(B, N, 1, T)`` in place
        of its repeats (:py:class:`PsthView`); iterating the view advances
        this loader's epoch. The PSTHs are computed when the view is built; the caller owns it."""
        return PsthView(self)

    def state_dict(self) -> Dict[str, int]:
        """``{"epoch": the epoch the next iter() serves, "seed": seed}``."""
        return {"epoch": self.epoch, "seed": self.seed}

    def load_state_dict(self, state: Dict[str, int]) -> None:
        """Restore what :py:meth:`state_dict` returned."""
        if not isinstance(state, dict) or set(state) != {"epoch", "seed"}:
            raise ValueError(f"expected a dict with keys 'epoch' and 'seed', got {short_repr(state)}.")
        # a checkpoint may hand the numbers back as 0-d tensors
        values = {k: v.item() if isinstance(v, Tensor) and v.numel() == 1 else v for k, v in state.items()}
        epoch = check_count(values["epoch"], "state['epoch']", 0)
        self.seed = check_count(values["seed"], "state['seed']", 0)
        self.epoch = epoch

    def __repr__(self) -> str:
        return (
            f"PaddedLoader(n_stims={len(self.dataset)}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"seed={self.seed}, device={str(self.device)!r}, drop_last={self.drop_last}, epoch={self.epoch})"
        )


def make_loader(dataset: NeuralDataset, batch_size: int = 1, shuffle: bool = False, seed: int = 0, device: Union[str, torch.device] = "cpu", drop_last: bool = False) -> PaddedLoader:
    """A fast, seeded loader of padded batches; see :py:class:`PaddedLoader`.

    Args:
        dataset: A :py:class:`NeuralDataset`.
        batch_size: Stimuli per batch (> 0).
        shuffle: Draw a new stimulus order each epoch, from ``(seed, epoch)``.
        seed: Seed of the shuffle (>= 0).
        device: Where batches are served (``"cpu"``, ``"cuda"``, ...).
        drop_last: Leave out a last, smaller batch.

    Returns:
        A :py:class:`PaddedLoader`.

    Raises:
        ValueError: For a non-dataset or a bad argument.
    """
    return PaddedLoader(dataset, batch_size=batch_size, shuffle=shuffle, seed=seed, device=device, drop_last=drop_last)


def _psth_batch(batch: Dict[str, Any]) -> Dict[str, Any]:
    """A streamed batch with its PSTH in place of its repeats (a summarised one is one already)."""
    if "repeat_stats" in batch:
        return batch
    mean = psth(batch["responses"])
    return dict(batch, responses=mean, valid_mask=~mean.isnan())


class PsthView:
    """A :py:class:`PaddedLoader`'s batches, in its order, with PSTHs in place of the repeats.

    Iterating the view serves the loader's current epoch and advances the
    loader's epoch counter (the view has no state of its own); its batches
    are those of the loader with ``responses`` and ``valid_mask`` of shape
    ``(B, N, 1, T)``. The PSTHs are computed and padded once, when the view
    is built; a loader that streams (:py:attr:`PaddedLoader.streams`) has each
    batch's PSTH computed as it is read, and a summarised dataset's batches
    are served as they are.

    Args:
        loader: The loader to view.
    """

    def __init__(self, loader: PaddedLoader):
        if not isinstance(loader, PaddedLoader):
            raise ValueError(f"a PSTH view needs a strfsolver.data.PaddedLoader, got {type(loader).__name__}.")
        self.loader = loader
        self._psths = None
        if not loader.streams:
            dataset = loader.dataset  # its stimuli passed validation already: shared, not copied and checked again
            psths = NeuralDataset._trusted(dataset.stims, dataset.psths, dataset.dt_ms, dataset.meta)
            self._psths = PaddedLoader(psths, batch_size=loader.batch_size, device=loader.device, drop_last=loader.drop_last)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        loader = self.loader
        order = loader.order(loader.epoch)
        loader.set_epoch(loader.epoch + 1)
        size = loader.batch_size
        stop = len(loader) * size
        if self._psths is None:
            return (_psth_batch(loader.batch(order[start : min(start + size, len(order))])) for start in range(0, stop, size))
        return (self._psths.batch(order[start : min(start + size, len(order))]) for start in range(0, stop, size))

    def state_dict(self) -> Dict[str, int]:
        """The viewed loader's state."""
        return self.loader.state_dict()

    def load_state_dict(self, state: Dict[str, int]) -> None:
        """Restore the viewed loader's state."""
        self.loader.load_state_dict(state)

    def __repr__(self) -> str:
        return f"PsthView({self.loader!r})"
