"""Reading one frame of a DICOM file as the RGB uint8 image the network consumes.

The pixels go through pydicom's own pipeline, in the order of the DICOM standard's
grayscale and colour pipelines:

1. decode one frame (``index=frame``: only that frame of a cine is decompressed),
   with pydicom converting ``YBR_FULL`` / ``YBR_FULL_422`` to RGB; the JPEG 2000
   decoders return ``YBR_ICT`` / ``YBR_RCT`` as RGB already. The photometric
   interpretation *after* decoding, as pydicom reports it, decides what follows, so
   colour is never converted twice.
2. ``PALETTE COLOR``: ``apply_color_lut``; the LUT's nominal depth (8 or 16 bits,
   from its descriptor) is the range mapped onto 0..255.
3. ``MONOCHROME1`` / ``MONOCHROME2``: ``apply_modality_lut`` (Rescale Slope and
   Intercept, or a Modality LUT), then ``apply_voi_lut`` (the VOI LUT, else the
   first window) where the file has one.
4. The 8-bit mapping. Each value range is the one the header declares, never the
   data's own minimum and maximum, so a dark frame stays dark:

   ``out = floor((v - lo) * 255 / (hi - lo) + 0.5)``, clipped to 0..255, where
   ``[lo, hi]`` is

   - grayscale, no VOI LUT: the stored range (``BitsStored``, signed or not) sent
     through the rescale, or ``0 .. 2^d - 1`` for a Modality LUT of depth ``d``;
     a window maps onto this same range (that is what pydicom's windowing outputs);
   - a VOI LUT of depth ``d``: ``0 .. 2^d - 1``;
   - RGB: ``0 .. 2^BitsStored - 1``; palette colour: ``0 .. 2^d - 1`` as above.

   8-bit data therefore passes through unchanged. ``MONOCHROME1`` (low values
   displayed white) is then inverted as ``255 - out``: by its declared range, so
   that bright means echogenic as in every other format.
5. Grayscale is repeated into three channels; a palette's alpha is dropped.

A grayscale frame with no window (no VOI LUT, no Window Center) whose values span
less than ``SMALL_SPAN`` of the declared range (12-bit data in a file declaring 16
stored bits, a rescale that widens the range) reads nearly black by this rule: a
warning names the file, once per process. The ``dicom_range`` policy
(``set_dicom_range``, or ``value_range=`` per call) windows such frames from the data
instead: ``minmax`` (the frame's minimum and maximum) or ``percentile`` (its 0.5th
and 99.5th percentiles, robust to a few extreme pixels); ``declared`` (the default)
keeps the rule above. A frame with a window of its own always uses it.

Compressed transfer syntaxes need pydicom's decoder plugins (the ``dicom`` extra:
pylibjpeg with its libjpeg, openjpeg and rle plugins, and pyjpegls). A file whose
syntax has no installed decoder is a ``DataError`` naming the package to install.
"""
from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from fmuia.errors import DataError
from fmuia.io.images import MAX_PIXELS

__all__ = ["DICOM_RANGES", "DICOM_SUFFIXES", "is_dicom", "read_dicom", "set_dicom_range"]

log = logging.getLogger(__name__)

# How a grayscale frame without a window is mapped onto 0..255 (module docstring).
DICOM_RANGES = ("declared", "minmax", "percentile")
_RANGE_ENV = "FMUIA_DICOM_RANGE"  # in the environment: loader processes share the choice
SMALL_SPAN = 1 / 8  # of the declared range: below this, the frame reads nearly black
_PERCENTILES = (0.5, 99.5)
_WARNED: set[str] = set()


def set_dicom_range(mode: str) -> None:
    """How every DICOM frame without a window is mapped from now on, in this process
    and the processes it starts: ``declared`` (default), ``minmax`` or ``percentile``."""
    if mode not in DICOM_RANGES:
        raise ValueError(f"DICOM range must be one of {DICOM_RANGES}, got {mode!r}")
    os.environ[_RANGE_ENV] = mode

DICOM_SUFFIXES = (".dcm", ".dicom")

INSTALL_HINT = "pip install 'fmuia[dicom]'"

# The packages that give pydicom a decoder for each compressed transfer syntax.
_PLUGIN_PACKAGES = {
    "1.2.840.10008.1.2.4.50": "pylibjpeg pylibjpeg-libjpeg",  # JPEG baseline
    "1.2.840.10008.1.2.4.51": "pylibjpeg pylibjpeg-libjpeg",  # JPEG extended
    "1.2.840.10008.1.2.4.57": "pylibjpeg pylibjpeg-libjpeg",  # JPEG lossless
    "1.2.840.10008.1.2.4.70": "pylibjpeg pylibjpeg-libjpeg",  # JPEG lossless SV1
    "1.2.840.10008.1.2.4.80": "pyjpegls",  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.81": "pyjpegls",  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.90": "pylibjpeg pylibjpeg-openjpeg",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91": "pylibjpeg pylibjpeg-openjpeg",  # JPEG 2000
    "1.2.840.10008.1.2.4.201": "pylibjpeg pylibjpeg-openjpeg",  # HTJ2K lossless
    "1.2.840.10008.1.2.4.202": "pylibjpeg pylibjpeg-openjpeg",  # HTJ2K lossless RPCL
    "1.2.840.10008.1.2.4.203": "pylibjpeg pylibjpeg-openjpeg",  # HTJ2K
    "1.2.840.10008.1.2.5": "pylibjpeg pylibjpeg-rle",  # RLE lossless
}

