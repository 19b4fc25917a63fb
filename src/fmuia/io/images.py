"""Reading image and mask files: the one place fmuia decodes PNG/JPG/BMP/TIFF pixels.

Every file that cannot be used - missing, empty, truncated, not an image, an
unsupported pixel type or channel count, or larger than ``MAX_PIXELS`` - is a
``DataError`` naming the file and the reason.

The pixel limit is checked from the header, before any pixel is decoded, so that a
small compressed file that claims a gigantic image (a decompression bomb) costs
nothing. ``MAX_PIXELS`` is 100 megapixels: ten times a large ultrasound frame, and
about 300 MB once decoded as RGB.
"""
from __future__ import annotations

import os
import re
import sys
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from fmuia.errors import DataError

__all__ = [
    "EXIF_ORIENTATIONS",
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "ImageHeader",
    "exif_orientation",
    "image_header",
    "image_size",
    "read_image",
    "read_mask",
    "read_predicted_mask",
    "set_exif_orientation",
    "to_rgb",
    "to_uint8",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

MAX_PIXELS = 100_000_000
_LIMIT_TEXT = f"{MAX_PIXELS // 1_000_000} megapixels"

# OpenCV's own thread pool fights the DataLoader workers for the two cores; the
# loaders parallelise across samples instead.
cv2.setNumThreads(0)

# Channels per PIL mode, for the header-level checks (modes not listed count as 3).
_MODE_CHANNELS = {"1": 1, "L": 1, "P": 1, "I": 1, "F": 1, "LA": 2, "PA": 2, "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3, "RGBA": 4, "RGBa": 4, "CMYK": 4}


# EXIF orientation (docs/format.md, "Image orientation"): the official reader,
# cv2.imread, turns a JPEG or PNG upright by its EXIF orientation tag, and the boxes and
# points of the challenge's CSVs are in pixels of that upright image. "apply" (the
# default) does the same; "ignore" reads the stored pixels as they are. The choice
# travels in the environment so that loader processes, forked or spawned, share it.
EXIF_ORIENTATIONS = ("apply", "ignore")
_ORIENTATION_ENV = "FMUIA_EXIF_ORIENTATION"
_ORIENTATION_TAG = 0x0112
_ORIENTED_FORMATS = ("JPEG", "MPO", "PNG")  # the formats whose tag OpenCV applies


def set_exif_orientation(mode: str) -> None:
    """``apply`` or ``ignore`` the EXIF orientation of every image read from now on,
    in this process and the processes it starts."""
    if mode not in EXIF_ORIENTATIONS:
        raise ValueError(f"EXIF orientation must be one of {EXIF_ORIENTATIONS}, got {mode!r}")
    os.environ[_ORIENTATION_ENV] = mode


def exif_orientation() -> str:
    """The EXIF orientation policy in force: ``apply`` (default) or ``ignore``."""
    return "ignore" if os.environ.get(_ORIENTATION_ENV) == "ignore" else "apply"


def _exif_orientation(im: Image.Image) -> int:
    """The EXIF orientation tag (1..8; 1 = upright) from what PIL read with the header
    (a PNG's eXIf chunk after its pixel data is not seen: that would need a decode)."""
    raw = im.info.get("exif") if im.format in _ORIENTED_FORMATS else None
    if not raw:
        return 1
    exif = Image.Exif()
    try:
        exif.load(raw)
        value = int(exif.get(_ORIENTATION_TAG, 1))
    except Exception:  # a malformed EXIF block is ignored, as OpenCV ignores it
        return 1
    return value if 1 <= value <= 8 else 1


def _orient(img: np.ndarray, orientation: int) -> np.ndarray:
    """The stored pixels turned upright by EXIF orientation 1..8 (as cv2.imread does)."""
    if orientation in (5, 6, 7, 8):
        img = img.swapaxes(0, 1)  # transpose; then the mirror that completes the turn
        flip = {5: None, 6: 1, 7: -1, 8: 0}[orientation]
    else:
        flip = {1: None, 2: 1, 3: -1, 4: 0}[orientation]
    if flip == 1:
        img = img[:, ::-1]
    elif flip == 0:
        img = img[::-1]
    elif flip == -1:
        img = img[::-1, ::-1]
    return np.ascontiguousarray(img)


@dataclass(frozen=True)
class ImageHeader:
    """What an image file's header says, read without decoding its pixels. ``height``
    and ``width`` are the upright image's (after the EXIF orientation, when applied)."""

    height: int
    width: int
    mode: str  # PIL's mode: "L", "RGB", "RGBA", "P" (palette), "I;16" (16-bit gray), ...
    format: str  # "PNG", "JPEG", "BMP", "TIFF", ...
    orientation: int = 1  # the EXIF orientation to apply to the stored pixels (1: none)

    @property
    def channels(self) -> int:
        return _MODE_CHANNELS.get(self.mode, 1 if self.mode.startswith(("I", "F")) else 3)

    @property
    def pixels(self) -> int:
        return self.height * self.width


def _check_file(path: str) -> None:
    if not os.path.isfile(path):
        raise DataError(f"{path}: file not found")
    if os.path.getsize(path) == 0:
        raise DataError(f"{path}: not a readable image (empty file, 0 bytes)")


def image_header(path: str) -> ImageHeader:
    """Size, mode and format from the file header, without decoding the pixels.

    Raises ``DataError`` for a missing, empty or unrecognised file and for an image
    over ``MAX_PIXELS``.
    """
    _check_file(path)
    try:
        with warnings.catch_warnings():
            # Our own pixel limit below replaces PIL's decompression-bomb guard.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                orientation = _exif_orientation(im) if exif_orientation() == "apply" else 1
                if orientation >= 5:  # a quarter turn: the upright image is w x h
                    w, h = h, w
                header = ImageHeader(height=int(h), width=int(w), mode=str(im.mode), format=str(im.format or "?"),
                                     orientation=orientation)
    except Image.DecompressionBombError as exc:
        # PIL's own guard fires first for the largest claims; it names only the count.
        count = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(count.group(1)):,} pixels" if count else "its size"
        raise DataError(f"{path}: image of {size} is over the limit of {_LIMIT_TEXT} (refused before decoding)") from None
    except Image.UnidentifiedImageError:
        raise DataError(f"{path}: not a readable image (not an image file of a known format)") from None
    except Exception as exc:  # PIL raises many types for corrupt headers
        raise DataError(f"{path}: not a readable image (corrupt header: {type(exc).__name__}: {exc})") from None
    if header.height <= 0 or header.width <= 0:
        raise DataError(f"{path}: image header gives an empty size {header.width}x{header.height}")
    if header.pixels > MAX_PIXELS:
        raise DataError(
            f"{path}: image of {header.width}x{header.height} pixels is over the limit of {_LIMIT_TEXT} (refused before decoding)"
        )
    return header


def image_size(path: str) -> tuple[int, int]:
    """(height, width) from the file header, without decoding the pixels."""
    header = image_header(path)
    return header.height, header.width


_native_stderr = {"lock": threading.Lock(), "depth": 0, "saved": None}


@contextmanager
def _native_stderr_silenced():
    """File descriptor 2 pointed at /dev/null around a native decode. libpng and libjpeg
    print their complaints ("libpng error: IDAT: incorrect data check", "Corrupt JPEG
    data: ...") straight to it, above fmuia's own message that names the file; the
    decode's result already says whether it failed. Reference-counted, as validation
    decodes on several threads at once; for the length of the decodes only, as a line
    another thread wrote meanwhile would be lost too (fmuia's decoding threads write none)."""
    state = _native_stderr
    with state["lock"]:
        if state["depth"] == 0:
            try:
                sys.stderr.flush()
                saved = os.dup(2)
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 2)
                os.close(devnull)
                state["saved"] = saved
            except (OSError, ValueError):  # no fd 2 to move (closed, or not a real stream)
                state["saved"] = None
        state["depth"] += 1
    try:
        yield
    finally:
        with state["lock"]:
            state["depth"] -= 1
            if state["depth"] == 0 and state["saved"] is not None:
                os.dup2(state["saved"], 2)
                os.close(state["saved"])
                state["saved"] = None


