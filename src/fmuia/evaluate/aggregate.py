"""Summaries over the registered task kinds.

The arithmetic (task results, per-kind means, the challenge score) is
``fmuia.metrics.results``, below the kinds so that they can build results; this module
sits above them and supplies the registered kinds' metric names.
"""
from __future__ import annotations

from fmuia import kinds
from fmuia.metrics import results as _results
from fmuia.metrics.results import CHALLENGE_SCORE_DEFINITION, Summary, TaskResult, empty_result

__all__ = ["CHALLENGE_SCORE_DEFINITION", "Summary", "TaskResult", "empty_result", "summarise"]


def summarise(results: list[TaskResult]) -> Summary:
    """Per registered kind, in registration order: each metric averaged over the kind's
    tasks that have samples; then the challenge score (see ``fmuia.metrics.results``)."""
    return _results.summarise(results, kinds.kind_metrics())
