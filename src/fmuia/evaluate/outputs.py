"""Writing an ``Evaluation`` to a folder: results.json, summary.txt, per_task.csv,
per_sample.csv, missing.csv and extra.csv, each written atomically."""
from __future__ import annotations

import csv
import io
import json
import os
from typing import Any, Mapping, Sequence

from fmuia.io.atomic import write_text
from fmuia.io.outputs import writing
from fmuia.errors import DataError
from fmuia import kinds
from fmuia.kinds import kind_metrics
from fmuia.metrics.results import CHALLENGE_SCORE_DEFINITION
from fmuia.evaluate.scorer import Evaluation

__all__ = ["compare_summaries", "format_comparison", "format_summary", "read_results", "write_evaluation"]

RESULTS_JSON = "results.json"
SUMMARY_TXT = "summary.txt"
PER_TASK_CSV = "per_task.csv"
PER_SAMPLE_CSV = "per_sample.csv"
MISSING_CSV = "missing.csv"
EXTRA_CSV = "extra.csv"

PER_TASK_COLUMNS = (
    "task_id", "kind", "n", "rows", "labelled", "scored", "missing", "extra", "score",
    "DSC", "HD", "HD_norm", "Accuracy", "AUC", "F1_macro", "F1_weighted", "MCC", "IoU", "MRE", "MRE_norm",
)
PER_SAMPLE_COLUMNS = ("task_id", "kind", "image_path", "score", "DSC", "HD", "true", "pred", "IoU", "MRE")
# How the summary prints each metric.
METRIC_LABELS = {
    "DSC": "DSC", "HD": "HD", "Accuracy": "Accuracy", "AUC": "AUC", "F1_macro": "F1 macro",
    "F1_weighted": "F1 weighted", "MCC": "MCC", "IoU": "IoU", "MRE": "MRE",
}


def _fmt(value) -> str:
    if value is None:
        return "undefined"
    return f"{value:.4f}"


def _csv_text(columns, rows) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buf.getvalue()


def format_summary(ev: Evaluation) -> str:
    """The human-readable summary: challenge score, then per kind the averages and one
    line per task."""
    s = ev.summary
    lines = [
        f"Challenge score: {_fmt(s.challenge_score)}  (over {s.tasks_scored} of {ev.tasks_total} tasks)",
        f"  = {CHALLENGE_SCORE_DEFINITION}",
    ]
    for kind, names in kind_metrics().items():
        tasks = [r for r in ev.tasks if r.kind is kind]
        if not tasks:
            continue
        lines.append("")
        lines.append(f"[{kind.value}] {s.tasks_per_kind.get(kind.value, 0)} of {len(tasks)} tasks scored")
        means = s.per_kind.get(kind.value, {})
        lines.append("  average  " + "  ".join(f"{METRIC_LABELS.get(m, m)}={_fmt(means.get(m))}" for m in names))
        width = max(len(r.task_id) for r in tasks)
        for r in tasks:
            c = ev.counts[r.task_id]
            metrics = "  ".join(f"{METRIC_LABELS.get(m, m)}={_fmt(r.metrics.get(m))}" for m in names)
            lines.append(
                f"  {r.task_id:<{width}}  {metrics}  score={_fmt(r.score)}  samples={c['scored']}"
                + (f"  missing={c['missing']}" if c["missing"] else "")
            )
    lines.append("")
    lines.append(f"Missing predictions: {len(ev.missing)}   Extra predictions: {len(ev.extra)}")
    if ev.warnings:
        lines.append("")
        lines.append("Warnings:")
        lines.extend(f"  {w}" for w in ev.warnings)
    return "\n".join(lines) + "\n"


def results_dict(ev: Evaluation) -> dict:
    return {
        "data_root": ev.data_root,
        "pred_dir": ev.pred_dir,
        **ev.summary.to_dict(),
        "tasks_total": ev.tasks_total,
        "tasks": {r.task_id: {**r.to_dict(), "counts": ev.counts[r.task_id]} for r in ev.tasks},
        "missing": len(ev.missing),
        "extra": len(ev.extra),
        "warnings": list(ev.warnings),
        "registry": ev.registry.to_list(),
    }


