"""Time ``fmuia evaluate`` against a straightforward per-sample, per-class scorer.

The straightforward scorer below works the way the challenge's reference does:
the CSVs read with pandas, rows visited one at a time, both masks read per row,
and one SimpleITK HausdorffDistanceImageFilter per class per image. Both score the
same data root against a perturbed submission made from its ground truth (shifted,
eroded or dilated masks, jittered boxes and points, noisy probabilities, a few
predictions dropped). The data root is a synthetic test split from ``fmuia synth``
(all 12 segmentation tasks and one task of each other kind), or with
``--data builtin`` multi-class ellipse masks built here. The script checks that
every task metric agrees and prints the median wall and CPU time of each and the ratios.

With ``--against SRC`` it instead times ``fmuia evaluate`` as the user runs it, a new
process with its imports, from this checkout and from another version's ``src/``
(``git archive REV src | tar -x -C /tmp/old`` gives ``/tmp/old/src``), runs interleaved,
and checks that the two write byte-identical result files. ``--all-tasks`` makes the
synthetic split cover all 27 tasks (540 test images at ``--per-task 20``); ``--data``
may also name an existing labelled data root.

    python benchmarks/evaluate.py [--per-task 20] [--repeats 3] [--workers 2] [--data synth|builtin|DATA_ROOT]
    python benchmarks/evaluate.py --against /tmp/old/src --all-tasks --repeats 5
"""
from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np
import pandas as pd
import SimpleITK as sitk
from sklearn.metrics import f1_score, matthews_corrcoef, roc_auc_score

import logging

from fmuia.evaluate.scorer import evaluate
from fmuia.evaluate.truth_submission import write_truth_submission

SEG_TASKS = [("breast_lesion", 2, "Two"), ("cervix_multi", 3, "Three"), ("cardiac_multi", 4, "Four"), ("fetal_abdomen_multi", 5, "Five")]
CLS_TASKS = [("breast_3cls", 3), ("lung_2cls", 2)]
COLUMNS = ["task_id", "task_name", "num_classes", "image_path", "mask_path", "mask",
           "x_min", "y_min", "x_max", "y_max", "point_1_xy", "point_2_xy"]


# -- a data root ------------------------------------------------------------------

