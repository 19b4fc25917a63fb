"""A contact sheet of the synthetic data: one sample per task with its label drawn on it."""
from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from fmuia import kinds
from fmuia.io.atomic import write_file
from fmuia.io.outputs import check_writable
from fmuia.kinds.drawing import ACCENT
from fmuia.synthetic.sampler import SyntheticSample, synthesize
from fmuia.synthetic.writer import resolve_tasks
from fmuia.tasks import TaskRegistry

def _caption(sample: SyntheticSample) -> str:
    return kinds.kind_of(sample.task).caption(sample.task, sample.label, sample.note)


def draw_label(sample: SyntheticSample) -> np.ndarray:
    """The sample's image (RGB) with its label drawn over it (by the task's kind)."""
    img = sample.image if sample.image.ndim == 3 else np.repeat(sample.image[..., None], 3, axis=2)
    img = img.copy()
    thick = max(1, round(img.shape[0] / 220))
    kinds.kind_of(sample.task).draw_label(img, sample.task, sample.label, thick)
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
    check_writable(path, "the gallery", folder=False)
    tiles = [_tile(synthesize(task, seed, "gallery", index), *tile) for task in registry]
    while len(tiles) % columns:
        tiles.append(np.full_like(tiles[0], 24))
    sheet = np.vstack([np.hstack(tiles[i : i + columns]) for i in range(0, len(tiles), columns)])
    # A 256-colour palette keeps the sheet small enough to keep in a repository.
    palette = Image.fromarray(sheet).quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    write_file(path, lambda fh: palette.save(fh, format="PNG", optimize=True))
    return path
