"""The unlabelled images of a pretraining run, from folders, files and fmuia data roots.

A source may be:

* an fmuia data root (a folder with ``csv_files/``): the images its CSV rows name,
  read with ``fmuia.data.layout`` (labels, masks and label problems are ignored:
  pretraining never reads them);
* any other folder: every PNG/JPEG/BMP/TIFF/DICOM file below it, recursively (hidden
  files and folders skipped);
* a single image or DICOM file.

Files are listed once each, sorted within a source, so that a run sees the same list
(and the same batches) every time. Pixels are read by ``fmuia.io``: images by
``read_image``, DICOM by ``read_dicom`` (first frame), both as RGB uint8.
"""
from __future__ import annotations

import os
from typing import Iterable

import numpy as np

from fmuia.data.layout import CSV_DIR, read_layout
from fmuia.errors import DataError
from fmuia.io.dicom import DICOM_SUFFIXES, is_dicom, read_dicom
from fmuia.io.images import IMAGE_EXTENSIONS, read_image

__all__ = ["collect_images", "read_pixels"]

SUFFIXES = IMAGE_EXTENSIONS + DICOM_SUFFIXES


def collect_images(sources: Iterable[str], min_images: int = 2) -> list[str]:
    """The image files of ``sources`` (see the module notes), without repeats.

    ``DataError`` names a source that does not exist or holds no image, and says so
    when there are fewer than ``min_images`` in all."""
    sources = list(sources)
    if not sources:
        raise DataError("--images: give at least one folder, data root or image file")
    seen: set[str] = set()
    files: list[str] = []
    for source in sources:
        found = _images_of(source)
        if not found:
            raise DataError(f"{source}: no image files (looked for {', '.join(SUFFIXES)}{_below(source)})")
        for path in found:
            key = os.path.realpath(path)
            if key not in seen:
                seen.add(key)
                files.append(path)
    if len(files) < min_images:
        raise DataError(f"--images: {len(files)} image(s) found in {', '.join(sources)}; pretraining needs at least "
                        f"{min_images} (data.min_images)")
    return files


def _below(source: str) -> str:
    return " in the rows of its CSVs" if os.path.isdir(os.path.join(source, CSV_DIR)) else \
        " below it, recursively" if os.path.isdir(source) else ""


def _images_of(source: str) -> list[str]:
    if os.path.isfile(source):
        if not (source.lower().endswith(SUFFIXES) or is_dicom(source)):
            raise DataError(f"{source}: not an image file (expected one of {', '.join(SUFFIXES)}, or a folder)")
        return [source]
    if not os.path.isdir(source):
        raise DataError(f"{source}: no such file or folder")
    if os.path.isdir(os.path.join(source, CSV_DIR)):
        layout = read_layout(source)
        return sorted({entry.image_file for entry in layout.entries})
    found = []
    for folder, dirs, names in os.walk(source):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(folder, n) for n in names if not n.startswith(".") and n.lower().endswith(SUFFIXES)]
    return sorted(found)


def read_pixels(path: str) -> np.ndarray:
    """An image or DICOM file (its first frame) as RGB uint8 (H, W, 3); ``DataError``
    naming the file when it cannot be read."""
    return read_dicom(path) if is_dicom(path) else read_image(path)
