"""Datasets, padding and loaders that follow the data contract (docs/conventions.md §1).

- :py:class:`NeuralDataset`: validated stimuli ``(F, T_i)`` and responses ``(N, R_i, T_i)``;
- :py:func:`neural_collate`: pads items into a batch dict for ``torch.utils.data.DataLoader``;
- :py:func:`make_loader` / :py:class:`PaddedLoader`: pads the whole dataset once on a
  device and serves the same batches by indexing, with a seeded, resumable shuffle;
- :py:func:`synthetic_population` / :py:class:`SyntheticPopulation`: ground-truth
  LNP neurons with spectrogram-like stimuli and Poisson responses;
- :py:func:`synthetic_multisession` / :py:class:`SyntheticSessions`: sessions, each with its
  own stimuli and neurons, whose neurons mix shared rectified subunits (multi-session fits);
- :py:mod:`~strfsolver.data.sessions`: several recording sessions as a mapping
  ``{session: NeuralDataset}`` (:py:func:`check_sessions`, :py:func:`split_sessions`,
  :py:func:`session_loaders`) and :py:class:`SessionBatches`, their loaders interleaved;
- :py:func:`save_npz` / :py:func:`load_npz`: a documented, pickle-free file format;
- :py:class:`FolderWriter` / :py:func:`open_folder`: a folder of ``.npy`` files, written
  piecewise and read per batch, for data larger than memory;
- :py:func:`from_nwb`: stimuli and spike times (or binned responses) from NWB files.
"""

from strfsolver.data.dataset import REPEATS, NeuralDataset, SummarisedRepeatsError
from strfsolver.data.collate import check_batch, metric_responses, neural_collate, recorded_responses
from strfsolver.data.loader import PaddedLoader, PsthView, make_loader
from strfsolver.data.files import load_npz, save_npz
from strfsolver.data.folder import FolderWriter, open_folder, save_folder
from strfsolver.data.nwb import from_nwb
from strfsolver.data.synthetic import NONLINEARITIES, SyntheticPopulation, synthetic_population
from strfsolver.data.sessions import SessionBatches, check_sessions, session_loaders, split_sessions
from strfsolver.data.synthetic_sessions import SyntheticSessions, synthetic_multisession
from strfsolver.data.views import ValidationCache

__all__ = [
    "check_batch",
    "NeuralDataset",
    "REPEATS",
    "SummarisedRepeatsError",
    "metric_responses",
    "neural_collate",
    "recorded_responses",
    "PsthView",
    "ValidationCache",
    "PaddedLoader",
    "make_loader",
    "SyntheticPopulation",
    "synthetic_population",
    "NONLINEARITIES",
    "SyntheticSessions",
    "SessionBatches",
    "check_sessions",
    "split_sessions",
    "session_loaders",
    "synthetic_multisession",
    "save_npz",
    "load_npz",
    "FolderWriter",
    "open_folder",
    "save_folder",
    "from_nwb",
]
