"""The DICOM pipeline on files made here: colour spaces, bit depths, MONOCHROME1,
windowing, VOI LUTs, compressed syntaxes, and every unreadable case."""
from __future__ import annotations

import re

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.encaps import encapsulate  # noqa: E402
from pydicom.pixels import convert_color_space  # noqa: E402
from pydicom.uid import (  # noqa: E402
    RLELossless,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    MPEG2MPML,
    UltrasoundImageStorage,
    generate_uid,
)

from fmuia.errors import DataError  # noqa: E402
from fmuia.io.dicom import read_dicom  # noqa: E402
from fmuia.predict.images import as_rgb  # noqa: E402


def _dataset(pixels, photometric="MONOCHROME2", bits=8, signed=False, syntax=ExplicitVRLittleEndian, **elements):
    pixels = np.asarray(pixels)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UltrasoundImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.SamplesPerPixel = 3 if pixels.ndim == 3 else 1
    if pixels.ndim == 3:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 8 if bits <= 8 else 16
    ds.BitsStored, ds.HighBit = bits, bits - 1
    ds.PixelRepresentation = int(signed)
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    ds.PixelData = pixels.astype(f"{'i' if signed else 'u'}{ds.BitsAllocated // 8}").tobytes()
    return ds


def _save(ds, path):
    ds.save_as(path, enforce_file_format=True)
    return str(path)


def test_ybr_full_is_converted_to_rgb_once(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    rgb[0, 0] = [255, 0, 0]
    ybr = convert_color_space(rgb, "RGB", "YBR_FULL")
    ours = read_dicom(_save(_dataset(ybr, "YBR_FULL"), tmp_path / "ybr.dcm"))
    assert np.abs(ours.astype(int) - rgb).max() <= 2
    assert ours[0, 0, 0] > 250 and ours[0, 0, 1] < 5  # red stays red


def test_gray_is_mapped_by_its_bit_depth_not_its_data_range(tmp_path):
    dark = np.array([[0, 400, 4095]])
    ours = read_dicom(_save(_dataset(dark, bits=12), tmp_path / "dark12.dcm"))
    assert ours.shape == (1, 3, 3) and ours[0, :, 0].tolist() == [0, 25, 255]
    dim = np.array([[10, 15, 20]])
    assert read_dicom(_save(_dataset(dim), tmp_path / "dim8.dcm"))[0, :, 0].tolist() == [10, 15, 20]


def test_monochrome1_is_inverted_by_its_bit_depth(tmp_path):
    dim = np.array([[10, 15, 20]])
    ours = read_dicom(_save(_dataset(dim, "MONOCHROME1"), tmp_path / "mono1.dcm"))
    assert ours[0, :, 0].tolist() == [245, 240, 235]  # not stretched to 255..0


def test_signed_data_and_rescale_use_the_declared_range(tmp_path):
    signed = np.array([[-2048, 0, 2047]])
    ours = read_dicom(_save(_dataset(signed, bits=12, signed=True), tmp_path / "signed.dcm"))
    assert ours[0, :, 0].tolist() == [0, 128, 255]
    rescaled = _dataset(np.array([[0, 255]]), RescaleSlope=-1.0, RescaleIntercept=255.0)
    assert read_dicom(_save(rescaled, tmp_path / "rescaled.dcm"))[0, :, 0].tolist() == [255, 0]


def test_window_and_voi_lut_are_applied(tmp_path):
    windowed = _dataset(np.array([[0, 100, 300]]), bits=12, WindowCenter=100, WindowWidth=200)
    assert read_dicom(_save(windowed, tmp_path / "window.dcm"))[0, :, 0].tolist() == [0, 128, 255]
    ds = _dataset(np.array([[0, 1, 2, 3]]), bits=12)
    item = Dataset()
    item.add_new("LUTDescriptor", "US", [4, 0, 8])
    item.add_new("LUTData", "US", [0, 50, 100, 255])
    ds.VOILUTSequence = [item]
    assert read_dicom(_save(ds, tmp_path / "voi.dcm"))[0, :, 0].tolist() == [0, 50, 100, 255]


@pytest.mark.parametrize("syntax", [JPEGLSLossless, JPEG2000Lossless, RLELossless], ids=lambda s: s.name)
def test_compressed_12_bit_frames_read_like_the_native_ones(tmp_path, syntax):
    frame = np.random.default_rng(1).integers(0, 4096, (32, 48), dtype=np.uint16)
    native = read_dicom(_save(_dataset(frame, bits=12), tmp_path / "native.dcm"))
    ds = _dataset(frame, bits=12)
    try:
        ds.compress(syntax, frame)
    except RuntimeError as exc:
        pytest.fail(f"the dicom extra should provide an encoder for {syntax.name}: {exc}")
    np.testing.assert_array_equal(read_dicom(_save(ds, tmp_path / "compressed.dcm")), native)


def test_cine_frames_through_the_api(tmp_path):
    frames = np.stack([np.zeros((4, 5)), np.full((4, 5), 255)])
    ds = _dataset(frames[0])
    ds.NumberOfFrames = 2
    ds.PixelData = frames.astype(np.uint8).tobytes()
    path = _save(ds, tmp_path / "cine.dcm")
    assert as_rgb(path).max() == 0 and as_rgb(path, frame=1).min() == 255
    with pytest.raises(DataError, match=re.escape(path) + ": frame 2 requested but the file has 2 frames"):
        as_rgb(path, frame=2)


def _raises_naming(path, reason):
    with pytest.raises(DataError, match=re.escape(str(path)) + ": " + reason):
        read_dicom(str(path))


def test_unreadable_files_name_the_file_and_reason(tmp_path):
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    _raises_naming(empty, r"empty file \(0 bytes\)")
    text = tmp_path / "notes.dcm"
    text.write_text("not a dicom file")
    _raises_naming(text, "not a readable DICOM file")
    _raises_naming(tmp_path / "missing.dcm", "file not found")

    no_pixels = _dataset(np.zeros((2, 2)))
    del no_pixels.PixelData
    _raises_naming(_save(no_pixels, tmp_path / "nopixels.dcm"), r"DICOM file holds no image \(no Pixel Data element\)")

    bomb = _dataset(np.zeros((2, 2)))
    bomb.Rows = bomb.Columns = 20_000
    _raises_naming(_save(bomb, tmp_path / "bomb.dcm"), "DICOM frame of 20000x20000 pixels is over the limit of 100 megapixels")

    short = _dataset(np.zeros((8, 8)))
    short.PixelData = short.PixelData[:10]
    _raises_naming(_save(short, tmp_path / "short.dcm"), "cannot decode frame 0")

    ds = _dataset(np.zeros((2, 2)), syntax=MPEG2MPML)
    ds.PixelData = encapsulate([b"\x00" * 4])
    _raises_naming(_save(ds, tmp_path / "mpeg.dcm"), r"pixel data encoded as MPEG2 .*which pydicom cannot decode")


def test_missing_decoder_plugin_names_the_syntax_and_the_package(tmp_path, monkeypatch):
    ds = _dataset(np.zeros((2, 2)), syntax=JPEGLSLossless)
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xd9"])
    path = _save(ds, tmp_path / "jpegls.dcm")

    class Unavailable:
        is_available = False
        missing_dependencies = ["pyjpegls"]

    monkeypatch.setattr(pydicom.pixels, "get_decoder", lambda uid: Unavailable())
    _raises_naming(path, r"pixel data compressed as JPEG-LS Lossless Image Compression \(1\.2\.840\.10008\.1\.2\.4\.80\) needs a decoder plugin: pip install pyjpegls")
