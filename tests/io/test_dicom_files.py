"""Every ultrasound file that pydicom and pydicom-data ship, read as the network sees it
and compared with pydicom's reference conversion (its pixel_array and LUT functions,
then the 8-bit mapping documented in fmuia.io.dicom)."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, pixel_array  # noqa: E402

from fmuia.errors import DataError  # noqa: E402
from fmuia.io.dicom import read_dicom  # noqa: E402

# pydicom reads plain 16-bit palette LUT data as little-endian whatever the file's byte
# order; these big-endian files are checked against their little-endian originals.
LITTLE_ENDIAN_TWIN = {
    "OBXXXX1A_expb.dcm": "OBXXXX1A.dcm",
    "OBXXXX1A_expb_2frame.dcm": "OBXXXX1A_2frame.dcm",
    "gdcm-US-ALOKA-16_big.dcm": "gdcm-US-ALOKA-16.dcm",
}
# pydicom-data 1.0 holds 18 ultrasound files and pydicom itself 3 more.
MIN_ULTRASOUND_FILES = 16


def _pydicom_data_source():
    from pydicom.data.data_manager import external_data_sources

    return external_data_sources().get("pydicom-data")


def ultrasound_files() -> list[str]:
    """The files of ``pydicom.data.get_testdata_files()`` whose Modality is US or whose
    SOP class is an ultrasound storage class.

    The same two places are searched as get_testdata_files searches (pydicom's own
    test files and the installed pydicom-data package), but without its third step,
    which downloads files newer than the installed pydicom-data and would hang on a
    machine without network.
    """
    from pydicom.data import DATA_ROOT
    from pydicom.data.data_manager import DataTypes

    files = [str(p) for p in Path(DATA_ROOT, "test_files").rglob("*") if p.is_file()]
    source = _pydicom_data_source()
    if source is not None:
        files += source.get_paths("**/*", DataTypes.DATASET)
    found = []
    for path in sorted(set(files)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue  # not every test file is a readable dataset
        sop_class = getattr(ds.get("SOPClassUID"), "name", "")
        if ds.get("Modality") == "US" or "Ultrasound" in sop_class:
            found.append(path)
    return found


HAVE_PYDICOM_DATA = _pydicom_data_source() is not None
US_FILES = ultrasound_files()
BY_NAME = {os.path.basename(f): f for f in US_FILES}


def _cases():
    if not HAVE_PYDICOM_DATA:
        return [pytest.param(None, 0, marks=pytest.mark.skip(reason="pydicom-data is not installed (pip install 'fmuia[test]')"))]
    cases = []
    for path in US_FILES:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        n_frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
        for frame in sorted({0, n_frames - 1}):
            cases.append(pytest.param(path, frame, id=f"{os.path.basename(path)}[{frame}]"))
    return cases


def eight_bit(values, lo, hi):
    return np.clip(np.floor((np.asarray(values, np.float64) - lo) * 255.0 / (hi - lo) + 0.5), 0, 255).astype(np.uint8)


def declared_gray_range(ds):
    if ds.get("VOILUTSequence"):
        return 0, 2 ** ds.VOILUTSequence[0].LUTDescriptor[2] - 1
    if ds.get("ModalityLUTSequence"):
        return 0, 2 ** ds.ModalityLUTSequence[0].LUTDescriptor[2] - 1
    bits = ds.BitsStored
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if ds.PixelRepresentation else (0, 2**bits - 1)
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        lo, hi = sorted((lo * ds.RescaleSlope + ds.RescaleIntercept, hi * ds.RescaleSlope + ds.RescaleIntercept))
    return lo, hi


def reference_rgb(path, frame):
    ds = pydicom.dcmread(path)
    # pydicom converts YBR_FULL(_422) to RGB itself; its JPEG 2000 decoders return
    # YBR_ICT / YBR_RCT as RGB.
    pixels = pixel_array(ds, index=frame)
    photometric = ds.PhotometricInterpretation
    if photometric in ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT"):
        return eight_bit(pixels, 0, 2**ds.BitsStored - 1)
    if photometric == "PALETTE COLOR":
        twin = LITTLE_ENDIAN_TWIN.get(os.path.basename(path))
        luts = pydicom.dcmread(BY_NAME[twin], stop_before_pixels=True) if twin else ds
        depth = luts.RedPaletteColorLookupTableDescriptor[2]
        return eight_bit(apply_color_lut(pixels, luts)[..., :3], 0, 2**depth - 1)
    gray = eight_bit(apply_voi_lut(apply_modality_lut(pixels, ds), ds), *declared_gray_range(ds))
    if photometric == "MONOCHROME1":
        gray = 255 - gray
    return np.repeat(gray[:, :, None], 3, axis=2)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("path,frame", _cases())
def test_ultrasound_file_equals_pydicoms_reference_conversion(path, frame):
    ours = read_dicom(path, frame=frame)
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    assert ours.dtype == np.uint8 and ours.shape == (ds.Rows, ds.Columns, 3)
    np.testing.assert_array_equal(ours, reference_rgb(path, frame))
    assert ours.max() > 128, "a real ultrasound frame has bright pixels: a wrong bit depth would darken it"


@pytest.mark.skipif(not HAVE_PYDICOM_DATA, reason="pydicom-data is not installed (pip install 'fmuia[test]')")
def test_all_shipped_ultrasound_files_are_found():
    assert len(US_FILES) >= MIN_ULTRASOUND_FILES, US_FILES
    for name in list(LITTLE_ENDIAN_TWIN) + list(LITTLE_ENDIAN_TWIN.values()):
        assert name in BY_NAME


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.skipif(not HAVE_PYDICOM_DATA, reason="pydicom-data is not installed (pip install 'fmuia[test]')")
@pytest.mark.parametrize("big_endian", sorted(LITTLE_ENDIAN_TWIN))
def test_big_endian_files_read_like_their_little_endian_originals(big_endian):
    np.testing.assert_array_equal(read_dicom(BY_NAME[big_endian]), read_dicom(BY_NAME[LITTLE_ENDIAN_TWIN[big_endian]]))


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.skipif(not HAVE_PYDICOM_DATA, reason="pydicom-data is not installed (pip install 'fmuia[test]')")
def test_compressed_copies_read_like_the_uncompressed_original():
    original = read_dicom(BY_NAME["US1_UNCR.dcm"])
    np.testing.assert_array_equal(read_dicom(BY_NAME["US1_J2KR.dcm"]), original)  # JPEG 2000 lossless, YBR_RCT
    lossy = read_dicom(BY_NAME["US1_J2KI.dcm"]).astype(int) - read_dicom(BY_NAME["US1_UNCI.dcm"]).astype(int)
    assert np.abs(lossy).mean() < 2.0  # JPEG 2000 lossy, YBR_ICT: close, and in RGB order
    np.testing.assert_array_equal(read_dicom(BY_NAME["OBXXXX1A_rle.dcm"]), read_dicom(BY_NAME["OBXXXX1A.dcm"]))


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.skipif(not HAVE_PYDICOM_DATA, reason="pydicom-data is not installed (pip install 'fmuia[test]')")
def test_cine_frames_and_frame_errors_name_the_file():
    path = BY_NAME["OBXXXX1A_2frame.dcm"]
    assert read_dicom(path, frame=1).shape == (600, 800, 3)
    with pytest.raises(DataError, match=rf"{path}: frame 2 requested but the file has 2 frames"):
        read_dicom(path, frame=2)
