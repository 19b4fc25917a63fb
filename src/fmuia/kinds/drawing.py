"""Drawing helpers shared by the kinds' overlays (report panels, gallery tiles)."""
from __future__ import annotations

import cv2
import numpy as np

TRUTH = (40, 200, 80)  # RGB: ground truth green
PREDICTED = (230, 40, 200)  # prediction magenta
ACCENT = (255, 220, 0)  # gallery labels
PANEL = 300  # longest side of a report thumbnail, pixels
# Overlay colours (RGB) of classes 1.. of segmentation masks.
PALETTE = np.array([(255, 80, 80), (80, 200, 255), (255, 210, 60), (120, 255, 120), (220, 120, 255)], np.uint8)


def thumbnail(image: np.ndarray) -> tuple[np.ndarray, float]:
    """The image scaled so its longest side is ``PANEL`` (at most 4x up), and the scale."""
    scale = PANEL / max(image.shape[:2])
    scale = min(scale, 4.0)
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST), scale


def contours(canvas: np.ndarray, mask: np.ndarray, colour) -> None:
    """Outline every non-zero class of ``mask`` (nearest-resized to the canvas)."""
    mask = cv2.resize(mask, (canvas.shape[1], canvas.shape[0]), interpolation=cv2.INTER_NEAREST)
    for c in np.unique(mask):
        if c == 0:
            continue
        found, _ = cv2.findContours((mask == c).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(canvas, found, -1, colour, 2)
