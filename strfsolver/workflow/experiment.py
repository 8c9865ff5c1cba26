"""One description of a fit, shared by the estimator, ``strfsolver fit`` and the demo.

An :py:class:`ExperimentSpec` names the model, the solver and their options,
the loss, the batch size, the seeds and where to write; the keys are those
of a ``strfsolver fit`` config. :py:func:`build_experiment` turns a spec and
the data (a :py:class:`~strfsolver.data.NeuralDataset` split into training,
validation and test stimuli) into an :py:class:`Experiment`: the model, the
solver and the loaders, wired the one way every entry point shares.
:py:meth:`Experiment.fit` trains; :py:func:`evaluate` scores any fitted
solver on any data. Data flow one way: dataset -> loader -> solver -> metrics.

    >>> import strfsolver
    >>> from strfsolver.workflow.experiment import ExperimentSpec, build_experiment
    >>> pop = strfsolver.data.synthetic_population(n_neurons=3, n_stims=8, n_repeats=3, n_freqs=6, n_lags=4, n_times=60)
    >>> train, valid = pop.dataset.split([0.75, 0.25], seed=0)
    >>> spec = ExperimentSpec(model="linear", model_options={"n_lags": 4})
    >>> experiment = build_experiment(spec, train, valid).fit()
    >>> experiment.solver_name, experiment.scores("valid")["cc_norm"].shape
    ('ridge', (3,))
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from strfsolver.utils.checks import check_choice, check_count, check_device, check_seed
from strfsolver.data import NeuralDataset, make_loader, metric_responses, neural_collate
from strfsolver.metrics import MetricAccumulator, SummarisedResponses
from strfsolver.utils.deprecation import renamed
from strfsolver.utils.seeding import seeded
from strfsolver.utils.checks import short_repr

__all__ = ["ExperimentSpec", "Experiment", "build_experiment", "evaluate", "resolve_solver", "choose_model", "choose_batch_size",
           "choose_valid_count", "choose_valid_fraction", "score_predictions", "stimulus_responses", "SCORE_METRICS"]

#: the per-neuron metrics of :py:meth:`Experiment.scores` and the estimator's ``scores_``
SCORE_METRICS = ("cc", "cc_norm", "cc_norm_hsu", "fve", "signal_power", "noise_power", "snr")


def stimulus_responses(dataset: NeuralDataset, for_metrics: bool = False) -> Iterable[Any]:
    """Each stimulus' responses, read one at a time (a dataset on disk is never loaded whole): its
    repeats ``(N, R, T)``, or a summarised dataset's PSTH ``(N, 1, T)``; with ``for_metrics``, what a
    metric reads (:py:func:`strfsolver.data.metric_responses`: the summary with its repeat statistics)."""
    for i in range(len(dataset)):
        item = dataset[i]
        if for_metrics and "repeat_stats" in item:
            yield metric_responses(neural_collate([item]))
        else:
            yield item["response"]


def choose_model(responses: Sequence[Any]) -> str:
    """``"auto"`` model: ``"ln"`` (a non-negative output) for counts and rates, ``"linear"`` for
    responses that go below zero (LFP, ECoG high gamma, z-scored data)."""
    for response in responses:
        values = torch.as_tensor(np.asarray(response))
        if bool((values[~values.isnan()] < 0).any()):
            return "linear"
    return "ln"


def choose_batch_size(n_train: int) -> int:
    """``"auto"`` batch size: about four gradient steps per epoch or more, at most 8 stimuli a batch."""
    return max(1, min(8, n_train // 4))


def choose_valid_count(n_stims: int) -> int:
    """``"auto"`` validation share: how many of ``n_stims`` stimuli to hold out for early stopping.

    A fifth of them, rounded, but at least one (early stopping needs a
    score), at most ten (beyond that the score is steady and every further
    stimulus is better spent on training) and never all. One stimulus:
    ``0`` (a caller that can cut it into time blocks does so instead).
    """
    n_stims = check_count(n_stims, "n_stims", 1)
    if n_stims == 1:
        return 0
    return min(n_stims - 1, max(1, min(10, round(0.2 * n_stims))))


def choose_valid_fraction(n_stims: int) -> float:
    """:py:func:`choose_valid_count` as a share of ``n_stims``; a fifth for a single stimulus
    (of its time bins, for the callers that cut it into blocks)."""
    count = choose_valid_count(n_stims)
    return count / n_stims if count else 0.2


def resolve_solver(solver: str, model: str) -> str:
    """``"auto"``: the closed-form ``"ridge"`` for the ``"linear"`` model, ``"population"`` otherwise."""
    if solver != "auto":
        return solver
    return "ridge" if model == "linear" else "population"


@dataclasses.dataclass
class ExperimentSpec:
    """What to fit and how: the keys of a ``strfsolver fit`` config that describe the fit.

    Attributes:
        model: Registered model name, or ``"auto"`` (:py:func:`choose_model`).
        model_options: Keyword arguments of the model (``n_lags``, ``kernel``,
            ``dt_ms``...); ``n_freqs``, ``n_neurons`` and ``n_channels`` come from the data.
        solver: Registered solver name, or ``"auto"`` (:py:func:`resolve_solver`).
        solver_options: Keyword arguments of the solver (``lr``, ``max_epochs``,
            ``patience``, ``alphas``...).
        loss: Registered loss name or a callable.
        batch_size: Stimuli per batch, or ``"auto"`` (:py:func:`choose_batch_size`).
        seeds: ``None`` or one seed: one fit; several: the ``"multi-seed"``
            solver over them, around ``solver``.
        device: Where to train.
        progress: Show the solver's progress bar.
        loggers: Loggers of the solver (one fit only).
        logdir: Checkpoints (one fit: ``fit(logdir=...)``) or the
            multi-seed folders; ``None`` writes nothing.
        output_dir: Old name of ``logdir``, taken for one release (with a
            ``DeprecationWarning``); ``None`` once the spec is built.
        repeats: What the fit keeps of the repeats: ``"all"`` (the datasets as
            given), ``"summary"`` (each in-memory dataset summarised:
            ``NeuralDataset.summarised``) or ``"auto"``: summarised when
            nothing in the solver reads each repeat
            (:py:func:`strfsolver.solver.repeat_readers.repeat_readers`), which
            holds R times less in memory for the same fit and scores.
    """

    model: str = "auto"
    model_options: Dict[str, Any] = dataclasses.field(default_factory=dict)
    solver: str = "auto"
    solver_options: Dict[str, Any] = dataclasses.field(default_factory=dict)
    loss: Any = "mse"
    batch_size: Union[int, str] = "auto"
    seeds: Optional[Sequence[int]] = None
    device: str = "cpu"
    progress: bool = False
    loggers: Sequence[Any] = ()
    logdir: Optional[Union[str, Path]] = None
    output_dir: Optional[Union[str, Path]] = dataclasses.field(default=None, repr=False)
    repeats: str = "all"

    def __post_init__(self) -> None:
        check_choice(self.repeats, "repeats", ("all", "summary", "auto"), where="ExperimentSpec: ")
        self.logdir = renamed(self.logdir, self.output_dir, "logdir", "output_dir", where="ExperimentSpec", stacklevel=4)
        self.output_dir = None

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> "ExperimentSpec":
        """A spec from a dict with (some of) its field names; other keys are refused."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(mapping) - set(names))
        if unknown:
            raise ValueError(f"unknown experiment key(s) {unknown}; the keys are {names}.")
        return cls(**dict(mapping))


