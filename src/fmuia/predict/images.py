"""Turning what a user hands the Python API into the RGB uint8 array the model reads:
a numpy array, a PIL image, an image file, or a DICOM file (one frame of a cine)."""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from fmuia.data.io import read_image, to_uint8
from fmuia.errors import DataError

DICOM_SUFFIXES = (".dcm", ".dicom")


def is_dicom(path: str) -> bool:
    """A ``.dcm`` name, or the ``DICM`` magic at byte 128 (DICOM files often have no suffix)."""
    if path.lower().endswith(DICOM_SUFFIXES):
        return True
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def _scale_to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Stretch a rescaled (float) frame's range onto 0..255."""
    pixels = pixels.astype(np.float64)
    finite = pixels[np.isfinite(pixels)]
    if finite.size == 0:
        return np.zeros(pixels.shape, np.uint8)
    lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        return np.zeros(pixels.shape, np.uint8)
    return np.clip(np.round((np.nan_to_num(pixels, nan=lo) - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


def read_dicom(path: str, frame: int | None = None) -> np.ndarray:
    """One frame of a DICOM file as RGB uint8 (H, W, 3).

    Multi-frame files (ultrasound cine loops) give frame ``frame`` (default the first).
    Colour data (RGB, YBR) is converted to RGB; grayscale data gets its modality
    rescale (slope/intercept) applied, MONOCHROME1 inverted (so that bright means
    echogenic, as in every other format), and is then stretched to 0..255 unless it
    already is 8-bit.
    """
    try:
        import pydicom
        from pydicom.pixels import apply_modality_lut, convert_color_space
    except ImportError:  # pragma: no cover - optional dependency
        raise DataError(f"{path}: reading DICOM needs pydicom (pip install 'fmuia[dicom]')") from None
    try:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array
    except Exception as exc:  # pydicom raises many types for invalid files
        raise DataError(f"{path}: not a readable DICOM image ({type(exc).__name__}: {exc})") from None

    n_frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    if n_frames > 1:
        index = 0 if frame is None else int(frame)
        if not 0 <= index < n_frames:
            raise DataError(f"{path}: frame {frame} requested but the file has {n_frames} frames (0..{n_frames - 1})")
        pixels = pixels[index]
    elif frame not in (None, 0):
        raise DataError(f"{path}: frame {frame} requested but the file holds a single frame")

    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper()
    if samples == 3:
        if photometric.startswith("YBR"):
            pixels = convert_color_space(pixels, photometric, "RGB")
        return np.ascontiguousarray(_scale_to_uint8(pixels) if pixels.dtype != np.uint8 else pixels)
    if samples != 1:
        raise DataError(f"{path}: {samples} samples per pixel is not supported (expected 1 or 3)")

    rescaled = "RescaleSlope" in ds or "RescaleIntercept" in ds
    if rescaled:
        pixels = apply_modality_lut(pixels, ds)
    if photometric == "MONOCHROME1":
        # MONOCHROME1: the lowest value is displayed white.
        pixels = pixels.max() + pixels.min() - pixels
    gray = pixels if pixels.dtype == np.uint8 else _scale_to_uint8(pixels)
    return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))


def as_rgb(image: Any, frame: int | None = None) -> np.ndarray:
    """RGB uint8 (H, W, 3) from an array (gray, RGB or RGBA, any dtype), a PIL image,
    an image file path or a DICOM file path."""
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
        raise DataError("frame= applies to DICOM files only")
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        return np.ascontiguousarray(np.asarray(image.convert("RGB")))
    if isinstance(image, np.ndarray):
        # Arrays from users follow the numpy/PIL convention: gray, RGB or RGBA.
        if image.ndim == 2:
            image = image[:, :, None]
        if image.ndim != 3 or image.shape[2] not in (1, 3, 4) or 0 in image.shape:
            raise DataError(f"an image array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got shape {image.shape}")
        rgb = to_uint8(image)[:, :, :3]
        if rgb.shape[2] == 1:
            rgb = np.repeat(rgb, 3, axis=2)
        return np.ascontiguousarray(rgb)
    raise DataError(f"cannot read an image from {type(image).__name__} (give an array, a PIL image or a file path)")
