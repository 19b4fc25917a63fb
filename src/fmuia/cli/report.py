"""``fmuia report``: a self-contained HTML page showing where a model fails."""
from __future__ import annotations

import argparse

from fmuia.cli.evaluate import PARTIAL_HELP

COMMAND = "report"
HELP = "write an HTML report: metric table, worst samples overlaid, training curves"
DESCRIPTION = (
    "Write REPORT_DIR/index.html (self-contained: images embedded) and REPORT_DIR/tasks/<task>.png: "
    "the metric table per task, each task's worst samples with ground truth and prediction overlaid, "
    "and the training curves of RUN_DIR/metrics.csv when --run is given."
)
ORDER = 55


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, metavar="DATA_ROOT", help="labelled data root")
    parser.add_argument("--pred", required=True, metavar="PRED_DIR", help="prediction folder")
    parser.add_argument("--out", required=True, metavar="REPORT_DIR", help="folder for the report (created)")
    parser.add_argument("--run", metavar="RUN_DIR", help="training run folder whose metrics.csv is plotted")
    parser.add_argument("--eval", metavar="EVAL_DIR", help="reuse the output of 'fmuia evaluate' instead of scoring again")
    parser.add_argument("--per-task", type=int, default=4, metavar="K", help="worst samples shown per task (default 4)")
    parser.add_argument("--workers", type=int, default=2, help="processes scoring segmentation masks (default 2)")
    parser.add_argument("--partial", action="store_true", help=PARTIAL_HELP + " (without --eval)")


def run(args: argparse.Namespace) -> int:
    from fmuia.errors import FmuiaError
    from fmuia.evaluate.report import build_report

    if args.per_task < 1:
        raise FmuiaError(f"--per-task must be at least 1, got {args.per_task}")
    if args.workers < 1:
        raise FmuiaError(f"--workers must be at least 1, got {args.workers}")
    path = build_report(args.data, args.pred, args.out, run_dir=args.run, eval_dir=args.eval,
                        per_task=args.per_task, workers=args.workers, partial=args.partial)
    print(f"report written to {path}")
    return 0