def _ridge_folds(options: Dict[str, Any], n_train: int) -> Dict[str, Any]:
    """Ridge options with ``cv`` (default 5) at most the number of training stimuli: as many
    folds as there are stimuli, and leave-one-bin-out (``"gcv"``) for a single one."""
    cv = options.get("cv", 5)
    if isinstance(cv, int) and not isinstance(cv, bool) and n_train < cv and options.get("alpha") is None:
        options = dict(options, cv=n_train if n_train >= 2 else "gcv")
    return options


class Experiment:
    """A model, a solver and loaders over training, validation and test data (see :py:func:`build_experiment`).

    Attributes:
        spec: The :py:class:`ExperimentSpec`.
        train, valid, test: The datasets (``valid`` and ``test`` may be ``None``).
        solver_name: The solver that runs (``"auto"`` resolved).
        solver: The solver (the ``"multi-seed"`` one when there are several seeds).
        model_factory: ``seed -> model``, the model of the spec for this data.
    """

    def __init__(self, spec: ExperimentSpec, train: NeuralDataset, valid: Optional[NeuralDataset], test: Optional[NeuralDataset], seed: int):
        from strfsolver import solver as _solvers

        self.spec, self.train, self.valid, self.test, self.seed = spec, train, valid, test, seed
        self.model_name = choose_model(stimulus_responses(train)) if spec.model == "auto" else spec.model
        self.batch_size = choose_batch_size(len(train)) if spec.batch_size == "auto" else spec.batch_size
        self.solver_name = resolve_solver(spec.solver, self.model_name)
        shapes = dict(n_freqs=train.n_freqs, n_neurons=train.n_neurons)
        if train.stim_ndim == 3:
            shapes["n_channels"] = train.n_channels
        model_options = dict(spec.model_options)
        model_options.setdefault("dt_ms", train.dt_ms)
        name = self.model_name

        def model_factory(model_seed: int) -> nn.Module:
            from strfsolver import models as _models

            return _models.init(name, **shapes, **model_options)

        self.model_factory = model_factory
        options = dict(spec.solver_options)
        options.setdefault("progress", bool(spec.progress))
        seeds = list(spec.seeds) if spec.seeds is not None else [seed]
        if len(seeds) > 1 or self.solver_name == "multi-seed":
            inner = resolve_solver(options.pop("solver", "population" if self.solver_name == "multi-seed" else self.solver_name), self.model_name)
            if inner == "ridge":
                options = _ridge_folds(options, len(train))
            self.solver = _solvers.init(
                "multi-seed", solver=inner, model_factory=model_factory, seeds=seeds,
                logdir=spec.logdir, criterion=spec.loss, device=spec.device, **options,
            )
        else:
            if self.solver_name == "ridge":
                options = _ridge_folds(options, len(train))
            with seeded(seeds[0]):
                model = model_factory(seeds[0])
            self.solver = _solvers.init(self.solver_name, model=model, criterion=spec.loss, device=spec.device, loggers=list(spec.loggers), **options)
        check_count(self.batch_size, "batch_size", 1)
        if spec.repeats == "summary" or (spec.repeats == "auto" and not self._reads_repeats()):
            # a dataset on disk is read per batch already: summarising it would load its PSTHs whole
            train, valid, test = (d if d is None or d.on_disk else d.summarised() for d in (train, valid, test))
            self.train, self.valid, self.test = train, valid, test
        self.train_loader = make_loader(train, batch_size=self.batch_size, shuffle=True, seed=seed, device=spec.device)
        self.valid_loader = None if valid is None else make_loader(valid, batch_size=self.batch_size, device=spec.device)
        self.test_loader = None if test is None else make_loader(test, batch_size=self.batch_size, device=spec.device)
        self._warn_about_the_data(model_factory, model_options)

    def _reads_repeats(self) -> bool:
        """Whether the solver (for several seeds: a probe of the solver each seed builds) reads each repeat."""
        from strfsolver import solver as _solvers
        from strfsolver.solver.repeat_readers import repeat_readers

        probe = self.solver
        if not hasattr(probe, "criterion_reads_repeats"):  # the multi-seed runner builds its solvers late, in its workers
            try:
                with seeded(probe.seeds_[0]):
                    probe = _solvers.init(probe.solver, model=probe.model_factory(probe.seeds_[0]), **probe.solver_kwargs)
            except (TypeError, ValueError, KeyError):
                return True  # bad options: keep the data as given; the error is raised, with its message, where the solvers are built
        return bool(repeat_readers(probe))

    def _warn_about_the_data(self, model_factory, model_options: Dict[str, Any]) -> None:
        """Say so when the data and the choices do not go together; each costs fit quality silently otherwise."""
        train, n_lags = self.train, model_options.get("n_lags")
        longest = max(train.lengths)
        if isinstance(n_lags, int) and n_lags > longest:
            warnings.warn(
                f"n_lags={n_lags} is longer than every training stimulus (at most {longest} bins): the lags beyond "
                f"{longest - 1} never see a stimulus bin and keep their initial values.", UserWarning, stacklevel=4,
            )
        if self.solver_name != "ridge" and len(train) > 1 and self.batch_size >= len(train):
            warnings.warn(
                f"batch_size={self.batch_size} holds all {len(train)} training stimuli: one gradient step per epoch. "
                f"Use batch_size='auto' ({choose_batch_size(len(train))} here) or a smaller one.", UserWarning, stacklevel=4,
            )
        if choose_model(stimulus_responses(train)) == "linear":
            with seeded(0):
                probe = model_factory(0)
            activation = getattr(getattr(probe, "readout", None), "activation", None)
            if getattr(activation, "non_negative", False):
                warnings.warn(
                    f"the responses go below zero, and model {short_repr(self.model_name)} only predicts values >= 0; use "
                    "model='linear' (or non_negative=False in the model options, or model='auto').", UserWarning, stacklevel=4,
                )

    @property
    def multi_seed(self) -> bool:
        """Whether several seeds are fitted."""
        return type(self.solver).__name__ == "MultiSeedSolver"

    def fit(self, **fit_kwargs: Any) -> "Experiment":
        """Train (``fit_kwargs`` go to the solver's ``fit``); returns the experiment."""
        from strfsolver.utils.seeding import seeded

        if self.multi_seed:
            self.solver.fit(self.train_loader, self.valid_loader, self.test_loader, **fit_kwargs)
            return self
        if self.spec.logdir is not None:
            fit_kwargs.setdefault("logdir", self.spec.logdir)
        # the batch order and any dropout draw from the experiment's seed, not the caller's streams
        with seeded(self.seed):
            self.solver.fit(self.train_loader, self.valid_loader, **fit_kwargs)
        return self

    @property
    def model(self) -> nn.Module:
        """The fitted model (the best seed's with several seeds)."""
        return self.solver.model

    @property
    def history(self):
        """The epoch dicts of the fit (the best seed's with several seeds)."""
        return self.solver.log

    @property
    def best_epoch(self) -> Optional[int]:
        if self.multi_seed:
            return self.solver.result_.best_run.final.get("best_epoch")
        return self.solver.best_epoch_

    def scores(self, split: str = "valid", metrics: Sequence[str] = SCORE_METRICS) -> Dict[str, np.ndarray]:
        """Per-neuron metrics of the fitted model on ``"train"``, ``"valid"`` or ``"test"``."""
        dataset = {"train": self.train, "valid": self.valid, "test": self.test}.get(split)
        if dataset is None:
            raise ValueError(f"the experiment has no {short_repr(split)} data; splits: train, valid, test (when given).")
        return evaluate(self.solver, dataset.stims, stimulus_responses(dataset, for_metrics=True), metrics, batch_size=self.batch_size)


