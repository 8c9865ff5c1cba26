"""Who reads every repeat, and the one check that keeps summarised data away from them.

A summarised dataset (``NeuralDataset(..., repeats="summary")``) serves each
stimulus' PSTH as ``batch["responses"]``, with the statistics the built-in
metrics need beside it (:py:func:`strfsolver.data.metric_responses`). Code
that reads each repeat would see one repeat and silently estimate no noise
ceiling, so it declares itself and is refused such data here, before any work:

- a solver whose hooks read the repeats (``reads_repeats = True``);
- a criterion that does (:py:attr:`Solver.criterion_reads_repeats`: any but the
  built-in losses, unless it sets ``reads_repeats = False``);
- custom validation metrics (``metrics={"name": callable}``), which see the
  responses of the whole set.

The estimator and the CLI summarise the data when :py:func:`repeat_readers`
names nobody.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

from strfsolver.solver.data_checks import served_dataset

__all__ = ["repeat_readers", "check_repeats_available", "refuse_summary_to_readers"]


def repeat_readers(solver: Any) -> List[str]:
    """What in ``solver`` reads every repeat of a batch, each named for a message; empty when nothing does."""
    readers = []
    if getattr(solver, "reads_repeats", False):
        readers.append(f"the solver's hooks ({type(solver).__name__}.reads_repeats is True)")
    if solver.criterion_reads_repeats:
        name = solver.criterion if isinstance(solver.criterion, str) else type(solver.criterion).__name__
        readers.append(f"the criterion {name!r} (not a built-in loss, and it does not set reads_repeats = False)")
    if solver.metric_functions:
        readers.append(f"the custom metrics {sorted(solver.metric_functions)}")
    return readers


def _summarised(loader: Any) -> bool:
    """Whether a loader (or a mapping of loaders, or batches interleaving several) serves a summarised dataset."""
    loaders = getattr(loader, "loaders", loader)  # SessionBatches interleaves {session: loader}
    if isinstance(loaders, Mapping):
        return any(_summarised(each) for each in loaders.values())
    return getattr(served_dataset(loader), "repeats", "all") == "summary"


def _refusal(what: str, readers: List[str]) -> ValueError:
    return ValueError(
        f"the {what} keep only a summary of the repeats (repeats='summary'), but {'; '.join(readers)} read every "
        "repeat and would see one PSTH instead. Build the datasets with repeats='all', or use built-in losses and "
        "metrics only."
    )


def refuse_summary_to_readers(solver: Any, batch: Dict[str, Any]) -> Dict[str, Any]:
    """``batch`` as it is, unless it is summarised (it carries ``"repeat_stats"``) and something in
    ``solver`` reads every repeat: the per-batch form of :py:func:`check_repeats_available`, which
    :py:meth:`Solver.prepare` applies to every batch, so that no loader wrapping can slip one through.

    Raises:
        ValueError: naming the readers.
    """
    if isinstance(batch, Mapping) and "repeat_stats" in batch:
        readers = repeat_readers(solver)
        if readers:
            raise _refusal("batch's responses", readers)
    return batch


def check_repeats_available(solver: Any, loader: Any, valid_loader: Optional[Any] = None, test_loader: Optional[Any] = None) -> None:
    """Refuse loaders of summarised datasets when anything in ``solver`` reads every repeat.

    Raises:
        ValueError: naming the loaders and the readers.
    """
    loaders = {"training": loader, "validation": valid_loader, "test": test_loader}
    summarised = [name for name, value in loaders.items() if value is not None and _summarised(value)]
    if not summarised:
        return
    readers = repeat_readers(solver)
    if readers:
        raise _refusal(f"{' and '.join(summarised)} data", readers)