_PALETTE_COLOURS = ("Red", "Green", "Blue", "Alpha")


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


def _last_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1] if lines else ''}"


def _to_uint8(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The module's 8-bit mapping of ``[lo, hi]`` onto 0..255 (see the module docstring)."""
    if not hi > lo:
        raise ValueError(f"empty value range [{lo}, {hi}]")
    scaled = np.floor((values.astype(np.float64) - lo) * (255.0 / (hi - lo)) + 0.5)
    return np.clip(scaled, 0, 255).astype(np.uint8)


def _stored_range(ds: Any) -> tuple[float, float]:
    bits = int(ds.BitsStored)
    if int(getattr(ds, "PixelRepresentation", 0) or 0) == 1:
        return -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1
    return 0.0, 2.0**bits - 1


def _gray_range(ds: Any) -> tuple[float, float]:
    """The value range of a grayscale frame after pydicom's modality and VOI LUT
    functions: what the 8-bit mapping spreads over 0..255."""
    voi = ds.get("VOILUTSequence")
    if voi and voi[0].get("LUTDescriptor") is not None and voi[0].get("LUTData") is not None:
        return 0.0, 2.0 ** int(voi[0].LUTDescriptor[2]) - 1
    modality = ds.get("ModalityLUTSequence")
    if modality:
        return 0.0, 2.0 ** int(modality[0].LUTDescriptor[2]) - 1
    lo, hi = _stored_range(ds)
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        lo, hi = sorted((lo * slope + intercept, hi * slope + intercept))
    return lo, hi


def _palette_luts(ds: Any) -> Any:
    """The palette colour LUT elements of ``ds`` in a little-endian dataset of their
    own: pydicom's ``apply_color_lut`` reads plain (not segmented) 16-bit LUT data as
    little-endian whatever the file's byte order, which darkens big-endian files
    256-fold, so their 16-bit LUT words are byte-swapped here."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    luts = Dataset()
    luts.file_meta = FileMetaDataset()
    luts.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    big_endian = not ds.file_meta.TransferSyntaxUID.is_little_endian
    for colour in _PALETTE_COLOURS:
        descriptor = f"{colour}PaletteColorLookupTableDescriptor"
        if descriptor not in ds:
            continue
        entries, _, depth = (int(v) for v in ds[descriptor].value)
        setattr(luts, descriptor, ds[descriptor].value)
        plain, segmented = f"{colour}PaletteColorLookupTableData", f"Segmented{colour}PaletteColorLookupTableData"
        for keyword, sixteen_bit in ((plain, lambda data: len(data) == 2 * (entries or 2**16)), (segmented, lambda data: depth == 16)):
            if keyword not in ds:
                continue
            data = ds[keyword].value
            if big_endian and isinstance(data, bytes) and sixteen_bit(data):
                data = np.frombuffer(data, dtype=">u2").astype("<u2").tobytes()
            setattr(luts, keyword, data)
    return luts


def _decoder(path: str, ds: Any) -> Any:
    from pydicom.pixels import get_decoder

    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if syntax is None:
        raise DataError(f"{path}: DICOM file without a Transfer Syntax UID; cannot tell how its pixels are encoded")
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise DataError(f"{path}: pixel data encoded as {syntax.name} ({syntax}), which pydicom cannot decode") from None
    if not decoder.is_available:
        packages = _PLUGIN_PACKAGES.get(str(syntax), " / ".join(decoder.missing_dependencies) or "a pydicom decoder plugin")
        raise DataError(
            f"{path}: pixel data compressed as {syntax.name} ({syntax}) needs a decoder plugin: "
            f"pip install {packages} (or {INSTALL_HINT})"
        )
    return decoder


def _frame_index(path: str, ds: Any, frame: int | None) -> int:
    n_frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    index = 0 if frame is None else int(frame)
    if n_frames == 1 and index != 0:
        raise DataError(f"{path}: frame {frame} requested but the file holds a single frame")
    if not 0 <= index < n_frames:
        raise DataError(f"{path}: frame {frame} requested but the file has {n_frames} frames (0..{n_frames - 1})")
    return index


def _has_window(ds: Any) -> bool:
    voi = ds.get("VOILUTSequence")
    return bool(voi) or ds.get("WindowCenter") is not None


def _gray_mapping(path: str, ds: Any, values: np.ndarray, value_range: str) -> tuple[float, float]:
    """The ``[lo, hi]`` the 8-bit mapping spreads over 0..255: the declared range, or for
    a frame without a window under ``minmax`` / ``percentile``, the data's own; a
    warning when the declared range leaves a frame without a window nearly black."""
    lo, hi = _gray_range(ds)
    if _has_window(ds) or not values.size:
        return lo, hi
    if value_range != "declared":
        data_lo, data_hi = ((float(values.min()), float(values.max())) if value_range == "minmax"
                            else (float(v) for v in np.percentile(values, _PERCENTILES)))
        return (data_lo, data_hi) if data_hi > data_lo else (lo, hi)
    v_lo, v_hi = float(values.min()), float(values.max())
    if (v_hi - v_lo) < SMALL_SPAN * (hi - lo) and path not in _WARNED:
        _WARNED.add(path)
        brightest = int(_to_uint8(np.array([v_hi]), lo, hi)[0])
        log.warning("warning: %s: the image's values %g..%g span %.1f%% of its declared range %g..%g and the file "
                    "gives no window, so it reads nearly black (brightest %d/255); a file declaring more stored bits "
                    "than its data has, or a rescale? Window it from the data with the DICOM range 'percentile' "
                    "(or 'minmax')", path, v_lo, v_hi, 100 * (v_hi - v_lo) / (hi - lo), lo, hi, brightest)
    return lo, hi


def _to_rgb(path: str, ds: Any, pixels: np.ndarray, photometric: str, value_range: str) -> np.ndarray:
    """Step 2 to 5 of the module docstring on one decoded frame."""
    from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut

    if photometric == "RGB":
        return _to_uint8(pixels, 0.0, 2.0 ** int(ds.BitsStored) - 1)
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(pixels, _palette_luts(ds))[..., :3]
        depth = int(ds.RedPaletteColorLookupTableDescriptor[2])
        return _to_uint8(rgb, 0.0, 2.0**depth - 1)
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise DataError(f"{path}: photometric interpretation {photometric!r} is not supported (expected MONOCHROME1/2, RGB, YBR_FULL(_422), YBR_ICT/RCT or PALETTE COLOR)")
    if np.issubdtype(pixels.dtype, np.floating):
        raise DataError(f"{path}: float pixel data is not supported (no declared value range to map onto 8 bits)")
    values = apply_voi_lut(apply_modality_lut(pixels, ds), ds)
    gray = _to_uint8(values, *_gray_mapping(path, ds, values, value_range))
    if photometric == "MONOCHROME1":
        gray = 255 - gray
    return np.repeat(gray[:, :, None], 3, axis=2)


def read_dicom(path: str, frame: int | None = None, value_range: str | None = None) -> np.ndarray:
    """One frame of a DICOM file as RGB uint8 (H, W, 3), by the pipeline and 8-bit
    mapping of the module docstring. ``frame`` selects a frame of a multi-frame file
    (an ultrasound cine); the default is the first. ``value_range`` maps a grayscale
    frame without a window (``DICOM_RANGES``; default: the ``set_dicom_range`` policy)."""
    value_range = value_range or os.environ.get(_RANGE_ENV) or "declared"
    if value_range not in DICOM_RANGES:
        raise DataError(f"DICOM range {value_range!r}: expected one of {', '.join(DICOM_RANGES)}")
    try:
        import pydicom
    except ImportError:  # pragma: no cover - optional dependency
        raise DataError(f"{path}: reading DICOM needs pydicom ({INSTALL_HINT})") from None
    if not os.path.isfile(path):
        raise DataError(f"{path}: file not found")
    if os.path.getsize(path) == 0:
        raise DataError(f"{path}: empty file (0 bytes)")
    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:  # pydicom raises many types for invalid files
        raise DataError(f"{path}: not a readable DICOM file ({_last_line(exc)})") from None
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise DataError(f"{path}: DICOM file holds no image (no Pixel Data element)")
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        int(ds.BitsStored)
    except Exception as exc:
        raise DataError(f"{path}: DICOM image header incomplete ({_last_line(exc)})") from None
    if rows * columns > MAX_PIXELS:
        raise DataError(f"{path}: DICOM frame of {columns}x{rows} pixels is over the limit of {MAX_PIXELS // 1_000_000} megapixels")
    index = _frame_index(path, ds, frame)
    decoder = _decoder(path, ds)
    try:
        pixels, meta = decoder.as_array(ds, index=index, as_rgb=True)
    except Exception as exc:  # decoder plugins raise many types for corrupt data
        raise DataError(f"{path}: cannot decode frame {index} ({_last_line(exc)})") from None
    photometric = str(meta.get("photometric_interpretation", ds.get("PhotometricInterpretation", ""))).upper()
    try:
        rgb = _to_rgb(path, ds, pixels, photometric, value_range)
    except DataError:
        raise
    except Exception as exc:  # malformed LUTs or windows
        raise DataError(f"{path}: cannot convert frame {index} to RGB ({_last_line(exc)})") from None
    return np.ascontiguousarray(rgb)
