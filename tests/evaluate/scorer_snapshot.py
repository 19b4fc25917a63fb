"""The result files ``fmuia evaluate`` writes for a fixed synthetic split and a perturbed
submission, as SHA-256 digests: ``tests/snapshots/evaluate_synth.json`` holds those of the
scorer before its speed work, and every later scorer must write the same bytes.

Regenerate only for a change that is meant to move the numbers (and say so in its commit):

    PYTHONPATH=src python tests/evaluate/scorer_snapshot.py --update
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
from pathlib import Path

SNAPSHOT = Path(__file__).resolve().parents[1] / "snapshots" / "evaluate_synth.json"
# Multi-class and two-class masks, every other kind, one task with 8 classes.
TASKS = ["cardiac_multi", "fetal_abdomen_multi", "cervix_multi", "fetal_head", "breast_3cls", "fetal_head_pos_cls",
         "thyroid_nodule_det", "IUGC"]
RESULT_FILES = ("results.json", "summary.txt", "per_task.csv", "per_sample.csv", "missing.csv", "extra.csv")


def score_synthetic_split(folder: str, workers: int) -> dict[str, str]:
    """Write the split and the submission under ``folder`` (reused when there), score it
    with relative paths (the data root's path is in results.json) and digest the files."""
    from fmuia.evaluate.outputs import write_evaluation
    from fmuia.evaluate.scorer import evaluate
    from fmuia.evaluate.truth_submission import write_truth_submission
    from fmuia.synthetic import generate

    here = os.getcwd()
    os.chdir(folder)
    try:
        if not os.path.isdir("synth"):
            generate("synth", seed=3, splits={"train": 1, "test": 6}, tasks=TASKS, workers=1)
            write_truth_submission("synth/test", "pred", noise=0.4, drop=0.1, seed=1)
        out = f"eval{workers}"
        write_evaluation(evaluate("synth/test", "pred", workers=workers), out)
        return {name: hashlib.sha256(Path(out, name).read_bytes()).hexdigest() for name in RESULT_FILES}
    finally:
        os.chdir(here)


if __name__ == "__main__":
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--update", action="store_true", help="rewrite the snapshot from the fmuia on PYTHONPATH")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        digests = score_synthetic_split(tmp, workers=2)
    print(json.dumps(digests, indent=1))
    if args.update:
        SNAPSHOT.write_text(json.dumps(digests, indent=1) + "\n")
