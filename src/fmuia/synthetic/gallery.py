"""A contact sheet of the synthetic data: one sample per task with its label drawn on it."""
from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from fmuia.io.atomic import write_file
from fmuia.synthetic.sampler import SyntheticSample, synthesize
from fmuia.synthetic.writer import resolve_tasks
from fmuia.tasks import Kind, TaskRegistry

# Overlay colours (RGB) of classes 1.. of segmentation masks.
PALETTE = np.array([(255, 80, 80), (80, 200, 255), (255, 210, 60), (120, 255, 120), (220, 120, 255)], np.uint8)
ACCENT = (255, 220, 0)


def _caption(sample: SyntheticSample) -> str:
    task = sample.task
    if task.kind is Kind.CLASSIFICATION:
        name = task.class_name(int(sample.label))
        note = f" ({sample.note})" if sample.note and sample.note != name else ""
        return f"class {int(sample.label)}: {name}{note}" if name != str(sample.label) else f"class {int(sample.label)}{note}"
    if task.kind is Kind.SEGMENTATION:
        present = sorted(int(c) for c in np.unique(sample.label) if c)
        return f"mask classes {present}"
    if task.kind is Kind.DETECTION:
        return "box " + ", ".join(f"{v:g}" for v in sample.label)
    return f"{len(sample.label)} points"


def draw_label(sample: SyntheticSample) -> np.ndarray:
    """The sample's image (RGB) with its label drawn over it."""
    img = sample.image if sample.image.ndim == 3 else np.repeat(sample.image[..., None], 3, axis=2)
    img = img.copy()
    kind = sample.task.kind
    thick = max(1, round(img.shape[0] / 220))
    if kind is Kind.SEGMENTATION:
        for c in range(1, sample.task.n):
            region = sample.label == c
            if not region.any():
                continue
            colour = PALETTE[(c - 1) % len(PALETTE)]
            img[region] = (0.6 * img[region] + 0.4 * colour).astype(np.uint8)
            contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(img, contours, -1, tuple(int(v) for v in colour), thick)
    elif kind is Kind.DETECTION:
        x0, y0, x1, y1 = (int(round(v)) for v in sample.label)
        cv2.rectangle(img, (x0, y0), (x1 - 1, y1 - 1), ACCENT, thick)
    elif kind is Kind.KEYPOINTS:
        pts = [(int(round(x)), int(round(y))) for x, y in sample.label]
        for a, b in zip(pts, pts[1:]):
            cv2.line(img, a, b, (0, 255, 160), 1, cv2.LINE_AA)
        for k, p in enumerate(pts):
            cv2.circle(img, p, 3 * thick + 1, ACCENT, -1, cv2.LINE_AA)
            cv2.putText(img, str(k + 1), (p[0] + 5, p[1] - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45 * thick, ACCENT, thick, cv2.LINE_AA)
    return img


def _tile(sample: SyntheticSample, height: int, width: int) -> np.ndarray:
    img = draw_label(sample)
    h, w = img.shape[:2]
    scale = min((height - 34) / h, width / w)
    img = cv2.resize(img, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
    tile = np.full((height, width, 3), 24, np.uint8)
    y0, x0 = 18, (width - img.shape[1]) // 2
    tile[y0 : y0 + img.shape[0], x0 : x0 + img.shape[1]] = img
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(tile, f"{sample.task.task_id} ({sample.task.kind.csv_name})", (4, 13), font, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    cv2.putText(tile, _caption(sample)[:48], (4, height - 5), font, 0.37, ACCENT, 1, cv2.LINE_AA)
    return tile


def render_gallery(
    path: str,
    seed: int = 0,
    tasks: list[str] | None = None,
    registry: TaskRegistry | None = None,
    columns: int = 6,
    tile: tuple[int, int] = (230, 270),
    index: int = 0,
) -> str:
    """Draw sample ``index`` of every task (split ``gallery``) with its label into one
    PNG at ``path``; ``tile`` is each cell's (height, width). Returns ``path``."""
    registry = resolve_tasks(tasks, registry)
    tiles = [_tile(synthesize(task, seed, "gallery", index), *tile) for task in registry]
    while len(tiles) % columns:
        tiles.append(np.full_like(tiles[0], 24))
    sheet = np.vstack([np.hstack(tiles[i : i + columns]) for i in range(0, len(tiles), columns)])
    # A 256-colour palette keeps the sheet small enough to keep in a repository.
    palette = Image.fromarray(sheet).quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    write_file(path, lambda fh: palette.save(fh, format="PNG", optimize=True))
    return path