def build_root(root: str, per_task: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    rows = []

    def image(rel: str, h: int, w: int) -> None:
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        cv2.imwrite(path, rng.integers(0, 255, size=(h, w), dtype=np.uint8))

    for task, n, folder in SEG_TASKS:
        for i in range(per_task):
            h, w = int(rng.integers(400, 720)), int(rng.integers(500, 900))
            mask = np.zeros((h, w), np.uint8)
            for c in range(1, n):
                centre = (int(rng.integers(w // 4, 3 * w // 4)), int(rng.integers(h // 4, 3 * h // 4)))
                axes = (int(rng.integers(30, w // 4)), int(rng.integers(30, h // 4)))
                cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, c, -1)
            rel_img = f"Segmentation/{folder}/{task}/IMAGES/{i:04d}.png"
            rel_mask = f"Segmentation/{folder}/{task}/MASKS/{i:04d}.png"
            image(rel_img, h, w)
            os.makedirs(os.path.dirname(os.path.join(root, rel_mask)), exist_ok=True)
            cv2.imwrite(os.path.join(root, rel_mask), mask)
            rows.append({"task_id": task, "task_name": "segmentation", "num_classes": n,
                         "image_path": f"../{rel_img}", "mask_path": f"../{rel_mask}"})
    for task, n in CLS_TASKS:
        for i in range(per_task * 4):
            rel = f"Classification/{task}/{i:04d}.png"
            image(rel, 64, 64)
            rows.append({"task_id": task, "task_name": "classification", "num_classes": n,
                         "image_path": f"../{rel}", "mask": int(rng.integers(0, n))})
    for i in range(per_task * 2):
        rel = f"Detection/thyroid_nodule_det/{i:04d}.png"
        image(rel, 300, 400)
        x0, y0 = rng.uniform(0, 200), rng.uniform(0, 150)
        rows.append({"task_id": "thyroid_nodule_det", "task_name": "detection", "num_classes": 1, "image_path": f"../{rel}",
                     "x_min": x0, "y_min": y0, "x_max": x0 + rng.uniform(20, 180), "y_max": y0 + rng.uniform(20, 140)})
    for i in range(per_task * 2):
        rel = f"Regression/FUGC/{i:04d}.png"
        image(rel, 300, 400)
        rows.append({"task_id": "FUGC", "task_name": "Regression", "num_classes": 2, "image_path": f"../{rel}",
                     "point_1_xy": json.dumps([float(rng.uniform(0, 400)), float(rng.uniform(0, 300))]),
                     "point_2_xy": json.dumps([float(rng.uniform(0, 400)), float(rng.uniform(0, 300))])})
    os.makedirs(os.path.join(root, "csv_files"), exist_ok=True)
    with open(os.path.join(root, "csv_files", "test.csv"), "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def synth_root(tmp: str, per_task: int, all_tasks: bool = False) -> str:
    """A labelled test split from ``fmuia synth``: every segmentation task and one of each
    other kind, or (``all_tasks``) every task."""
    from fmuia.tasks import Kind, fmuia2026

    registry = fmuia2026()
    tasks = [t.task_id for t in registry.of_kind(Kind.SEGMENTATION)]
    tasks += [registry.of_kind(kind)[0].task_id for kind in (Kind.CLASSIFICATION, Kind.DETECTION, Kind.KEYPOINTS)]
    if all_tasks:
        tasks = [t.task_id for t in registry]
    out = os.path.join(tmp, "synth")
    subprocess.run(
        [sys.executable, "-m", "fmuia", "synth", out, "--per-task", "1", "--val", "0", "--test", str(per_task),
         "--tasks", ",".join(tasks), "--seed", "0"],
        check=True, stdout=subprocess.DEVNULL,
    )
    return os.path.join(out, "test")


# -- the straightforward scorer ---------------------------------------------------

def _class_scores(pred: np.ndarray, gt: np.ndarray, n: int) -> tuple[list[float], list[float]]:
    dices, hds = [], []
    h, w = gt.shape
    for c in range(n):
        p = (pred == c).astype(np.uint8)
        g = (gt == c).astype(np.uint8)
        total = int(p.sum()) + int(g.sum())
        dices.append(1.0 if total == 0 else 2.0 * float((p * g).sum()) / total)
        if p.sum() == 0 and g.sum() == 0:
            hds.append(0.0)
        elif p.sum() == 0 or g.sum() == 0:
            hds.append(float(np.sqrt(h**2 + w**2)))
        else:
            f = sitk.HausdorffDistanceImageFilter()
            f.Execute(sitk.GetImageFromArray(p * 255), sitk.GetImageFromArray(g * 255))
            hds.append(f.GetHausdorffDistance())
    return dices, hds


def straightforward_scores(root: str, pred_dir: str) -> dict[str, dict[str, float]]:
    csv_dir = os.path.join(root, "csv_files")
    df = pd.concat([pd.read_csv(f) for f in glob.glob(os.path.join(csv_dir, "*.csv"))], ignore_index=True)
    out: dict[str, dict[str, float]] = {}
    preds = {}
    for name in ("classification", "detection", "regression"):
        path = os.path.join(pred_dir, f"{name}_predictions.json")
        preds[name] = {(p["task_id"], p["image_path"]): p for p in json.load(open(path))} if os.path.exists(path) else {}
    for task_id in df["task_id"].unique():
        rows = df[df["task_id"] == task_id]
        kind, n = rows.iloc[0]["task_name"], int(rows.iloc[0]["num_classes"])
        if kind == "segmentation":
            per_class_d, per_class_h = [[] for _ in range(n)], [[] for _ in range(n)]
            for _, row in rows.iterrows():
                gt = cv2.imread(os.path.normpath(os.path.join(csv_dir, row["mask_path"])), cv2.IMREAD_GRAYSCALE)
                pred_file = os.path.join(pred_dir, row["mask_path"].replace("../", ""))
                if not os.path.exists(pred_file):
                    continue
                pred = cv2.imread(pred_file, cv2.IMREAD_GRAYSCALE)
                if pred.shape != gt.shape:
                    pred = cv2.resize(pred, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_NEAREST)
                d, h = _class_scores(pred, gt, n)
                for c in range(n):
                    per_class_d[c].append(d[c])
                    per_class_h[c].append(h[c])
            out[task_id] = {"DSC": float(np.mean([np.mean(v) for v in per_class_d[1:]])),
                            "HD": float(np.mean([np.mean(v) for v in per_class_h[1:]]))}
        elif kind == "classification":
            y, yp, pr = [], [], []
            for _, row in rows.iterrows():
                p = preds["classification"].get((task_id, row["image_path"]))
                if p is not None:
                    y.append(int(row["mask"]))
                    yp.append(p["predicted_class"])
                    pr.append(p["predicted_probs"])
            y, yp, pr = np.array(y), np.array(yp), np.array(pr)
            try:
                auc = roc_auc_score(y, pr[:, 1]) if n == 2 else roc_auc_score(y, pr, average="macro", multi_class="ovr")
            except ValueError:
                auc = 0.0
            out[task_id] = {"Accuracy": float(np.mean(y == yp)), "AUC": float(auc),
                            "F1_macro": float(f1_score(y, yp, average="macro", zero_division=0)),
                            "F1_weighted": float(f1_score(y, yp, average="weighted", zero_division=0)),
                            "MCC": float(matthews_corrcoef(y, yp))}
        elif kind == "detection":
            ious = []
            for _, row in rows.iterrows():
                p = preds["detection"].get((task_id, row["image_path"]))
                if p is None:
                    continue
                a, b = p["bbox_pixels"], [row["x_min"], row["y_min"], row["x_max"], row["y_max"]]
                inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
                union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
                ious.append(0.0 if union == 0 else inter / union)
            out[task_id] = {"IoU": float(np.mean(ious))}
        else:
            errors = []
            for _, row in rows.iterrows():
                p = preds["regression"].get((task_id, row["image_path"]))
                if p is None:
                    continue
                gt = np.array([json.loads(row[f"point_{k + 1}_xy"]) for k in range(n)])
                errors.append(np.linalg.norm(np.array(p["predicted_points_pixels"]).reshape(-1, 2) - gt, axis=1).mean())
            out[task_id] = {"MRE": float(np.mean(errors))}
    return out


# -- the comparison ----------------------------------------------------------------

def _timed(fn) -> tuple[float, float]:
    """Wall seconds and CPU seconds (this process's threads and finished child processes)."""
    t0, c0 = time.perf_counter(), os.times()
    fn()
    t1, c1 = time.perf_counter(), os.times()
    cpu = (c1.user + c1.system + c1.children_user + c1.children_system) - (c0.user + c0.system + c0.children_user + c0.children_system)
    return t1 - t0, cpu


RESULT_FILES = ("results.json", "summary.txt", "per_task.csv", "per_sample.csv", "missing.csv", "extra.csv")
THIS_SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")


def _evaluate_process(src: str, root: str, pred: str, out: str, workers: int) -> tuple[float, float]:
    """Wall and CPU seconds of ``python -m fmuia evaluate`` importing fmuia from ``src``."""
    env = {**os.environ, "PYTHONPATH": src}
    command = [sys.executable, "-m", "fmuia", "evaluate", "--data", root, "--pred", pred, "--out", out,
               "--workers", str(workers)]
    return _timed(lambda: subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL))


def compare_versions(root: str, pred: str, tmp: str, against: str, repeats: int, workers: int) -> int:
    """``fmuia evaluate`` of this checkout against that of ``against``, both as processes."""
    versions = {"this checkout": THIS_SRC, "--against": os.path.abspath(against)}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in versions}
    for _ in range(repeats):  # interleaved, so a busy machine slows both alike
        for name, src in versions.items():
            times[name].append(_evaluate_process(src, root, pred, os.path.join(tmp, name), workers))
    for name, src in versions.items():
        walls, cpus = [t[0] for t in times[name]], [t[1] for t in times[name]]
        print(f"{name} ({src}): median {statistics.median(walls):.2f} s wall, {statistics.median(cpus):.2f} s CPU"
              f"   runs {[round(x, 2) for x in walls]}")
    mine, other = (statistics.median(t[0] for t in times[name]) for name in versions)
    mine_cpu, other_cpu = (statistics.median(t[1] for t in times[name]) for name in versions)
    print(f"speed-up of this checkout: {other / mine:.2f}x wall, {other_cpu / mine_cpu:.2f}x CPU")
    same, numbers_same, differ = [], [], []
    for f in RESULT_FILES:
        mine_text, other_text = (open(os.path.join(tmp, name, f), encoding="utf-8").read() for name in versions)
        if mine_text == other_text:
            same.append(f)
        elif _same_numbers(f, mine_text, other_text):
            numbers_same.append(f)
        else:
            differ.append(f)
    print("result files byte-identical: " + (", ".join(same) or "none"))
    if numbers_same:
        print("every number identical, wording or added fields differ: " + ", ".join(numbers_same))
    if differ:
        print("result files DIFFER: " + ", ".join(differ))
    return 1 if differ else 0


def _same_numbers(name: str, mine: str, other: str) -> bool:
    """Whether two versions' result file holds the same numbers: a JSON file every value
    of the other version's (fields this version adds are not compared); a text file the
    same numbers in the same order (a headline may be worded anew)."""
    if name.endswith(".json"):
        def covered(old, new) -> bool:
            if isinstance(old, dict):
                return isinstance(new, dict) and all(k in new and covered(v, new[k]) for k, v in old.items())
            if isinstance(old, list):
                return isinstance(new, list) and len(old) == len(new) and all(map(covered, old, new))
            return old == new
        return covered(json.loads(other), json.loads(mine))
    if name.endswith(".txt"):
        number = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")
        # "over 27 of 27 tasks" repeats the task count: counted once on each side
        return _numbers(number, mine) == _numbers(number, other)
    return False


def _numbers(pattern, text: str) -> list[str]:
    found = pattern.findall(text)
    return [n for i, n in enumerate(found) if i == 0 or n != found[i - 1]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-task", type=int, default=20, help="test samples per task")
    ap.add_argument("--data", default="synth", metavar="synth|builtin|DATA_ROOT",
                    help="synthetic split from 'fmuia synth', ellipses built here, or an existing labelled data root")
    ap.add_argument("--all-tasks", action="store_true", help="the synthetic split covers all 27 tasks (default: every "
                                                             "segmentation task and one of each other kind)")
    ap.add_argument("--against", metavar="SRC", help="time 'fmuia evaluate' processes of this checkout and of the "
                                                     "fmuia package under SRC instead, and compare their result files")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved runs of each (default 3; medians reported)")
    ap.add_argument("--workers", type=int, default=2, help="--workers of fmuia evaluate (default 2)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the perturbed submission's warnings are expected

    with tempfile.TemporaryDirectory() as tmp:
        pred = os.path.join(tmp, "pred")
        if args.data == "synth":
            root = synth_root(tmp, args.per_task, args.all_tasks)
        elif args.data == "builtin":
            root = os.path.join(tmp, "data")
            build_root(root, args.per_task)
        elif os.path.isdir(os.path.join(args.data, "csv_files")):
            root = args.data
        else:
            ap.error(f"--data: {args.data!r} is neither synth, builtin nor a data root with csv_files/")
        write_truth_submission(root, pred, noise=0.4, drop=0.02, seed=1)
        if args.against:
            return compare_versions(root, pred, tmp, args.against, args.repeats, args.workers)
        df = pd.concat([pd.read_csv(f) for f in glob.glob(os.path.join(root, "csv_files", "*.csv"))])
        seg = df[df["task_name"] == "segmentation"]
        h, w = cv2.imread(os.path.join(root, "csv_files", seg.iloc[0]["mask_path"]), cv2.IMREAD_GRAYSCALE).shape
        print(f"data ({args.data}): {len(seg)} segmentation masks of {seg['task_id'].nunique()} tasks "
              f"(first {h}x{w}) + {len(df) - len(seg)} other rows; {args.repeats} interleaved runs each")

        fast_times, slow_times, fast_cpu, slow_cpu = [], [], [], []
        for _ in range(args.repeats):  # interleaved, so a busy machine slows both alike
            wall, cpu = _timed(lambda: evaluate(root, pred, workers=args.workers))
            fast_times.append(wall)
            fast_cpu.append(cpu)
            wall, cpu = _timed(lambda: straightforward_scores(root, pred))
            slow_times.append(wall)
            slow_cpu.append(cpu)
        ev = evaluate(root, pred, workers=args.workers)
        reference = straightforward_scores(root, pred)
        # The floor both share: decoding every truth and predicted mask once.
        masks = [os.path.normpath(os.path.join(root, "csv_files", m)) for m in seg["mask_path"]]
        masks += [os.path.join(pred, m.replace("../", "")) for m in seg["mask_path"]]
        decode_cpu = statistics.median(
            _timed(lambda: [cv2.imread(m, cv2.IMREAD_GRAYSCALE) for m in masks if os.path.exists(m)])[1]
            for _ in range(args.repeats)
        )

    worst = 0.0
    for r in ev.tasks:
        for name, value in reference[r.task_id].items():
            ours = r.metrics[name]
            ours = 0.0 if ours is None else ours  # the straightforward scorer writes 0 for undefined
            worst = max(worst, abs(ours - value))
    fast, slow = statistics.median(fast_times), statistics.median(slow_times)
    print(f"fmuia evaluate (workers={args.workers}): median {fast:.2f} s wall, {statistics.median(fast_cpu):.2f} s CPU"
          f"   runs {[round(x, 2) for x in fast_times]}")
    print(f"per-sample, per-class SimpleITK scorer: median {slow:.2f} s wall, {statistics.median(slow_cpu):.2f} s CPU"
          f"   runs {[round(x, 2) for x in slow_times]}")
    print(f"speed-up: {slow / fast:.1f}x wall, {statistics.median(slow_cpu) / statistics.median(fast_cpu):.1f}x CPU   "
          f"largest metric difference: {worst:.2e}   challenge score {ev.summary.challenge_score:.4f}")
    print(f"decoding the masks alone: {decode_cpu:.2f} s CPU ({decode_cpu / statistics.median(fast_cpu):.0%} of fmuia's CPU time)")
    if worst > 1e-9:
        print("FAIL: the two scorers disagree", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
