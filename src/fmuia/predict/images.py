"""Turning what a user hands the Python API into the RGB uint8 array the model reads:
a numpy array, a PIL image, an image file, or a DICOM file (one frame of a cine)."""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from fmuia.errors import DataError
from fmuia.io.dicom import is_dicom, read_dicom
from fmuia.io.images import read_image

__all__ = ["array_to_uint8", "as_rgb"]

# Bit depths an integer array may hold, tried smallest first.
_BIT_DEPTHS = (8, 10, 12, 14, 16, 24, 32, 48, 64)

# PIL modes whose pixels numpy reads directly; others are converted by PIL to RGB.
_PIL_ARRAY_MODES = ("L", "RGB", "RGBA", "I;16", "I;16L", "I;16B", "I", "F")


def _scale(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``[lo, hi]`` onto 0..255, rounded to nearest; every value lies within the range."""
    return np.floor((values.astype(np.float64) - lo) * (255.0 / (hi - lo)) + 0.5).astype(np.uint8)


def array_to_uint8(image: np.ndarray, name: str = "image") -> np.ndarray:
    """An array's intensities as uint8 by the rules of ``as_rgb``; ``name`` is the
    argument named in errors."""
    dtype = image.dtype
    if dtype == np.uint8:
        return image
    if dtype == np.bool_ or not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise DataError(f"{name}: unsupported array dtype {dtype} (give uint8/16/32, int8/16/32 or float pixels)")
    if np.issubdtype(dtype, np.floating):
        if not np.isfinite(image).all():
            raise DataError(f"{name}: float array holds NaN or infinite values")
        lo, hi = float(image.min()), float(image.max())
        if lo >= 0.0 and hi <= 1.0:
            return _scale(image, 0.0, 1.0)
        if lo >= 0.0 and hi <= 255.0:
            return _scale(image, 0.0, 255.0)
        raise DataError(f"{name}: float array values span [{lo:g}, {hi:g}]; expected [0, 1] or [0, 255] (scale it first)")
    lo, hi = int(image.min()), int(image.max())
    if lo < 0:
        info = np.iinfo(dtype)
        return _scale(image, float(info.min), float(info.max))
    bits = next(b for b in _BIT_DEPTHS if hi < 2**b)
    return image.astype(np.uint8) if bits == 8 else _scale(image, 0.0, float(2**bits - 1))


def _array_to_rgb(image: np.ndarray, name: str) -> np.ndarray:
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4) or 0 in image.shape:
        raise DataError(f"{name}: an image array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got shape {image.shape}")
    # Alpha is dropped before the intensity rules so that it cannot change the bit depth.
    rgb = array_to_uint8(image[:, :, :3], name)
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    return np.ascontiguousarray(rgb)


def as_rgb(image: Any, frame: int | None = None, name: str = "image") -> np.ndarray:
    """RGB uint8 (H, W, 3) from an array, a PIL image, an image file path or a DICOM
    file path (``frame`` picks a frame of a DICOM cine).

    Arrays are gray (H, W) or (H, W, 1), RGB (H, W, 3) or RGBA (H, W, 4, alpha
    dropped), in numpy/PIL channel order. Their intensities become 0..255 without
    any silent clipping:

    - uint8: as is.
    - unsigned integers (and signed ones with no negative value): the bit depth is
      the smallest of 8, 10, 12, 14, 16, 24, 32, 48, 64 bits that holds the array's
      maximum, and ``0 .. 2^bits - 1`` is mapped onto 0..255. A uint16 array whose
      maximum is below 4096 is thus read as 12-bit data (4095 -> 255), one with a
      maximum of at most 255 as 8-bit data (unchanged).
    - signed integers with negative values: the dtype's whole range is mapped onto
      0..255 (int8: ``v + 128``), so that the data itself is not stretched.
    - float: values in [0, 1] are scaled by 255, otherwise values in [0, 255] are
      taken as they are; other ranges, NaN and infinities are refused.
    - anything else (bool, complex, object, ...) is refused.

    Every mapping rounds to nearest. A PIL image in mode L, RGB, RGBA, I;16, I or F
    follows the same rules on its pixels; other modes (palette, CMYK, ...) are
    converted by PIL to RGB. Files: images as ``fmuia.io.images.read_image``, DICOM
    as ``fmuia.io.dicom.read_dicom``. Every refusal is a ``DataError`` naming the
    argument (``name``) or the file.
    """
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not os.path.isfile(path):
            raise DataError(f"{path}: file not found")
        if is_dicom(path):
            return read_dicom(path, frame=frame)
        if frame not in (None, 0):
            raise DataError(f"{path}: frame= applies to DICOM files only")
        return read_image(path)
    if frame not in (None, 0):
        raise DataError(f"{name}: frame= applies to DICOM files only")
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        if image.mode not in _PIL_ARRAY_MODES:
            image = image.convert("RGB")
        return _array_to_rgb(np.asarray(image), name)
    if isinstance(image, np.ndarray):
        return _array_to_rgb(image, name)
    raise DataError(f"{name}: cannot read an image from {type(image).__name__} (give an array, a PIL image or a file path)")
