"""The main job on the built-in synthetic data — what ``make demo`` runs.

synthesize -> validate -> train -> predict -> evaluate -> report, each step the same
CLI command a user would type, then the per-kind scores next to those of the same
network before training. Re-running reuses the generated data.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

import torch

import fmuia
from fmuia.cli.main import main as fmuia_command
from fmuia.config import load_config
from fmuia.evaluate import evaluate
from fmuia.evaluate.outputs import compare_summaries, format_comparison, write_evaluation
from fmuia.model.checkpoint import load_checkpoint, save_checkpoint
from fmuia.model.network import build_model


def _step(title: str, argv: list[str]) -> None:
    print(f"\n==> {title}\n    fmuia {' '.join(argv)}", flush=True)
    start = time.perf_counter()
    code = fmuia_command(argv)
    if code != 0:
        raise SystemExit(f"demo: step '{title}' failed (exit {code})")
    print(f"    ({time.perf_counter() - start:.0f} s)", flush=True)


def _untrained_checkpoint(run_dir: str, out_dir: str) -> str:
    """The run's network as it was before training: same config, pretrained encoder, fresh heads."""
    trained = load_checkpoint(os.path.join(run_dir, "best"))
    config = load_config(trained.checkpoint_meta["training_config"])
    torch.manual_seed(config.seed)
    model_config = trained.config.replace(pretrained=config.model.pretrained)
    untrained = build_model(model_config, trained.registry)
    return str(save_checkpoint(untrained, out_dir, training_config=config.to_dict()))


def _score_quietly(checkpoint: str, data_root: str, out_dir: str) -> None:
    """Predict and score through the Python API, without the CLI's tables."""
    pred_dir = os.path.join(out_dir, "predictions")
    fmuia.load(checkpoint).predict_dataset(data_root, pred_dir, progress=False)
    write_evaluation(evaluate(data_root, pred_dir), os.path.join(out_dir, "eval"))


def _read_summary(eval_dir: str) -> dict:
    with open(os.path.join(eval_dir, "results.json"), encoding="utf-8") as fh:
        return json.load(fh)


def _table(trained: dict, untrained: dict) -> str:
    labels = ("untrained", "trained")
    return format_comparison(compare_summaries(untrained, trained, labels), labels)


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fmuia.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo_out", help="folder for data, run, predictions, scores and report")
    parser.add_argument("--config", default="configs/demo_cpu.yaml", help="training recipe")
    parser.add_argument("--per-task", type=int, default=24, help="synthetic training images per task")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override passed to fmuia train (repeatable)")
    args = parser.parse_args(argv)

    out = os.path.abspath(args.out)
    data, run_dir = os.path.join(out, "data"), os.path.join(out, "run")
    pred, evaluation, report = (os.path.join(out, d) for d in ("predictions", "eval", "report"))
    baseline = os.path.join(out, "untrained")
    started = time.perf_counter()
    os.makedirs(out, exist_ok=True)

    if os.path.isfile(os.path.join(data, "test", "csv_files", "FUGC.csv")):
        print(f"==> reusing the synthetic data in {data}")
    else:
        _step("generate the synthetic dataset (27 tasks)",
              ["synth", data, "--per-task", str(args.per_task), "--seed", str(args.seed), "--overwrite"])
    _step("validate the training data", ["validate", os.path.join(data, "train"), "--require-labels"])

    # The demo owns these folders; a re-run starts them afresh.
    for folder in (run_dir, pred, evaluation, report, baseline):
        shutil.rmtree(folder, ignore_errors=True)
    train_argv = ["train", "--config", args.config, "--data", os.path.join(data, "train"),
                  "--val", os.path.join(data, "val"), "--out", run_dir]
    for item in args.overrides:
        train_argv += ["--set", item]
    _step("train", train_argv)
    _step("predict the test split", ["predict", "--checkpoint", os.path.join(run_dir, "best"),
                                     "--data", os.path.join(data, "test"), "--out", pred, "--no-progress"])
    _step("score the predictions", ["evaluate", "--data", os.path.join(data, "test"), "--pred", pred,
                                    "--out", evaluation])
    _step("write the HTML report", ["report", "--data", os.path.join(data, "test"), "--pred", pred,
                                    "--run", run_dir, "--eval", evaluation, "--out", report])

    print("\n==> the same network before training, for comparison", flush=True)
    ckpt = _untrained_checkpoint(run_dir, os.path.join(baseline, "checkpoint"))
    _score_quietly(ckpt, os.path.join(data, "test"), baseline)

    print("\n==> test-split scores (higher is better, except the distances HD and MRE in pixels)")
    print(_table(_read_summary(evaluation), _read_summary(os.path.join(baseline, "eval"))))
    print(f"\nDone in {time.perf_counter() - started:.0f} s. Everything is under {out}/:")
    print("  data/        synthetic train/val/test data roots (FM_UIA layout)")
    print("  run/         config.yaml, best/ and last/ checkpoints, metrics.csv, curves.png")
    print("  predictions/ the submission: Segmentation/... PNGs and three JSON files")
    print("  eval/        results.json, summary.txt, per_task.csv")
    print("  report/      index.html (open it in a browser) and one PNG per task")
    return 0


if __name__ == "__main__":
    sys.exit(run())
