"""Cross-validated model selection and comparison, split by stimulus.

- Splitters that never cut a stimulus: :py:class:`StimulusKFold`,
  :py:class:`LeaveOneStimulusOut` (also scikit-learn CV objects).
- :py:func:`cross_validate`: one model on every fold, with an optional
  nested search; per-neuron scores on the concatenated held-out predictions.
- :py:func:`compare`: several models on the same folds, paired per neuron:
  median differences with bootstrap intervals, Wilcoxon signed-rank tests,
  win counts (:py:class:`ComparisonResult`).
- :py:func:`compare_sessions`: a core shared by several recordings against per-session
  models, on the same folds of every session (:py:class:`SessionComparison`).
- :py:func:`wilcoxon_signed_rank`, :py:func:`bootstrap_median_ci`,
  :py:func:`paired_comparison`: the statistics on their own.
- Figures and a self-contained HTML report: :py:mod:`strfsolver.model_selection.figures`,
  :py:func:`write_report`.
"""

from strfsolver.model_selection.splitters import LeaveOneStimulusOut, StimulusKFold, check_cv
from strfsolver.model_selection.paired import bootstrap_median_ci, paired_comparison, wilcoxon_signed_rank
from strfsolver.model_selection.crossval import CVResult, cross_validate
from strfsolver.model_selection.comparison import ComparisonResult, compare
from strfsolver.model_selection.sessions import SessionComparison, compare_sessions

__all__ = [
    "StimulusKFold",
    "LeaveOneStimulusOut",
    "check_cv",
    "cross_validate",
    "CVResult",
    "compare",
    "ComparisonResult",
    "compare_sessions",
    "SessionComparison",
    "wilcoxon_signed_rank",
    "bootstrap_median_ci",
    "paired_comparison",
]
