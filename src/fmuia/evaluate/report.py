"""The visual report: one self-contained HTML page (images embedded as base64 JPEG)
plus one PNG per task, showing where a model fails.

The page holds the metric table per task (coloured by task score), for each task
its worst samples with ground truth and prediction overlaid (mask contours, boxes
with IoU, points with their error, class probabilities as bars), and the training
curves of a run folder's ``metrics.csv`` when one is given.
"""
from __future__ import annotations

import base64
import csv
import html
import io
import logging
import os

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fmuia import kinds  # noqa: E402
from fmuia.io.images import read_image  # noqa: E402
from fmuia.data.layout import read_layout  # noqa: E402
from fmuia.data.records import Entry  # noqa: E402
from fmuia.errors import DataError  # noqa: E402
from fmuia.kinds import kind_metrics  # noqa: E402
from fmuia.metrics.results import CHALLENGE_SCORE_DEFINITION  # noqa: E402
from fmuia.io.atomic import write_bytes, write_text  # noqa: E402
from fmuia.io.lock import claim_output  # noqa: E402
from fmuia.io.outputs import writing  # noqa: E402
from fmuia.evaluate.curves import curves_png, read_metrics_csv  # noqa: E402
from fmuia.evaluate.outputs import PER_SAMPLE_CSV, read_results, results_dict  # noqa: E402
from fmuia.evaluate.predictions import json_kinds, read_prediction_file  # noqa: E402
from fmuia.evaluate.scorer import evaluate  # noqa: E402

__all__ = ["build_report", "plot_training_curves"]

log = logging.getLogger(__name__)

# Sample panels are drawn by each task's kind (TaskKind.draw_prediction, fmuia.kinds.drawing).
TABLE_METRICS = tuple(name for names in kind_metrics().values() for name in names)
# Metrics where lower is better (coloured inversely) have no fixed range: they are
# coloured through the task score instead.


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _prediction(owner, task, entry: Entry, truth, pred_dir: str, predictions: dict):
    """The sample's prediction as scored: read from its file, or from its kind's JSON."""
    if owner.prediction_file is None:
        value, _ = owner.read_prediction(os.path.join(pred_dir, owner.prediction_path(entry)), truth)
        return value
    return predictions[owner.name].get(task.task_id, entry.image_path)


