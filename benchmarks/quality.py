"""Quality of the three recipes at equal budget: the official code's reproduction, the
baseline (its defects fixed) and the improved recipe, side by side; or the ladder between
them, one change at a time.

Every run trains on the same synthetic training split (``fmuia synth``) with the same
encoder, image size, batch size, number of optimiser steps and seed, keeps its recipe's
validation split (20%: of all rows for the official recipe, of each task otherwise) and
its rule for the best checkpoint, predicts the same held-out test split from that
``best`` checkpoint (``fmuia predict``) and is scored by ``fmuia evaluate``. The budget
overrides only the network size, the steps (as ``train.max_steps``, with ``train.epochs``
the epochs those steps take, so an epoch-stepped cosine still anneals over the run), the
batch size, the seed and the device.

    python benchmarks/quality.py [--out quality_out] [--steps 1200] [--per-task 30] [--test 20]
                                 # official | baseline | improved, per-kind metrics, and the
                                 # acceptance checks: official < baseline < improved per kind
    python benchmarks/quality.py --seeds 42,43,44 # the same, each recipe trained once per
                                 # seed: the table holds the means, then every run's figures
    python benchmarks/quality.py --full            # real size (EfficientNet-B4, 256 px) on a GPU
    python benchmarks/quality.py --ladder [--restrict]
                                 # official; official + each fix alone; baseline; baseline +
                                 # each improvement alone; improved; baseline + each candidate
    python benchmarks/quality.py --ablation --steps 600 [--restrict]
                                 # baseline; baseline + each improvement or candidate alone
    python benchmarks/quality.py --leave-out   # improved; improved without each fix or
                                 # improvement; improved + each candidate
    python benchmarks/quality.py --backends    # the accuracy gate: the improved run's checkpoint
                                 # predicted by every inference backend (torch fp32,
                                 # onnxruntime fp32, OpenVINO fp32, OpenVINO int8), scored
    python benchmarks/quality.py --network configs/scratch_resnet18.yaml [--image-size 128]
                                 # any mode with another network: ResNet-18 from scratch
    python benchmarks/quality.py --ladder --dry-run   # any mode: the resolved config of
                                 # each run it would train, in quality_out/planned/

What each mode trains, and the time it takes at the default size (the demo network of
``configs/demo_cpu.yaml``: EfficientNet-Lite0 at 128 px, 1200 steps of batch 8): a run
takes one CPU core for 6 to 12 minutes on the 2-core reference machine (two
benchmarks can share it); the comparison is 3 runs (about 25 minutes); the ladder
1 + 7 + 1 + 14 + 1 + 11 = 35 rows, of which the two prediction-only improvements reuse a
checkpoint with ``--reuse`` (``--restrict`` trains the rows of the changes that
concern some kinds on those kinds' tasks only; ``--only`` picks rows); the ablation
1 + 14 + 11 + 1 = 27 runs; ``--backends`` 1 run (the comparison's improved run with
``--reuse``), then one export and one prediction per backend (int8 calibrated on
``DEFAULT_CALIBRATION_IMAGES`` images of the training split; a few minutes). With
``--full`` on one GPU, a run takes a few minutes.

The recipes are ``configs/fmuia2026_official.yaml``, ``configs/fmuia2026_baseline.yaml``
(extends the official, applies every fix) and ``configs/fmuia_plus.yaml`` (extends the
baseline, applies every improvement); every row is built from the same named changes,
read from their catalogues: ``configs/changes/fixes.yaml`` (official to baseline),
``improvements.yaml`` (baseline to improved) and ``candidates.yaml`` (measured, not kept).
``--dry-run`` trains nothing: it writes the resolved config of every run the mode
would train to ``--out``/planned/NAME.yaml (and nothing else). The official recipe keeps
its unseeded augmentation (``augment.seeded: false``), as written: its rows (and those
of the official plus one fix, but "seeded augmentation") change a little from run to
run; every other row repeats exactly.
``--restrict`` trains a change's row only on the tasks of the kinds the change concerns
(against its reference recipe on the same tasks). Everything is written under ``--out``:
data/, configs/, runs/, pred/, eval/, logs/ (and exports/ of --backends), and quality.json /
quality.md (or ladder.*, ablation.*, leave_out.*, backends.*: the tables printed).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import subprocess
import sys
import time
from typing import Any, Mapping, Sequence

from fmuia import kinds
from fmuia.config import Config, PredictConfig, load_config, read_yaml, save_config
from fmuia.config.changes import Change
from fmuia.config.loading import read_changes
from fmuia.errors import ConfigError
from fmuia.evaluate.outputs import compare_summaries, format_comparison
from fmuia.tasks import Kind, fmuia2026

VAL_FRACTION = 0.2  # the recipes' data.val_fraction (checked in main)

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = os.path.join(os.path.dirname(HERE), "configs")
OFFICIAL_CONFIG = os.path.join(CONFIGS, "fmuia2026_official.yaml")
BASELINE_CONFIG = os.path.join(CONFIGS, "fmuia2026_baseline.yaml")
IMPROVED_CONFIG = os.path.join(CONFIGS, "fmuia_plus.yaml")
DEMO_CONFIG = os.path.join(CONFIGS, "demo_cpu.yaml")
CHANGES = os.path.join(CONFIGS, "changes")
FIXES = read_changes(os.path.join(CHANGES, "fixes.yaml"))  # official -> baseline
IMPROVEMENTS = read_changes(os.path.join(CHANGES, "improvements.yaml"))  # baseline -> improved
CANDIDATES = read_changes(os.path.join(CHANGES, "candidates.yaml"))  # measured, not kept

FMUIA = [sys.executable, "-m", "fmuia"]


def recipe(base: str, changes: Sequence[Change] = (), extra: Mapping[str, Any] | None = None) -> Config:
    """The resolved config of ``base`` with ``changes`` merged in, then ``extra`` (budget, size)."""
    return load_config([base, *changes, *([extra] if extra else [])])


def recipes_disagree() -> list[str]:
    """What is wrong with the recipes against the catalogues (empty: the baseline is the
    official recipe plus every fix, the improved recipe the baseline plus every
    improvement, so that the ladder's rows add up to them)."""
    problems = []
    if load_config(BASELINE_CONFIG) != recipe(OFFICIAL_CONFIG, FIXES):
        problems.append(f"{BASELINE_CONFIG} is not {OFFICIAL_CONFIG} plus the changes of {CHANGES}/fixes.yaml")
    if load_config(IMPROVED_CONFIG) != recipe(BASELINE_CONFIG, IMPROVEMENTS):
        problems.append(f"{IMPROVED_CONFIG} is not {BASELINE_CONFIG} plus the changes of {CHANGES}/improvements.yaml")
    return problems


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = os.path.abspath(args.out)
        self.planned: list[str] = []
        if args.dry_run and os.path.isdir(os.path.join(self.out, "planned")):
            _remove_tree(os.path.join(self.out, "planned"))  # the plan of this invocation alone
        for sub in ("planned",) if args.dry_run else ("configs", "runs", "pred", "eval", "logs"):
            os.makedirs(os.path.join(self.out, sub), exist_ok=True)
        self.data = os.path.join(self.out, "data")
        self.timings: dict[str, float] = {}

    # -- subprocesses ----------------------------------------------------------------
    def _fmuia(self, name: str, argv: list[str]) -> None:
        log = os.path.join(self.out, "logs", f"{name}.log")
        start = time.perf_counter()
        env = dict(os.environ)
        if self.args.threads:
            # One compute thread per process by default on CPU: the data loader's worker
            # takes the other core, and oversubscribed OpenMP threads spin-wait (a
            # training step measured 15x slower with 2 threads beside a busy worker).
            env["OMP_NUM_THREADS"] = str(self.args.threads)
        with open(log, "w", encoding="utf-8") as fh:
            done = subprocess.run(FMUIA + argv, stdout=fh, stderr=subprocess.STDOUT, check=False, env=env)
        seconds = time.perf_counter() - start
        self.timings[name] = round(seconds, 1)
        if done.returncode != 0:
            with open(log, encoding="utf-8") as fh:
                tail = fh.read()[-3000:]
            raise SystemExit(f"fmuia {argv[0]} failed ({name}, exit {done.returncode}); log {log}:\n{tail}")
        print(f"  {name}: {seconds:.0f} s", flush=True)

    def synth(self) -> None:
        a = self.args
        stamp = os.path.join(self.data, "quality_data.json")
        wanted = {"per_task": a.per_task, "test": a.test, "seed": a.data_seed}
        if os.path.exists(stamp):
            with open(stamp, encoding="utf-8") as fh:
                if json.load(fh) == wanted:
                    return
            raise SystemExit(f"{self.data} holds data made with other settings; use another --out")
        self._fmuia("synth", ["synth", self.data, "--per-task", str(a.per_task), "--val", "0", "--test", str(a.test),
                              "--seed", str(a.data_seed), "--overwrite"])
        with open(stamp + ".tmp", "w", encoding="utf-8") as fh:
            json.dump(wanted, fh)
        os.replace(stamp + ".tmp", stamp)

    # -- one recipe, end to end --------------------------------------------------------
    def budget(self, kinds: Sequence[str] = (), seed: int | None = None) -> dict[str, Any]:
        """What every run shares: network size, steps, batch size, seed, device (and no
        progress bars or plots). The steps are ``train.max_steps``; ``train.epochs`` is
        the number of epochs they take, so that a schedule stepped per epoch anneals over
        the run as it would over a full one."""
        a = self.args
        tasks = [t.task_id for t in fmuia2026() if t.kind in kinds] if kinds else None
        extra: dict[str, Any] = {
            "seed": a.seed if seed is None else seed,
            "device": a.device,
            "train": {"max_steps": a.steps, "epochs": self._epochs(len(tasks or fmuia2026())),
                      "batch_size": a.batch_size, "progress": False, "plot": False},
        }
        if a.network:
            extra["model"] = dict(read_yaml(a.network)["model"])
        elif not a.full:
            extra["model"] = dict(read_yaml(DEMO_CONFIG)["model"])
        if a.image_size:
            extra["model"] = {**extra.get("model", {}), "image_size": a.image_size}
        if tasks:
            extra["data"] = {"tasks": tasks}
        return extra

    def _epochs(self, n_tasks: int) -> int:
        """The epochs ``--steps`` take: an epoch is a pass over the training rows (the
        recipes hold out 20%) in batches; the last epoch may be cut by max_steps."""
        a = self.args
        rows = n_tasks * a.per_task - round(VAL_FRACTION * n_tasks * a.per_task)
        return math.ceil(a.steps / max(1, math.ceil(rows / a.batch_size)))

    def run(self, name: str, config: Config) -> dict[str, Any]:
        """Train, predict the test split, score; the results.json summary. A run whose
        config is unchanged since an earlier invocation with ``--reuse`` is not redone.
        With ``--dry-run``: the config is written to planned/, and no results."""
        if self.args.dry_run:
            self.planned.append(name)
            save_config(config, os.path.join(self.out, "planned", f"{name}.yaml"))
            return {"per_kind": {}, "challenge_score": None}
        path = os.path.join(self.out, "configs", f"{name}.yaml")
        results = os.path.join(self.out, "eval", name, "results.json")
        if self.args.reuse and os.path.exists(results) and os.path.exists(path) and load_config(path) == config:
            print(f"  {name}: reused", flush=True)
        else:
            twin = self._trained_twin(config) if self.args.reuse else None
            # Old results go first: an interrupted run must never pass for a finished one.
            if os.path.isdir(os.path.dirname(results)):
                _remove_tree(os.path.dirname(results))
            save_config(config, path)
            run_dir = os.path.join(self.out, "runs", name)
            pred_dir = os.path.join(self.out, "pred", name)
            for folder in (pred_dir,) if twin == run_dir else (run_dir, pred_dir):
                if os.path.isdir(folder):
                    _remove_tree(folder)
            if twin is None:
                self._fmuia(f"{name}.train", ["train", "--config", path, "--data", os.path.join(self.data, "train"), "--out", run_dir])
            else:
                print(f"  {name}: trains as {os.path.relpath(twin, self.out)} did; its checkpoint is predicted again", flush=True)
            device = "cpu" if config.device == "cpu" else "auto"
            decoding = ["--tta" if config.predict.tta else "--no-tta",
                        "--box-voting" if config.predict.box_voting else "--no-box-voting"]
            self._fmuia(f"{name}.predict", ["predict", "--checkpoint", os.path.join(twin or run_dir, "best"), "--data",
                                            self._test_root(config), "--out", pred_dir, "--device", device, "--no-progress",
                                            *decoding])
            self._fmuia(f"{name}.evaluate", ["evaluate", "--data", self._test_root(config), "--pred", pred_dir,
                                             "--out", os.path.join(self.out, "eval", name)])
        with open(results, encoding="utf-8") as fh:
            return json.load(fh)

    def _trained_twin(self, config: Config) -> str | None:
        """The run folder of a finished run under --out whose training config equals
        ``config``'s (they differ only in prediction settings: the ``predict:`` section), or
        None. Its checkpoint is what training ``config`` would give again."""
        wanted = _training_part(config)
        folder = os.path.join(self.out, "configs")
        for entry in sorted(os.listdir(folder)) if os.path.isdir(folder) else ():
            name = entry[: -len(".yaml")]
            run_dir = os.path.join(self.out, "runs", name)
            finished = os.path.exists(os.path.join(self.out, "eval", name, "results.json"))
            if entry.endswith(".yaml") and finished and os.path.isdir(os.path.join(run_dir, "best")):
                try:
                    other = load_config(os.path.join(folder, entry))
                except ConfigError:  # a row written by another fmuia version: not a twin
                    continue
                if _training_part(other) == wanted:
                    return run_dir
        return None

    def _test_root(self, config: Config) -> str:
        """The test split, or a copy of it holding only the trained tasks' rows."""
        tasks = config.data.tasks
        test = os.path.join(self.data, "test")
        if not tasks:
            return test
        root = os.path.join(self.data, "test_" + "_".join(sorted({fmuia2026()[t].kind.value for t in tasks})))
        if not os.path.isdir(root):
            _subset_root(test, root, set(tasks))
        return root


def _is_kind(name: str) -> bool:
    try:
        return Kind(name) == name
    except ValueError:
        return False


def _training_part(config: Config) -> Config:
    """``config`` without its prediction-only settings: two configs equal here train the
    same checkpoint."""
    return dataclasses.replace(config, predict=PredictConfig())


def _remove_tree(folder: str) -> None:
    import shutil

    shutil.rmtree(folder)


def _subset_root(src: str, dst: str, tasks: set[str]) -> None:
    """A data root whose CSVs keep only ``tasks``' rows; images are reached through a
    symbolic link to the source's folders (paths in the CSVs are relative to csv_files/)."""
    import csv

    os.makedirs(os.path.join(dst, "csv_files"), exist_ok=True)
    for entry in os.listdir(src):
        if entry != "csv_files":
            os.symlink(os.path.join(src, entry), os.path.join(dst, entry))
    for name in sorted(os.listdir(os.path.join(src, "csv_files"))):
        if not name.endswith(".csv"):
            continue
        with open(os.path.join(src, "csv_files", name), newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows = [r for r in reader if r["task_id"] in tasks]
            columns = reader.fieldnames
        if rows:
            with open(os.path.join(dst, "csv_files", name), "w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=columns)
                writer.writeheader()
                writer.writerows(rows)


# -- tables ----------------------------------------------------------------------------
def _value(results: Mapping[str, Any], kind: str, metric: str) -> float | None:
    return (results.get("per_kind", {}).get(kind) or {}).get(metric)


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


RECIPE_LABELS = ("official", "baseline", "improved")

# The acceptance checks' metrics per kind: each must improve from official to baseline
# and from baseline to improved (distances downwards).
ACCEPTANCE_METRICS = (("segmentation", "DSC"), ("segmentation", "HD"), ("classification", "AUC"),
                      ("classification", "Accuracy"), ("detection", "IoU"), ("keypoints", "MRE"))


def acceptance(official: Mapping[str, Any], baseline: Mapping[str, Any],
               improved: Mapping[str, Any]) -> list[tuple[str, bool | None, str]]:
    """The acceptance checks, official < baseline < improved on every kind's headline
    metrics: (what, met, figures); met is None where a value is missing."""
    checks = []
    for kind_name, metric in ACCEPTANCE_METRICS:
        kind = kinds.kind_of(kind_name)
        values = [_value(r, kind_name, metric) for r in (official, baseline, improved)]
        order = "lower" if metric in kind.lower_is_better else "higher"
        met = None if None in values else bool(kind.improves(metric, values[0], values[1])
                                                and kind.improves(metric, values[1], values[2]))
        checks.append((f"{kind_name} {metric} improves official -> baseline -> improved ({order} is better)", met,
                       " -> ".join(_fmt(v) for v in values)))
    return checks


# Each kind's headline metrics, and classification's threshold metrics besides its AUC: a
# change can lift the ranking (AUC) and still leave the decisions (accuracy, F1, MCC) behind.
_EXTRA_METRICS = {"classification": ("Accuracy", "F1_macro", "MCC")}
ABLATION_METRICS = tuple((kind.name, metric) for kind in kinds.all_kinds()
                         for metric in (*kind.headline(), *_EXTRA_METRICS.get(kind.name, ())))


def ablation_table(rows: list[tuple[str, Mapping[str, Any], Mapping[str, Any]]]) -> str:
    """One line per row (name, reference results, results with the change): the
    metric and its delta against the reference, for the kinds the row trained."""
    head = "| change | " + " | ".join(f"{m} ({k[:3]})" for k, m in ABLATION_METRICS) + " | score |"
    lines = [head, "|---|" + "---:|" * (len(ABLATION_METRICS) + 1)]
    for name, ref, res in rows:
        cells = []
        for kind, metric in ABLATION_METRICS:
            a, b = _value(ref, kind, metric), _value(res, kind, metric)
            if b is None:
                cells.append("")
            elif a is None or ref is res:
                cells.append(_fmt(b, 3))
            else:
                cells.append(f"{_fmt(b, 3)} ({b - a:+.3f})")
        a, b = ref.get("challenge_score"), res.get("challenge_score")
        score = _fmt(b, 3) if ref is res or a is None or b is None else f"{_fmt(b, 3)} ({b - a:+.3f})"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {score} |")
    return "\n".join(lines)


# The inference backends' accuracy gate: each backend's run against torch fp32 on the
# same checkpoint and test split. Tolerances: the challenge score, and each kind's main
# metric (worse by at most this much; MRE in pixels).
BACKEND_ROWS = (("onnxruntime", "fp32"), ("openvino", "fp32"), ("openvino", "int8"))
GATE_SCORE = 0.005
GATE_METRICS = (("segmentation", "DSC", 0.01), ("classification", "AUC", 0.01), ("detection", "IoU", 0.01),
                ("keypoints", "MRE", 1.0))


def gate_checks(reference: Mapping[str, Any], results: Mapping[str, Any]) -> list[tuple[str, bool | None, str]]:
    """The gate's checks of one backend's results against torch fp32's: (what, met, figures)."""
    a, b = reference.get("challenge_score"), results.get("challenge_score")
    checks: list[tuple[str, bool | None, str]] = [
        (f"challenge score within {GATE_SCORE}", None if None in (a, b) else abs(b - a) <= GATE_SCORE,
         f"{_fmt(a)} -> {_fmt(b)}")]
    for kind_name, metric, tolerance in GATE_METRICS:
        a, b = _value(reference, kind_name, metric), _value(results, kind_name, metric)
        lower = metric in kinds.kind_of(kind_name).lower_is_better
        worse = None if None in (a, b) else (b - a if lower else a - b)
        checks.append((f"{kind_name} {metric} worse by at most {tolerance:g}", None if worse is None else worse <= tolerance,
                       f"{_fmt(a)} -> {_fmt(b)}"))
    return checks


def backends(bench: Bench) -> dict[str, Any]:
    """The improved run's ``best`` checkpoint predicted by every backend and scored, each
    against torch fp32 (the improved run itself)."""
    from fmuia.predict.openvino_graph import DEFAULT_CALIBRATION_IMAGES

    config = recipe(IMPROVED_CONFIG, extra=bench.budget())
    improved = bench.run("improved", config)
    checkpoint = os.path.join(bench.out, "runs", "improved", "best")
    test = bench._test_root(config)
    decoding = ["--tta" if config.predict.tta else "--no-tta",
                "--box-voting" if config.predict.box_voting else "--no-box-voting"]
    rows: list[Row] = [("torch fp32 (improved run)", improved, improved)]
    checks: dict[str, list[tuple[str, bool | None, str]]] = {}
    for backend, precision in BACKEND_ROWS:
        name = f"improved-{backend}-{precision}"
        if bench.args.dry_run:
            bench.planned.append(f"{name} (export, predict and score the improved run's checkpoint)")
            continue
        exported = os.path.join(bench.out, "exports", name)
        if os.path.isdir(exported):
            _remove_tree(exported)
        if backend == "onnxruntime":
            model = os.path.join(exported, "model.onnx")
            bench._fmuia(f"{name}.export", ["export", "onnx", "--checkpoint", checkpoint, model])
        else:
            model = os.path.join(exported, "model.xml")
            int8 = ["--int8", "--calibration", os.path.join(bench.data, "train"), "--calibration-images",
                    str(DEFAULT_CALIBRATION_IMAGES)] if precision == "int8" else []
            bench._fmuia(f"{name}.export", ["export", "openvino", "--checkpoint", checkpoint, model, *int8])
        pred_dir, eval_dir = (os.path.join(bench.out, sub, name) for sub in ("pred", "eval"))
        for folder in (pred_dir, eval_dir):
            if os.path.isdir(folder):
                _remove_tree(folder)
        bench._fmuia(f"{name}.predict", ["predict", "--checkpoint", model, "--data", test, "--out", pred_dir,
                                         "--device", "cpu", "--no-progress", *decoding])
        bench._fmuia(f"{name}.evaluate", ["evaluate", "--data", test, "--pred", pred_dir, "--out", eval_dir])
        with open(os.path.join(eval_dir, "results.json"), encoding="utf-8") as fh:
            results = json.load(fh)
        rows.append((f"{backend} {precision}", improved, results))
        checks[f"{backend} {precision}"] = gate_checks(improved, results)
    result = _table_result("backends", rows)
    result["table"] += "\n\nAccuracy gate (against torch fp32):\n" + "\n".join(
        f"- [{'x' if met else ' '}] {row}: {what}: {figures}{'' if met is not None else ' (not measured)'}"
        for row, found in checks.items() for what, met, figures in found)
    result["gate"] = {row: [{"what": w, "met": m, "figures": f} for w, m, f in found] for row, found in checks.items()}
    return result


def _slug(name: str) -> str:
    """A change's name as part of a run's folder name: "dice + ce" -> "dice_plus_ce"."""
    return re.sub(r"[^A-Za-z0-9]+", "_", name.replace("+", "plus")).strip("_")


# -- modes -----------------------------------------------------------------------------
def seed_run_name(recipe_name: str, seed: int, first_seed: int) -> str:
    """The run of ``recipe_name`` trained with ``seed``: the recipe's name for the first
    seed (so a one-seed comparison and the first seed of several share their runs)."""
    return recipe_name if seed == first_seed else f"{recipe_name}-seed{seed}"


def mean_results(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The mean over runs of each per-kind metric and of the challenge score (None where
    a run lacks the value): the results.json fields the tables read."""
    def mean(values: list[Any]) -> float | None:
        return None if not values or any(v is None for v in values) else float(sum(values) / len(values))

    per_kind: dict[str, dict[str, float | None]] = {}
    for kind in sorted({k for r in runs for k in r.get("per_kind", {})}):
        metrics = sorted({m for r in runs for m in (r.get("per_kind", {}).get(kind) or {})})
        per_kind[kind] = {m: mean([_value(r, kind, m) for r in runs]) for m in metrics}
    return {"per_kind": per_kind, "challenge_score": mean([r.get("challenge_score") for r in runs]), "runs": len(runs)}


def compare(bench: Bench) -> dict[str, Any]:
    only = bench.args.only or RECIPE_LABELS
    seeds = bench.args.seeds
    each: dict[str, list[Mapping[str, Any]]] = {
        name: [bench.run(seed_run_name(name, seed, seeds[0]), recipe(path, extra=bench.budget(seed=seed))) for seed in seeds]
        for name, path in zip(RECIPE_LABELS, (OFFICIAL_CONFIG, BASELINE_CONFIG, IMPROVED_CONFIG))
        if name in only}
    results = {name: runs[0] if len(runs) == 1 else mean_results(runs) for name, runs in each.items()}
    # With several seeds, every run's own figures follow the table of means.
    per_seed = "" if len(seeds) == 1 else "\n\nEach run (training seed):\n" + ablation_table(
        [(f"{name} (seed {seed})", res, res) for name, runs in each.items() for seed, res in zip(seeds, runs)])
    if len(results) == 1:  # nothing to compare with: the one recipe's metrics
        (name, res), = results.items()
        label = name if len(seeds) == 1 else f"{name} (mean of {len(seeds)} seeds)"
        return {"mode": "compare", "table": ablation_table([(label, res, res)]) + per_seed, "rows": [],
                "acceptance": [], "seeds": seeds}
    rows = compare_summaries(*results.values(), labels=tuple(results))
    table = ("" if len(seeds) == 1 else f"Means over training seeds {', '.join(map(str, seeds))}:\n\n") + \
        format_comparison(rows, tuple(results))
    if len(results) < len(RECIPE_LABELS):
        return {"mode": "compare", "table": table + per_seed, "rows": rows, "acceptance": [], "seeds": seeds}
    checks = acceptance(*results.values())
    text = table + "\n\nAcceptance checks:\n" + "\n".join(
        f"- [{'x' if met else ' '}] {what}: {figures}{'' if met is not None else ' (not measured)'}"
        for what, met, figures in checks) + per_seed
    return {"mode": "compare", "table": text, "rows": rows, "seeds": seeds,
            "acceptance": [{"what": w, "met": m, "figures": f} for w, m, f in checks]}


class References:
    """The runs of a recipe the change rows are measured against, one per set of kinds
    trained (all tasks, or with ``--restrict`` those of a change's kinds)."""

    def __init__(self, bench: Bench, name: str, config: str) -> None:
        self.bench, self.name, self.config = bench, name, config
        self.runs: dict[tuple[str, ...], Mapping[str, Any]] = {}

    def __call__(self, kinds: tuple[str, ...] = ()) -> Mapping[str, Any]:
        if kinds not in self.runs:
            name = self.name + ("-" + "-".join(kinds) if kinds else "")
            self.runs[kinds] = self.bench.run(name, recipe(self.config, extra=self.bench.budget(kinds)))
        return self.runs[kinds]


Row = tuple[str, Mapping[str, Any], Mapping[str, Any]]


def _change_rows(bench: Bench, reference: References, changes: Sequence[Change], prefix: str,
                 note: str = "") -> list[Row]:
    """One row per change: the reference recipe plus that change alone, against it."""
    rows = []
    only = bench.args.only
    for change in changes:
        if only and change.name not in only:
            continue
        kinds = change.kinds if bench.args.restrict else ()
        slug = _slug(change.name)
        result = bench.run(f"{prefix}-{slug}", recipe(reference.config, [change], bench.budget(kinds)))
        rows.append((f"{reference.name} + {change.name}{note}", reference(kinds), result))
    return rows


def _table_result(mode: str, rows: list[Row]) -> dict[str, Any]:
    return {"mode": mode, "table": ablation_table(rows),
            "rows": [{"name": n, "reference": r.get("per_kind"), "with_change": s.get("per_kind")} for n, r, s in rows]}


def ladder(bench: Bench) -> dict[str, Any]:
    official = References(bench, "official", OFFICIAL_CONFIG)
    baseline = References(bench, "baseline", BASELINE_CONFIG)
    rows: list[Row] = [("official recipe", official(), official())]
    rows += _change_rows(bench, official, FIXES, "official")
    rows.append(("baseline (official + all fixes)", official(), baseline()))
    rows += _change_rows(bench, baseline, IMPROVEMENTS, "baseline")
    improved = bench.run("improved", recipe(IMPROVED_CONFIG, extra=bench.budget()))
    rows.append(("improved (baseline + all improvements)", baseline(), improved))
    rows += _change_rows(bench, baseline, CANDIDATES, "baseline", " (not kept)")
    result = _table_result("ladder", rows)
    checks = acceptance(official(), baseline(), improved)
    result["table"] += "\n\nAcceptance checks:\n" + "\n".join(
        f"- [{'x' if met else ' '}] {what}: {figures}{'' if met is not None else ' (not measured)'}"
        for what, met, figures in checks)
    result["acceptance"] = [{"what": w, "met": m, "figures": f} for w, m, f in checks]
    return result


def ablation(bench: Bench) -> dict[str, Any]:
    baseline = References(bench, "baseline", BASELINE_CONFIG)
    rows: list[Row] = [("baseline recipe", baseline(), baseline())]
    rows += _change_rows(bench, baseline, IMPROVEMENTS, "baseline")
    rows += _change_rows(bench, baseline, CANDIDATES, "baseline", " (not kept)")
    improved = bench.run("improved", recipe(IMPROVED_CONFIG, extra=bench.budget()))
    rows.append(("improved recipe (all)", baseline(), improved))
    return _table_result("ablation", rows)


def leave_out(bench: Bench) -> dict[str, Any]:
    """The improved recipe, and one row per change of ``FIXES`` or ``IMPROVEMENTS`` left
    out of it (the official recipe plus every other fix and improvement), and one per
    candidate added: which of its parts a kind owes its figures to."""
    improved = bench.run("improved", recipe(IMPROVED_CONFIG, extra=bench.budget()))
    rows: list[Row] = [("improved recipe", improved, improved)]
    only = bench.args.only
    every = FIXES + IMPROVEMENTS
    for change in every + CANDIDATES:
        if only and change.name not in only:
            continue
        slug = _slug(change.name)
        if change in CANDIDATES:
            config = recipe(IMPROVED_CONFIG, [change], bench.budget())
            rows.append((f"improved + {change.name} (not kept)", improved, bench.run(f"improved-plus-{slug}", config)))
        else:
            config = recipe(OFFICIAL_CONFIG, [c for c in every if c is not change], bench.budget())
            rows.append((f"improved without {change.name}", improved, bench.run(f"improved-without-{slug}", config)))
    return _table_result("leave-out", rows)


def _seed_list(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"expected one or more different seeds, got {text!r}")
    return seeds


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="quality_out", help="folder for everything written (default quality_out)")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps per run (default 1200; 3000 with --full)")
    p.add_argument("--batch-size", type=int, default=8, help="training batch size (default 8, the reference's)")
    p.add_argument("--per-task", type=int, default=None, help="synthetic training samples per task (default 30, of which the recipes hold out 20%% for validation; 120 with --full)")
    p.add_argument("--test", type=int, default=None, help="synthetic test samples per task (default 20; 30 with --full)")
    p.add_argument("--seed", type=int, default=42, help="training seed of every run (default 42)")
    p.add_argument("--seeds", type=_seed_list, default=None, metavar="SEED[,SEED...]",
                   help="the comparison: train each recipe once per training seed and compare the means "
                        "(runs of seeds after the first are NAME-seedN); default: --seed alone")
    p.add_argument("--data-seed", type=int, default=1, help="seed of the synthetic data (default 1)")
    p.add_argument("--device", default=None, help="training device (default cpu; auto with --full)")
    p.add_argument("--threads", type=int, default=None,
                   help="OMP_NUM_THREADS of the fmuia processes (default 1 on CPU, unset with --full)")
    p.add_argument("--full", action="store_true", help="the recipes' real network (EfficientNet-B4, 256 px); meant for a GPU")
    p.add_argument("--network", default=None, metavar="YAML",
                   help="a config file whose model section every run uses instead of the demo network's "
                        "(e.g. configs/scratch_resnet18.yaml)")
    p.add_argument("--image-size", type=int, default=None, help="the network's input size, over the network's own")
    p.add_argument("--ladder", action="store_true",
                   help="official, + each fix, baseline, + each improvement, improved, + each candidate")
    p.add_argument("--ablation", action="store_true", help="one row per change: the baseline recipe plus that change")
    p.add_argument("--leave-out", action="store_true",
                   help="one row per fix or improvement left out of the improved recipe, and per candidate added")
    p.add_argument("--backends", action="store_true",
                   help="the accuracy gate: the improved run's checkpoint predicted by every inference backend "
                        "(onnxruntime fp32, OpenVINO fp32 and int8) against torch fp32")
    p.add_argument("--restrict", action="store_true",
                   help="ladder, ablation: train a change's row only on the tasks of the kinds it concerns")
    p.add_argument("--only", type=lambda text: [n.strip() for n in text.split(",") if n.strip()], default=None,
                   metavar="NAME[,NAME...]",
                   help="ladder, ablation: only the rows of these changes; the comparison: only these recipes "
                        "(official, baseline, improved). With --reuse, runs already scored under --out fill the "
                        "other rows: two processes can share the rows of one --out")
    p.add_argument("--reuse", action="store_true", help="keep runs already scored under --out with the same config")
    p.add_argument("--dry-run", action="store_true",
                   help="train nothing: write the resolved config of each run the mode would train to OUT/planned/")
    args = p.parse_args(argv)
    args.steps = args.steps or (3000 if args.full else 1200)
    args.per_task = args.per_task or (120 if args.full else 30)
    args.test = args.test or (30 if args.full else 20)
    args.device = args.device or ("auto" if args.full else "cpu")
    if args.threads is None and not args.full:
        args.threads = 1
    if sum((args.ladder, args.ablation, args.leave_out, args.backends)) > 1:
        p.error("--ladder, --ablation, --leave-out and --backends are four modes; give one")
    if args.seeds is not None and (args.ladder or args.ablation or args.leave_out or args.backends):
        p.error("--seeds is for the comparison of the three recipes; the ladder, ablation and leave-out take --seed")
    args.seeds = args.seeds or [args.seed]
    if args.image_size is not None and args.image_size < 32:
        p.error(f"--image-size must be at least 32, got {args.image_size}")
    if args.only:
        known = ([c.name for c in FIXES + IMPROVEMENTS + CANDIDATES] if args.ladder or args.ablation or args.leave_out
                 else list(RECIPE_LABELS))
        unknown = [n for n in args.only if n not in known]
        if unknown:
            p.error(f"--only: unknown change(s) {', '.join(map(repr, unknown))} (known: {', '.join(map(repr, known))})")
    if args.network is not None:
        try:
            model = read_yaml(args.network).get("model")
        except Exception as exc:  # an unreadable file: its own message says why
            p.error(f"--network {args.network}: {exc}")
        if not isinstance(model, dict) or not model:
            p.error(f"--network {args.network}: no 'model:' section to take the network from")
    for name in ("steps", "batch_size", "per_task", "test"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    problems = recipes_disagree() + [f"{CHANGES}: change {c.name!r}: {k!r} is not a task kind"
                                      for c in FIXES + IMPROVEMENTS + CANDIDATES for k in c.kinds if not _is_kind(k)]
    if problems:
        raise SystemExit("; ".join(problems) + "; update one of them")
    for path in (OFFICIAL_CONFIG, BASELINE_CONFIG, IMPROVED_CONFIG):
        if load_config(path).data.val_fraction != VAL_FRACTION:
            raise SystemExit(f"{path}: data.val_fraction is not {VAL_FRACTION}; update VAL_FRACTION in {__file__}")
    bench = Bench(args)
    start = time.perf_counter()
    size = (f"the network of {args.network}" if args.network else "EfficientNet-B4 at 256 px" if args.full
            else "the demo network (configs/demo_cpu.yaml)")
    seeds = f"seed {args.seeds[0]}" if len(args.seeds) == 1 else f"seeds {', '.join(map(str, args.seeds))}"
    print(f"quality: {size}, {args.steps} steps of batch {args.batch_size}, {seeds}, "
          f"{args.per_task} training / {args.test} test samples per task -> {bench.out}", flush=True)
    name, mode = (("ladder", ladder) if args.ladder else ("ablation", ablation) if args.ablation
                  else ("leave_out", leave_out) if args.leave_out else ("backends", backends) if args.backends
                  else ("quality", compare))
    if args.dry_run:
        mode(bench)
        print("\n".join(f"  {run}" for run in bench.planned))
        print(f"{len(bench.planned)} runs planned; their configs: {os.path.join(bench.out, 'planned')}")
        return 0
    bench.synth()
    result = mode(bench)
    result.update({"steps": args.steps, "batch_size": args.batch_size, "seed": args.seeds[0], "per_task": args.per_task,
                   "test": args.test, "full": args.full, "restrict": args.restrict, "network": args.network,
                   "image_size": args.image_size,
                   "command": "python benchmarks/quality.py " + " ".join(sys.argv[1:] if argv is None else argv),
                   "seconds": round(time.perf_counter() - start, 1), "timings": bench.timings})
    for suffix, text in ((".json", json.dumps(result, indent=2) + "\n"), (".md", result["table"] + "\n")):
        path = os.path.join(bench.out, name + suffix)
        with open(path + ".tmp", "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(path + ".tmp", path)
    print()
    print(result["table"])
    print(f"\n{result['command']}  ({math.ceil(result['seconds'] / 60)} min)")
    return 0

if __name__ == "__main__":
    sys.exit(main())
