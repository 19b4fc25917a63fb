"""Tiny datasets in the FM_UIA layout, written by the tests (32x32 images)."""
from __future__ import annotations

import csv
import json
import os

import cv2
import numpy as np

COLUMNS = [
    "task_id", "task_name", "num_classes", "image_path", "mask_path", "mask",
    "x_min", "y_min", "x_max", "y_max", "point_1_xy", "point_2_xy", "point_3_xy",
]


def write_image(path: str, h: int = 32, w: int = 32, channels: int = 1, seed: int = 0, dtype=np.uint8) -> None:
    rng = np.random.default_rng(seed)
    hi = 255 if dtype == np.uint8 else 65535
    shape = (h, w) if channels == 1 else (h, w, channels)
    img = rng.integers(0, hi, size=shape, dtype=np.int64).astype(dtype)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(path, img)


def write_mask(path: str, h: int = 32, w: int = 32, n: int = 2, value: int | None = None) -> None:
    m = np.zeros((h, w), np.uint8)
    for c in range(1, n):
        m[4 * c : 4 * c + 6, 5:20] = c
    if value is not None:
        m[0, 0] = value
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(path, m)


def write_csv(path: str, rows: list[dict], columns: list[str] = COLUMNS) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns)
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in columns})


def seg_row(i: int, task="breast_lesion", n=2, folder="Two"):
    return {
        "task_id": task, "task_name": "segmentation", "num_classes": n,
        "image_path": f"../Segmentation/{folder}/{task}/IMAGES/{i:03d}.png",
        "mask_path": f"../Segmentation/{folder}/{task}/MASKS/{i:03d}.png",
    }


def cls_row(i: int, label=1, task="breast_2cls", n=2):
    return {"task_id": task, "task_name": "classification", "num_classes": n,
            "image_path": f"../Classification/{task}/{i:03d}.png", "mask": label}


def det_row(i: int, box=(4, 5, 20, 25), task="thyroid_nodule_det"):
    return {"task_id": task, "task_name": "detection", "num_classes": 1,
            "image_path": f"../Detection/{task}/{i:03d}.jpg",
            **dict(zip(["x_min", "y_min", "x_max", "y_max"], box))}


def kp_row(i: int, points=((3, 4), (20.5, 11)), task="FUGC"):
    row = {"task_id": task, "task_name": "Regression", "num_classes": len(points),
           "image_path": f"../Regression/{task}/{i:03d}.png"}
    for k, p in enumerate(points):
        row[f"point_{k + 1}_xy"] = json.dumps(list(p))
    return row


def materialise(root: str, rows: list[dict], csv_name: str = "data.csv") -> None:
    """Write the CSV and every file its rows name (valid 32x32 images and masks)."""
    csv_dir = os.path.join(root, "csv_files")
    for i, r in enumerate(rows):
        img = os.path.normpath(os.path.join(csv_dir, r["image_path"]))
        if not os.path.exists(img):
            write_image(img, seed=i, channels=1 if i % 2 else 3)
        if r.get("mask_path"):
            m = os.path.normpath(os.path.join(csv_dir, r["mask_path"]))
            if not os.path.exists(m):
                write_mask(m, n=int(r["num_classes"]))
    write_csv(os.path.join(csv_dir, csv_name), rows)


def valid_rows() -> list[dict]:
    return (
        [seg_row(i) for i in range(3)]
        + [seg_row(i, task="cardiac_multi", n=4, folder="Four") for i in range(2)]
        + [cls_row(i, label=i % 2) for i in range(4)]
        + [det_row(i) for i in range(2)]
        + [kp_row(i) for i in range(2)]
    )


def training_rows() -> list[dict]:
    """Six samples of each kind, labels varied enough for a short training run."""
    return (
        [seg_row(i) for i in range(6)]
        + [cls_row(i, label=i % 2) for i in range(6)]
        + [det_row(i, box=(4 + i, 5, 20 + i, 25)) for i in range(6)]
        + [kp_row(i, points=((3 + i, 4), (20.5, 11 + i))) for i in range(6)]
    )
