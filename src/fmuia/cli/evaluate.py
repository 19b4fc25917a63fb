"""``fmuia evaluate``: score a prediction folder exactly as the challenge does."""
from __future__ import annotations

import argparse
import os

COMMAND = "evaluate"
HELP = "score predictions against a labelled data root (challenge metrics)"
DESCRIPTION = (
    "Score a prediction folder (the submission layout) against a labelled data root with the "
    "challenge's metrics. Writes results.json, summary.txt, per_task.csv, per_sample.csv, "
    "missing.csv and extra.csv into --out, and prints the summary."
)
ORDER = 50
PARTIAL_HELP = ("score what is readable when ground-truth CSVs or rows cannot be read (each is then a warning, and "
                "the headline says how many tasks the score covers); default: an error, nothing scored")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, metavar="DATA_ROOT", help="labelled data root (csv_files/ + images)")
    parser.add_argument("--pred", required=True, metavar="PRED_DIR", help="prediction folder written by 'fmuia predict'")
    parser.add_argument("--out", required=True, metavar="EVAL_DIR", help="folder for the result files (created)")
    parser.add_argument("--workers", type=int, default=2, help="processes scoring segmentation masks (default 2; 1 = none)")
    parser.add_argument("--partial", action="store_true", help=PARTIAL_HELP)


def run(args: argparse.Namespace) -> int:
    from fmuia.errors import FmuiaError
    from fmuia.evaluate.outputs import format_summary, write_evaluation
    from fmuia.evaluate.scorer import evaluate
    from fmuia.io.lock import claim_output

    if args.workers < 1:
        raise FmuiaError(f"--workers must be at least 1, got {args.workers}")
    if os.path.abspath(args.out) == os.path.abspath(args.pred):
        raise FmuiaError("--out must not be the prediction folder (its files would count as extra predictions)")
    with claim_output(args.out, "evaluate"):  # checked before scoring, which can take minutes
        evaluation = evaluate(args.data, args.pred, workers=args.workers, partial=args.partial)
        write_evaluation(evaluation, args.out)
    print(format_summary(evaluation), end="")
    print(f"results written to {args.out}")
    return 0
