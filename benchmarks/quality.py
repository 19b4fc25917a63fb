"""Quality of the improved recipe against the faithful one, side by side, at equal budget.

Both recipes train on the same synthetic training split (``fmuia synth``) with the same
encoder, image size, batch size, number of optimiser steps and seed, predict the same
held-out test split (``fmuia predict``) and are scored by ``fmuia evaluate``; the per-kind
metrics are printed next to each other with their deltas.

    python benchmarks/quality.py [--out quality_out] [--steps 1200] [--per-task 24] [--test 20]
    python benchmarks/quality.py --full            # real size (EfficientNet-B4, 256 px) on a GPU
    python benchmarks/quality.py --ablation --steps 600 [--restrict]
                                                   # one row per change: faithful + that change

Default size: the demo network (``configs/demo_cpu.yaml``'s model: EfficientNet-Lite0 at
128 px), about 7 minutes per recipe on two CPU cores (15 minutes in all). The faithful recipe is
``configs/fmuia2026_baseline.yaml``, the improved one ``configs/fmuia_plus.yaml``, and
``fmuia.train.recipes.IMPROVEMENTS`` lists what the second adds to the first, one switchable
entry per idea (the test suite checks that the baseline plus every change is exactly the
improved recipe).
``--restrict`` trains an ablation row only on the tasks of the kinds its change concerns
(against a faithful run on the same tasks), which makes the ablation much cheaper.
Everything is written under ``--out``: data/, configs/, runs/, pred/, eval/, logs/,
quality.json and quality.md (the tables printed).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from typing import Any, Mapping, Sequence

from fmuia import kinds
from fmuia.config import Config, load_config, read_yaml, save_config
from fmuia.evaluate.outputs import compare_summaries, format_comparison
from fmuia.tasks import Kind, fmuia2026
from fmuia.train.recipes import CANDIDATES, Change, apply_changes, recipe_difference
from fmuia.train.recipes import IMPROVEMENTS as CHANGES

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = os.path.join(os.path.dirname(HERE), "configs")
FAITHFUL_CONFIG = os.path.join(CONFIGS, "fmuia2026_baseline.yaml")
IMPROVED_CONFIG = os.path.join(CONFIGS, "fmuia_plus.yaml")
DEMO_CONFIG = os.path.join(CONFIGS, "demo_cpu.yaml")

FMUIA = [sys.executable, "-m", "fmuia"]


def recipe(base: str, changes: Sequence[Change] = (), extra: Mapping[str, Any] | None = None) -> Config:
    """The resolved config of ``base`` with ``changes`` merged in, then ``extra`` (budget, size)."""
    return apply_changes(base, changes, extra)


def improved_equals_faithful_plus_changes() -> bool:
    return not recipe_difference(FAITHFUL_CONFIG, IMPROVED_CONFIG, CHANGES)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = os.path.abspath(args.out)
        for sub in ("configs", "runs", "pred", "eval", "logs"):
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
    def budget(self, kinds: Sequence[Kind] = ()) -> dict[str, Any]:
        """What every run shares: network size, steps, seed, no validation split."""
        a = self.args
        extra: dict[str, Any] = {
            "seed": a.seed,
            "device": a.device,
            "data": {"val_fraction": 0.0},
            "train": {"max_steps": a.steps, "epochs": 100000, "batch_size": a.batch_size,
                      "progress": False, "plot": False},
        }
        if not a.full:
            extra["model"] = dict(read_yaml(DEMO_CONFIG)["model"])
        if kinds:
            extra["data"]["tasks"] = [t.task_id for t in fmuia2026() if t.kind in kinds]
        return extra

    def run(self, name: str, config: Config) -> dict[str, Any]:
        """Train, predict the test split, score; the results.json summary. A run whose
        config is unchanged since an earlier invocation with ``--reuse`` is not redone."""
        path = os.path.join(self.out, "configs", f"{name}.yaml")
        results = os.path.join(self.out, "eval", name, "results.json")
        if self.args.reuse and os.path.exists(results) and os.path.exists(path) and load_config(path) == config:
            print(f"  {name}: reused", flush=True)
        else:
            save_config(config, path)
            run_dir = os.path.join(self.out, "runs", name)
            pred_dir = os.path.join(self.out, "pred", name)
            for folder in (run_dir, pred_dir):
                if os.path.isdir(folder):
                    _remove_tree(folder)
            self._fmuia(f"{name}.train", ["train", "--config", path, "--data", os.path.join(self.data, "train"), "--out", run_dir])
            device = "cpu" if config.device == "cpu" else "auto"
            self._fmuia(f"{name}.predict", ["predict", "--checkpoint", os.path.join(run_dir, "last"), "--data",
                                            self._test_root(config), "--out", pred_dir, "--device", device, "--no-progress"])
            self._fmuia(f"{name}.evaluate", ["evaluate", "--data", self._test_root(config), "--pred", pred_dir,
                                             "--out", os.path.join(self.out, "eval", name)])
        with open(results, encoding="utf-8") as fh:
            return json.load(fh)

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


def side_by_side(faithful: Mapping[str, Any], improved: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    labels = ("faithful", "improved")
    rows = compare_summaries(faithful, improved, labels)
    return format_comparison(rows, labels), rows


def targets(faithful: Mapping[str, Any], improved: Mapping[str, Any]) -> list[tuple[str, bool | None, str]]:
    """The acceptance targets: (what, met, figures)."""
    def get(r, kind, metric):
        return _value(r, kind, metric)

    checks = []
    for what, kind, metric, test in (
        ("segmentation mean Dice higher", "segmentation", "DSC", lambda a, b: b > a),
        ("segmentation HD lower", "segmentation", "HD", lambda a, b: b < a),
        ("classification AUC higher", "classification", "AUC", lambda a, b: b > a),
        ("detection IoU at least 0.15 higher", "detection", "IoU", lambda a, b: b - a >= 0.15),
        ("keypoint MRE at most 60% of the faithful", "keypoints", "MRE", lambda a, b: b <= 0.6 * a),
    ):
        a, b = get(faithful, kind, metric), get(improved, kind, metric)
        met = None if a is None or b is None else bool(test(a, b))
        ratio = f", ratio {b / a:.2f}" if metric == "MRE" and a and b is not None else ""
        checks.append((what, met, f"{_fmt(a)} -> {_fmt(b)}{ratio}"))
    return checks


ABLATION_METRICS = tuple((kind.name, metric) for kind in kinds.all_kinds() for metric in kind.headline())


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


# -- modes -----------------------------------------------------------------------------
def compare(bench: Bench) -> dict[str, Any]:
    faithful = bench.run("faithful", recipe(FAITHFUL_CONFIG, extra=bench.budget()))
    improved = bench.run("improved", recipe(IMPROVED_CONFIG, extra=bench.budget()))
    table, rows = side_by_side(faithful, improved)
    checks = targets(faithful, improved)
    text = table + "\n\nTargets:\n" + "\n".join(
        f"- [{'x' if met else ' '}] {what}: {figures}{'' if met is not None else ' (not measured)'}"
        for what, met, figures in checks)
    return {"mode": "compare", "table": text, "rows": rows,
            "targets": [{"what": w, "met": m, "figures": f} for w, m, f in checks]}


def ablation(bench: Bench) -> dict[str, Any]:
    restrict = bench.args.restrict
    references: dict[tuple[Kind, ...], Mapping[str, Any]] = {}

    def reference(kinds: tuple[Kind, ...]) -> Mapping[str, Any]:
        if kinds not in references:
            name = "faithful" + ("-" + "-".join(k.value for k in kinds) if kinds else "")
            references[kinds] = bench.run(name, recipe(FAITHFUL_CONFIG, extra=bench.budget(kinds)))
        return references[kinds]

    rows: list[tuple[str, Mapping[str, Any], Mapping[str, Any]]] = []
    full_ref = reference(())
    rows.append(("faithful recipe", full_ref, full_ref))
    for change in CHANGES + CANDIDATES:
        kinds = change.kinds if restrict else ()
        ref = reference(kinds)
        slug = change.name.replace(" ", "_").replace("+", "plus")
        res = bench.run(f"plus-{slug}", recipe(FAITHFUL_CONFIG, [change], bench.budget(kinds)))
        kept = "" if change in CHANGES else " (not kept)"
        rows.append((f"+ {change.name}{kept}", ref, res))
    improved = bench.run("improved", recipe(IMPROVED_CONFIG, extra=bench.budget()))
    rows.append(("improved recipe (all)", full_ref, improved))
    table = ablation_table(rows)
    return {"mode": "ablation", "table": table,
            "rows": [{"name": n, "reference": r.get("per_kind"), "with_change": s.get("per_kind")} for n, r, s in rows]}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="quality_out", help="folder for everything written (default quality_out)")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps per run (default 1200; 3000 with --full)")
    p.add_argument("--batch-size", type=int, default=8, help="training batch size (default 8, the reference's)")
    p.add_argument("--per-task", type=int, default=None, help="synthetic training samples per task (default 24; 120 with --full)")
    p.add_argument("--test", type=int, default=None, help="synthetic test samples per task (default 20; 30 with --full)")
    p.add_argument("--seed", type=int, default=42, help="training seed of every run (default 42)")
    p.add_argument("--data-seed", type=int, default=1, help="seed of the synthetic data (default 1)")
    p.add_argument("--device", default=None, help="training device (default cpu; auto with --full)")
    p.add_argument("--threads", type=int, default=None,
                   help="OMP_NUM_THREADS of the fmuia processes (default 1 on CPU, unset with --full)")
    p.add_argument("--full", action="store_true", help="the recipes' real network (EfficientNet-B4, 256 px); meant for a GPU")
    p.add_argument("--ablation", action="store_true", help="one row per change: the faithful recipe plus that change")
    p.add_argument("--restrict", action="store_true",
                   help="ablation: train each row only on the tasks of the kinds its change concerns")
    p.add_argument("--reuse", action="store_true", help="keep runs already scored under --out with the same config")
    args = p.parse_args(argv)
    args.steps = args.steps or (3000 if args.full else 1200)
    args.per_task = args.per_task or (120 if args.full else 24)
    args.test = args.test or (30 if args.full else 20)
    args.device = args.device or ("auto" if args.full else "cpu")
    if args.threads is None and not args.full:
        args.threads = 1
    for name in ("steps", "batch_size", "per_task", "test"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not improved_equals_faithful_plus_changes():
        raise SystemExit(f"{IMPROVED_CONFIG} is not {FAITHFUL_CONFIG} plus fmuia.train.recipes.IMPROVEMENTS; update one of them")
    bench = Bench(args)
    start = time.perf_counter()
    size = "EfficientNet-B4 at 256 px" if args.full else "the demo network (configs/demo_cpu.yaml)"
    print(f"quality: {size}, {args.steps} steps of batch {args.batch_size}, seed {args.seed}, "
          f"{args.per_task} training / {args.test} test samples per task -> {bench.out}", flush=True)
    bench.synth()
    result = ablation(bench) if args.ablation else compare(bench)
    result.update({"steps": args.steps, "batch_size": args.batch_size, "seed": args.seed, "per_task": args.per_task,
                   "test": args.test, "full": args.full, "restrict": args.restrict,
                   "command": "python benchmarks/quality.py " + " ".join(sys.argv[1:] if argv is None else argv),
                   "seconds": round(time.perf_counter() - start, 1), "timings": bench.timings})
    name = "ablation" if args.ablation else "quality"
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