def _decode(path: str) -> tuple[np.ndarray, ImageHeader]:
    """The file's pixels as OpenCV decodes them unchanged (BGR order, native dtype),
    turned upright by the header's EXIF orientation."""
    header = image_header(path)
    # np.fromfile + imdecode handles any path encoding and reports decode failures as None.
    buf = np.fromfile(path, dtype=np.uint8)
    try:
        with _native_stderr_silenced():
            img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise DataError(f"{path}: not a readable image ({header.format} data cannot be decoded: {str(exc).strip().splitlines()[-1]})") from None
    if img is None:
        raise DataError(
            f"{path}: not a readable image (truncated or corrupt {header.format} pixel data; "
            f"the header says {header.width}x{header.height})"
        )
    if img.ndim == 3 and img.shape[2] not in (1, 3, 4):
        raise DataError(f"{path}: {img.shape[2]} channels are not supported (expected gray, RGB or RGBA)")
    if img.ndim not in (2, 3):
        raise DataError(f"{path}: unsupported image layout {img.shape}")
    if header.orientation != 1:
        img = _orient(img, header.orientation)
    return img, header


def to_uint8(img: np.ndarray) -> np.ndarray:
    """A decoded file's pixels as uint8: 16-bit scaled by 1/257 (65535 -> 255), float
    scaled from [0, 1] (or from [0, max] when brighter). Other pixel types are refused."""
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        return (img.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    if np.issubdtype(img.dtype, np.floating):
        finite = img[np.isfinite(img)]
        hi = float(finite.max()) if finite.size else 1.0
        scale = 255.0 if hi <= 1.0 else 255.0 / hi
        return np.clip(np.nan_to_num(img) * scale, 0, 255).astype(np.uint8)
    raise DataError(f"unsupported pixel type {img.dtype} (expected 8 or 16 bit integers, or float)")


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
    """Read any PNG/JPG/BMP/TIFF (gray, RGB, RGBA, 8 or 16 bit) as an RGB uint8 array (H, W, 3)."""
    img, _ = _decode(path)
    try:
        return np.ascontiguousarray(to_rgb(img))
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None


def read_mask(path: str) -> np.ndarray:
    """Read a ground-truth class-id mask as a 2-D uint8 array.

    A mask must be single-channel; a 3-channel file is accepted only when its
    channels are equal (some tools save gray as RGB), never silently reduced.
    A 16-bit file is accepted when every value fits a class id (0..255).
    """
    m, _ = _decode(path)
    if m.ndim == 3:
        if m.shape[2] == 4:
            m = m[:, :, :3]
        if m.shape[2] == 1 or (np.array_equal(m[:, :, 0], m[:, :, 1]) and np.array_equal(m[:, :, 0], m[:, :, 2])):
            m = m[:, :, 0]
        else:
            raise DataError(f"{path}: mask has {m.shape[2]} different colour channels; expected a single-channel class-id PNG")
    if not np.issubdtype(m.dtype, np.integer):
        raise DataError(f"{path}: mask has non-integer pixel type {m.dtype}")
    if m.size and int(m.min()) < 0:
        raise DataError(f"{path}: mask value {int(m.min())} is negative; expected class ids 0..255")
    if m.size and int(m.max()) > 255:
        raise DataError(f"{path}: mask value {int(m.max())} does not fit a class id (0..255)")
    return np.ascontiguousarray(m.astype(np.uint8))


# Why a predicted mask's PIL mode is refused, for a message that says what to fix.
_PREDICTED_MODE_PROBLEMS = {
    "1": "a 1-bit image (pixels read as 0/255, not class ids)",
    "P": "a palette image (pixels would be read as colours, not class ids)",
    "PA": "a palette image with alpha",
    "LA": "2 channels (gray + alpha)",
    "RGB": "3 channels",
    "RGBA": "4 channels",
    "I": "32-bit",
    "F": "32-bit float",
}


def read_predicted_mask(path: str) -> np.ndarray:
    """Read a *predicted* mask strictly, as the submission format defines it: a
    single-channel 8-bit PNG whose pixels are class ids (docs/format.md, "Submission files").

    16-bit, palette, 1-bit and multi-channel files are refused with the reason, even
    when their values would fit: a submission that needs them converted would not
    be read the same way by the challenge's scorer.
    """
    img, header = _decode(path)
    problem = _PREDICTED_MODE_PROBLEMS.get(header.mode)
    if problem is None and header.mode.startswith("I;16"):
        problem = "16-bit"
    if problem is None and (img.dtype != np.uint8 or img.ndim != 2):
        depth = {np.dtype(np.uint16): "16-bit"}.get(img.dtype, str(img.dtype))
        problem = f"{depth} with {1 if img.ndim == 2 else img.shape[2]} channel(s)"
    if problem is not None:
        raise DataError(f"{path}: predicted mask is {problem}; expected a single-channel 8-bit PNG of class ids")
    return np.ascontiguousarray(img)