def build_experiment(
    spec: Union[ExperimentSpec, Mapping[str, Any]],
    train: NeuralDataset,
    valid: Optional[NeuralDataset] = None,
    test: Optional[NeuralDataset] = None,
    *,
    seed: int = 0,
) -> Experiment:
    """The model, solver and loaders that ``spec`` describes, on these data.

    Args:
        spec: An :py:class:`ExperimentSpec` or a dict of its fields.
        train: Training stimuli and responses.
        valid: Validation data (early stopping, the best state), or ``None``.
        test: Test data (scored by a multi-seed fit), or ``None``.
        seed: Seed of the weights and the training shuffle of a single fit.

    Raises:
        ValueError: for an unknown key, model, solver or option (the
            registries' messages).
    """
    if not isinstance(spec, ExperimentSpec):
        spec = ExperimentSpec.from_mapping(spec)
    for name, dataset in (("train", train), ("valid", valid), ("test", test)):
        if dataset is not None and not isinstance(dataset, NeuralDataset):
            raise ValueError(f"{name} must be a strfsolver.data.NeuralDataset, got {type(dataset).__name__}.")
    check_device(spec.device, "spec.device")
    return Experiment(spec, train, valid, test, check_seed(seed, "seed"))


@torch.no_grad()
def evaluate(
    predictor: Any,
    stims: Sequence[torch.Tensor],
    responses: Sequence[Any],
    metrics: Sequence[str] = SCORE_METRICS,
    batch_size: int = 8,
) -> Dict[str, np.ndarray]:
    """Per-neuron metrics of a fitted solver's predictions, streamed stimulus by stimulus.

    Args:
        predictor: Anything with ``transform(list of stimuli) -> list of (N, 1, T)``
            (every solver).
        stims: ``(F, T_i)`` (or ``(C, F, T_i)``) stimuli.
        responses: ``(N, R_i, T_i)`` responses (tensors or arrays), NaN where missing.
        metrics: Names of :py:class:`~strfsolver.metrics.MetricAccumulator`.
        batch_size: Stimuli per forward pass.

    Returns:
        ``{metric: (N,) float64 array}``.
    """
    return score_predictions(predictor.transform(list(stims), batch_size=batch_size), responses, metrics)