def _task_figure(task, records: list[dict], entries: dict, pred_dir: str, predictions: dict) -> bytes | None:
    cols = len(records)
    if cols == 0:
        return None
    owner = kinds.kind_of(task)
    fig, axes = plt.subplots(1, cols, figsize=(3.2 * cols, owner.report_panel_height), squeeze=False)
    for ax, record in zip(axes[0], records):
        entry = entries[(task.task_id, record["image_path"])]
        truth = owner.truth(entry)
        value = _prediction(owner, task, entry, truth, pred_dir, predictions)
        owner.draw_prediction(ax, read_image(entry.image_file), truth, value, record)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(os.path.basename(entry.image_path), fontsize=7)
    fig.suptitle(f"{task.task_id}: worst {cols} (green truth, magenta prediction)", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def plot_training_curves(metrics_csv: str) -> bytes | None:
    """The training curves of a run's metrics.csv (``fmuia.evaluate.curves``); None when
    the file cannot be read or nothing in it is plottable."""
    rows = read_metrics_csv(metrics_csv)
    return curves_png(rows) if rows else None


def _cell(value, score_like: bool = False) -> str:
    if value is None or value == "":
        return "<td class='na'>undefined</td>"
    value = float(value)
    style = f" style='background:{_colour(value)}'" if score_like else ""
    return f"<td{style}>{value:.4f}</td>"


def _colour(score: float) -> str:
    """Red (0) to green (1)."""
    score = min(max(score, 0.0), 1.0)
    return f"hsl({round(120 * score)}, 65%, 80%)"


def _img_tag(png: bytes, alt: str) -> str:
    """An embedded image: JPEG (a fraction of the PNG's size for ultrasound texture)."""
    pixels = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    ok, jpeg = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 85])
    data, mime = (jpeg.tobytes(), "jpeg") if ok else (png, "png")
    return f"<img alt='{html.escape(alt)}' src='data:image/{mime};base64,{base64.b64encode(data).decode()}'>"


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>fmuia report</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; font-size: 13px; }}
th, td {{ border: 1px solid #ccc; padding: 3px 7px; text-align: right; }}
th {{ background: #f0f0f0; }} td.name {{ text-align: left; }} td.na {{ color: #999; }}
img {{ max-width: 100%; }} .note {{ color: #666; font-size: 13px; }}
</style></head><body>
<h1>fmuia evaluation report</h1>
<p>Data <code>{data}</code>, predictions <code>{pred}</code>.</p>
<h2>Challenge score: {score}</h2>
<p class="note">{definition}. Missing predictions: {missing}; extra predictions: {extra}.</p>
{kinds}
<h2>Per task</h2>
<p class="note">Rows coloured by task score, red 0 to green 1.</p>
{table}
{curves}
<h2>Worst samples per task</h2>
{samples}
<script>
window.addEventListener("load", function () {{
  for (const img of document.images) {{
    if (!img.complete || img.naturalWidth === 0) {{ console.error("image failed to load: " + img.alt); }}
  }}
}});
</script>
</body></html>
"""


def _load_results(data_root: str, pred_dir: str, eval_dir: str | None, workers: int,
                  partial: bool = False) -> tuple[dict, list[dict]]:
    if eval_dir:
        results = read_results(eval_dir)
        path = os.path.join(eval_dir, PER_SAMPLE_CSV)
        if not os.path.isfile(path):
            raise DataError(f"{path}: not found (run 'fmuia evaluate' again)")
        with open(path, newline="", encoding="utf-8") as fh:
            samples = list(csv.DictReader(fh))
        return results, samples
    ev = evaluate(data_root, pred_dir, workers=workers, partial=partial)
    return results_dict(ev), ev.samples


def build_report(data_root: str, pred_dir: str, out_dir: str, run_dir: str | None = None,
                 eval_dir: str | None = None, per_task: int = 4, workers: int = 2, partial: bool = False) -> str:
    """Write ``index.html`` and ``tasks/<task_id>.png`` into ``out_dir``; return the page's path.

    ``eval_dir`` reuses an earlier ``fmuia evaluate`` output (otherwise the scorer runs);
    ``run_dir`` adds the training curves of its ``metrics.csv``; ``partial`` scores a
    ground truth with problems (see ``evaluate``). ``out_dir`` is checked and locked
    before the scoring starts.
    """
    with claim_output(out_dir, "report"):
        return _build_report(data_root, pred_dir, out_dir, run_dir, eval_dir, per_task, workers, partial)


def _build_report(data_root: str, pred_dir: str, out_dir: str, run_dir: str | None, eval_dir: str | None,
                  per_task: int, workers: int, partial: bool) -> str:
    results, samples = _load_results(data_root, pred_dir, eval_dir, workers, partial)
    layout = read_layout(data_root)
    entries = {(e.task_id, e.image_path): e for e in layout.entries}
    keys = {k for k, e in entries.items() if e.labelled}
    predictions = {k.name: read_prediction_file(pred_dir, k.kind, layout.registry, keys) for k in json_kinds()}
    with writing(out_dir, "create the report folder"):
        os.makedirs(os.path.join(out_dir, "tasks"), exist_ok=True)

    by_task: dict[str, list[dict]] = {}
    for record in samples:
        by_task.setdefault(record["task_id"], []).append(record)

    rows, sections = [], []
    for task in layout.registry:
        info = results["tasks"].get(task.task_id)
        if info is None:
            continue
        counts, metrics = info["counts"], info["metrics"]
        rows.append(
            f"<tr style='background:{_colour(info['score']) if info['score'] is not None else '#fff'}'>"
            f"<td class='name'>{html.escape(task.task_id)}</td><td class='name'>{task.kind.value}</td>"
            f"<td>{counts['scored']}</td><td>{counts['missing']}</td>{_cell(info['score'])}"
            + "".join(_cell(metrics.get(m)) if m in metrics else "<td></td>" for m in TABLE_METRICS)
            + "</tr>"
        )
        worst = sorted(by_task.get(task.task_id, []), key=lambda r: float(r["score"]))[:per_task]
        png = _task_figure(task, worst, entries, pred_dir, predictions)
        if png is None:
            sections.append(f"<h3>{html.escape(task.task_id)}</h3><p class='note'>no scored samples</p>")
            continue
        write_bytes(os.path.join(out_dir, "tasks", f"{task.task_id}.png"), png)
        notes = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in info.get("notes", []))
        sections.append(f"<h3>{html.escape(task.task_id)}</h3>{notes}{_img_tag(png, task.task_id)}")

    header = "".join(f"<th>{h}</th>" for h in ("task", "kind", "scored", "missing", "score", *TABLE_METRICS))
    table = f"<table><tr>{header}</tr>{''.join(rows)}</table>"

    kind_rows = []
    for kind, names in kind_metrics().items():
        means = results["per_kind"].get(kind.value)
        if means:
            kind_rows.append(f"<tr><td class='name'>{kind.value}</td><td>{results['tasks_per_kind'][kind.value]}</td>"
                         + "".join(f"<td>{html.escape(m)} {'undefined' if means[m] is None else f'{means[m]:.4f}'}</td>" for m in names) + "</tr>")
    kinds_html = f"<table><tr><th>kind</th><th>tasks</th><th colspan='5'>averages</th></tr>{''.join(kind_rows)}</table>"

    curves = ""
    if run_dir:
        metrics_csv = os.path.join(run_dir, "metrics.csv")
        png = plot_training_curves(metrics_csv) if os.path.isfile(metrics_csv) else None
        if png:
            write_bytes(os.path.join(out_dir, "training_curves.png"), png)
            curves = "<h2>Training curves</h2>" + _img_tag(png, "training curves")
        else:
            curves = f"<h2>Training curves</h2><p class='note'>{html.escape(metrics_csv)}: no numeric columns to plot</p>"

    score = results.get("challenge_score")
    total = results.get("tasks_total")  # absent from the results of older versions
    covered = f"over {results.get('tasks_scored', 0)} of {total} tasks" if total else f"{results.get('tasks_scored', 0)} tasks"
    page = PAGE.format(
        data=html.escape(data_root), pred=html.escape(pred_dir),
        score=("undefined" if score is None else f"{score:.4f}") + f" ({covered})",
        definition=html.escape(CHALLENGE_SCORE_DEFINITION[0].upper() + CHALLENGE_SCORE_DEFINITION[1:]),
        missing=results.get("missing", 0), extra=results.get("extra", 0),
        kinds=kinds_html, table=table, curves=curves, samples="\n".join(sections),
    )
    path = os.path.join(out_dir, "index.html")
    write_text(path, page)
    return path
