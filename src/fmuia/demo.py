"""The main job on the built-in synthetic data — what ``make demo`` runs.

synthesize -> validate -> train -> predict -> evaluate -> report, each step the same
CLI command a user would type: the improved recipe (configs/fmuia_plus.yaml) and, beside
it at the same budget, the reproduction of the official code
(configs/fmuia2026_official.yaml), both under the CPU budget overlay
(configs/demo_cpu.yaml: network size and epochs, the one place to change the demo's
length). Then one table of the per-kind test scores: the network before training, the
official recipe and the improved one. Re-running reuses the generated data.

The official run applies the fix "seeded augmentation" (configs/changes/fixes.yaml)
through a one-line recipe in the output folder that extends the official one: the
official code's unseeded augmentation would make the demo's numbers change from run to
run.
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


LABELS = ("untrained", "official", "improved")
# The official code draws its augmentation unseeded; seeded here so the demo repeats exactly.
OFFICIAL_SEEDED = "seeded augmentation"


def _seeded_official(official: str, folder: str) -> str:
    """A recipe file in ``folder`` that extends ``official`` and applies the change
    ``OFFICIAL_SEEDED``; its path."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "recipe.yaml")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("# The official recipe, its augmentation seeded so that the demo repeats exactly.\n"
                 f"extends: {json.dumps(os.path.abspath(official))}\nchanges: [{OFFICIAL_SEEDED}]\n")
    return path


def _table(untrained: dict, official: dict, improved: dict) -> str:
    return format_comparison(compare_summaries(untrained, official, improved, labels=LABELS), LABELS)


def _train_argv(recipe: str, budget: str, data: str, run_dir: str, overrides: list[str]) -> list[str]:
    argv = ["train", "--config", recipe, "--config", budget, "--data", os.path.join(data, "train"),
            "--val", os.path.join(data, "val"), "--out", run_dir]
    for item in overrides:
        argv += ["--set", item]
    return argv


def _predict_and_score(name: str, run_dir: str, data: str, pred: str, evaluation: str) -> None:
    _step(f"predict the test split ({name})", ["predict", "--checkpoint", os.path.join(run_dir, "best"),
                                               "--data", os.path.join(data, "test"), "--out", pred, "--no-progress"])
    _step(f"score the predictions ({name})", ["evaluate", "--data", os.path.join(data, "test"), "--pred", pred,
                                              "--out", evaluation])


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fmuia.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo_out", help="folder for data, runs, predictions, scores and report")
    parser.add_argument("--recipe", default="configs/fmuia_plus.yaml", help="the improved recipe")
    parser.add_argument("--official", default="configs/fmuia2026_official.yaml",
                        help="the official code's recipe, trained beside it at the same budget")
    parser.add_argument("--budget", default="configs/demo_cpu.yaml",
                        help="overlay merged over both recipes: network size, epochs, batch")
    parser.add_argument("--per-task", type=int, default=20, help="synthetic training images per task")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override passed to both trainings (repeatable)")
    args = parser.parse_args(argv)

    out = os.path.abspath(args.out)
    data, run_dir = os.path.join(out, "data"), os.path.join(out, "run")
    pred, evaluation, report = (os.path.join(out, d) for d in ("predictions", "eval", "report"))
    official = os.path.join(out, "official")
    official_run, official_pred, official_eval = (os.path.join(official, d) for d in ("run", "predictions", "eval"))
    untrained = os.path.join(out, "untrained")
    started = time.perf_counter()
    os.makedirs(out, exist_ok=True)

    if os.path.isfile(os.path.join(data, "test", "csv_files", "FUGC.csv")):
        print(f"==> reusing the synthetic data in {data}")
    else:
        _step("generate the synthetic dataset (27 tasks)",
              ["synth", data, "--per-task", str(args.per_task), "--seed", str(args.seed), "--overwrite"])
    _step("validate the training data", ["validate", os.path.join(data, "train"), "--require-labels"])

    # The demo owns these folders; a re-run starts them afresh.
    for folder in (run_dir, pred, evaluation, report, official, untrained):
        shutil.rmtree(folder, ignore_errors=True)
    _step("train the improved recipe", _train_argv(args.recipe, args.budget, data, run_dir, args.overrides))
    print(f"\n    The official recipe below runs with the fix {OFFICIAL_SEEDED!r}: the official code's unseeded\n"
          "    augmentation would make the demo's numbers change from run to run.", flush=True)
    _step("train the official recipe, same budget",
          _train_argv(_seeded_official(args.official, official), args.budget, data, official_run, args.overrides))
    _predict_and_score("improved", run_dir, data, pred, evaluation)
    _predict_and_score("official", official_run, data, official_pred, official_eval)
    _step("write the HTML report (improved)", ["report", "--data", os.path.join(data, "test"), "--pred", pred,
                                               "--run", run_dir, "--eval", evaluation, "--out", report])

    print("\n==> the improved network before training, for comparison", flush=True)
    ckpt = _untrained_checkpoint(run_dir, os.path.join(untrained, "checkpoint"))
    _score_quietly(ckpt, os.path.join(data, "test"), untrained)

    print("\n==> test-split scores (higher is better, except the distances HD and MRE in pixels)")
    print(_table(_read_summary(os.path.join(untrained, "eval")), _read_summary(official_eval),
                 _read_summary(evaluation)))
    print(f"\nDone in {time.perf_counter() - started:.0f} s. Everything is under {out}/:")
    print("  data/        synthetic train/val/test data roots (FM_UIA layout)")
    print("  run/         the improved recipe: config.yaml, best/ and last/ checkpoints, metrics.csv, curves.png")
    print("  predictions/ its submission: Segmentation/... PNGs and three JSON files")
    print("  eval/        its scores: results.json, summary.txt, per_task.csv")
    print("  report/      index.html (open it in a browser) and one PNG per task")
    print("  official/    the official recipe's recipe.yaml (seeded), run/, predictions/ and eval/")
    print("  untrained/   the improved network before training, scored")
    return 0


if __name__ == "__main__":
    sys.exit(run())