@torch.no_grad()
def score_predictions(
    preds: Sequence[Any], responses: Sequence[Any], metrics: Sequence[str] = SCORE_METRICS
) -> Dict[str, np.ndarray]:
    """Per-neuron metrics of predictions against responses, stimulus by stimulus, as if concatenated.

    Args:
        preds: One ``(N, 1, T_i)`` or ``(N, T_i)`` prediction per stimulus (tensors or arrays).
        responses: The ``(N, R_i, T_i)`` responses, NaN where missing, or
            a summarised stimulus' :py:class:`~strfsolver.metrics.SummarisedResponses`.
        metrics: Names of :py:class:`~strfsolver.metrics.MetricAccumulator`.

    Returns:
        ``{metric: (N,) float64 array}``.
    """
    accumulator = MetricAccumulator(tuple(metrics))
    for pred, response in zip(preds, responses):
        pred = torch.as_tensor(np.asarray(pred.detach().cpu() if isinstance(pred, torch.Tensor) else pred))
        if pred.ndim == 2:
            pred = pred[:, None]
        if isinstance(response, SummarisedResponses):  # one stimulus of a summarised dataset
            accumulator.update(pred[None].to(response.psth.dtype), response)
            continue
        accumulator.update(pred[None], torch.tensor(np.asarray(response), dtype=pred.dtype)[None])
    return {name: values.cpu().numpy() for name, values in accumulator.compute().items()}
