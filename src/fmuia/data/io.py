"""Reading images and masks from disk into the forms the rest of fmuia uses."""
from __future__ import annotations

import os

import cv2
import numpy as np
from PIL import Image

from fmuia.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

# OpenCV's own thread pool fights the DataLoader workers for the two cores; the
# loaders parallelise across samples instead.
cv2.setNumThreads(0)


def _imread(path: str) -> np.ndarray:
    if not os.path.isfile(path):
        raise DataError(f"{path}: file not found")
    # np.fromfile + imdecode handles any path encoding and reports decode failures as None.
    buf = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DataError(f"{path}: not a readable image (empty, truncated or unknown format)")
    return img


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Scale 16-bit or float images into uint8 without clipping information away."""
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        return (img.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    if np.issubdtype(img.dtype, np.floating):
        finite = img[np.isfinite(img)]
        hi = float(finite.max()) if finite.size else 1.0
        scale = 255.0 if hi <= 1.0 else 255.0 / hi
        return np.clip(np.nan_to_num(img) * scale, 0, 255).astype(np.uint8)
    return np.clip(img, 0, 255).astype(np.uint8)


def to_rgb(img: np.ndarray) -> np.ndarray:
    """Grayscale, BGR or BGRA (OpenCV's channel order) to RGB uint8."""
    img = to_uint8(img)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.ndim == 3 and img.shape[2] == 1:
        return cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2RGB)
    if img.ndim == 3 and img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    raise DataError(f"unsupported image shape {img.shape}")


def read_image(path: str) -> np.ndarray:
    """Read any PNG/JPG/BMP (gray, RGB, RGBA, 8 or 16 bit) as an RGB uint8 array (H, W, 3)."""
    img = _imread(path)
    try:
        return np.ascontiguousarray(to_rgb(img))
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None


def read_mask(path: str) -> np.ndarray:
    """Read a class-id mask as a 2-D uint8 array.

    A mask must be single-channel; a 3-channel file is accepted only when its
    channels are equal (some tools save gray as RGB), never silently reduced.
    """
    m = _imread(path)
    if m.ndim == 3:
        if m.shape[2] == 4:
            m = m[:, :, :3]
        if m.shape[2] == 1 or (np.array_equal(m[:, :, 0], m[:, :, 1]) and np.array_equal(m[:, :, 0], m[:, :, 2])):
            m = m[:, :, 0]
        else:
            raise DataError(f"{path}: mask has {m.shape[2]} different colour channels; expected a single-channel class-id PNG")
    if not np.issubdtype(m.dtype, np.integer):
        raise DataError(f"{path}: mask has non-integer pixel type {m.dtype}")
    if m.size and int(m.max()) > 255:
        raise DataError(f"{path}: mask value {int(m.max())} does not fit a class id (0..255)")
    return np.ascontiguousarray(m.astype(np.uint8))


def image_size(path: str) -> tuple[int, int]:
    """(height, width) from the file header, without decoding the pixels."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: file not found")
    try:
        with Image.open(path) as im:
            w, h = im.size
    except Exception as exc:  # PIL raises many types for corrupt files
        raise DataError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from None
    return int(h), int(w)