def write_evaluation(ev: Evaluation, out_dir: str) -> dict[str, str]:
    """Write every output file into ``out_dir`` (created). Returns name -> path."""
    with writing(out_dir, "create the output folder"):
        os.makedirs(out_dir, exist_ok=True)
    per_task = []
    for r in ev.tasks:
        row = {"task_id": r.task_id, "kind": r.kind.value, "n": r.n, "score": r.score, **ev.counts[r.task_id], **r.metrics}
        per_task.append(row)
    files = {
        RESULTS_JSON: json.dumps(results_dict(ev), indent=2, allow_nan=False) + "\n",
        SUMMARY_TXT: format_summary(ev),
        PER_TASK_CSV: _csv_text(PER_TASK_COLUMNS, per_task),
        PER_SAMPLE_CSV: _csv_text(PER_SAMPLE_COLUMNS, ev.samples),
        MISSING_CSV: _csv_text(("task_id", "kind", "image_path", "expected_in"), (m.to_dict() for m in ev.missing)),
        EXTRA_CSV: _csv_text(("source", "index", "task_id", "image_path", "reason"), (x.to_dict() for x in ev.extra)),
    }
    paths = {}
    for name, text in files.items():
        path = os.path.join(out_dir, name)
        write_text(path, text)
        paths[name] = path
    return paths


def read_results(eval_dir: str) -> dict:
    """The results.json of an earlier ``fmuia evaluate``."""
    path = os.path.join(eval_dir, RESULTS_JSON)
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise DataError(f"{path}: not found (run 'fmuia evaluate' first)") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None



def compare_summaries(*summaries: Mapping[str, Any], labels: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Two or more results.json documents side by side: one row per registered kind and
    summary metric, then the challenge score. Each row holds the values under ``labels``
    (default "before", "after" for two documents), ``deltas`` and ``betters``: each
    column against the one before it (judged by the kind: distances improve downwards),
    and ``delta``/``better``, the last of these; None where either value is missing."""
    if labels is None:
        labels = ("before", "after") if len(summaries) == 2 else tuple(f"run {i + 1}" for i in range(len(summaries)))
    labels = tuple(labels)
    if len(summaries) < 2 or len(labels) != len(summaries):
        raise ValueError(f"compare_summaries: expected two or more summaries and one label each, "
                         f"got {len(summaries)} summaries and labels {labels!r}")
    rows: list[dict[str, Any]] = []

    def row(kind: str, metric: str, values: list[float | None], improves) -> None:
        steps = list(zip(values, values[1:]))
        deltas = [None if a is None or b is None else b - a for a, b in steps]
        betters = [None if d is None else bool(improves(a, b)) for d, (a, b) in zip(deltas, steps)]
        rows.append({"kind": kind, "metric": metric, **dict(zip(labels, values)), "deltas": deltas, "betters": betters,
                     "delta": deltas[-1], "better": betters[-1]})

    for kind in kinds.all_kinds():
        for metric in kind.metric_names:
            row(kind.name, metric, [_per_kind_value(s, kind.name, metric) for s in summaries],
                lambda a, b, kind=kind, metric=metric: kind.improves(metric, a, b))
    row("all", "challenge score", [s.get("challenge_score") for s in summaries], lambda a, b: b > a)
    return rows


def _per_kind_value(results: Mapping[str, Any], kind: str, metric: str) -> float | None:
    return (results.get("per_kind", {}).get(kind) or {}).get(metric)


def format_comparison(rows: Sequence[Mapping[str, Any]], labels: Sequence[str] = ("before", "after")) -> str:
    """``compare_summaries`` rows as a Markdown table (readable as plain text too): the
    values, then each column's delta against the one before it (one "delta" column for
    two labels, "B - A" columns for more)."""
    labels = tuple(labels)
    pairs = list(zip(labels, labels[1:]))
    delta_heads = ("delta",) if len(labels) == 2 else tuple(f"{b} - {a}" for a, b in pairs)
    lines = ["| kind | metric | " + " | ".join(labels + delta_heads) + " |",
             "|---|---|" + "---:|" * (len(labels) + len(delta_heads))]
    for r in rows:
        cells = [_fmt(r[label]) for label in labels]
        for delta, better in zip(r["deltas"], r["betters"]):
            mark = "" if better is None else (" (better)" if better else " (worse)")
            cells.append("-" if delta is None else f"{delta:+.4f}{mark}")
        lines.append(f"| {r['kind']} | {r['metric']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
