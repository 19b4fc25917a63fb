"""Image and mask files: what is read, and every way a file can be unusable, each a
DataError that names the file."""
from __future__ import annotations

import re
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from fmuia.errors import DataError
from fmuia.io.images import MAX_PIXELS, image_header, image_size, read_image, read_mask, read_predicted_mask

READERS = [read_image, read_mask, read_predicted_mask, image_size, image_header]


def _raises_naming(path, reason, reader):
    with pytest.raises(DataError, match=re.escape(str(path)) + ".*" + reason):
        reader(str(path))


def _png_bytes(array):
    ok, buf = cv2.imencode(".png", array)
    assert ok
    return buf.tobytes()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_claiming(width, height):
    """A valid PNG header for a gigantic gray image, followed by almost no data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(b"IEND", b"")


@pytest.mark.parametrize("reader", READERS, ids=lambda r: r.__name__)
def test_missing_file(tmp_path, reader):
    _raises_naming(tmp_path / "nope.png", "file not found", reader)


@pytest.mark.parametrize("reader", READERS, ids=lambda r: r.__name__)
def test_empty_file(tmp_path, reader):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    _raises_naming(path, "empty file, 0 bytes", reader)


@pytest.mark.parametrize("reader", READERS, ids=lambda r: r.__name__)
def test_not_an_image(tmp_path, reader):
    path = tmp_path / "notes.png"
    path.write_text("task_id,image_path\n")
    _raises_naming(path, "not an image file of a known format", reader)


@pytest.mark.parametrize("size", [(12_000, 10_000), (20_000, 20_000)], ids=["120MP", "400MP"])
@pytest.mark.parametrize("reader", READERS, ids=lambda r: r.__name__)
def test_decompression_bomb_refused_from_the_header(tmp_path, reader, size):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_claiming(*size))
    assert path.stat().st_size < 200
    _raises_naming(path, "pixels is over the limit of 100 megapixels", reader)


def test_just_under_the_pixel_limit_passes_the_header_check(tmp_path):
    path = tmp_path / "wide.png"
    path.write_bytes(_png_claiming(MAX_PIXELS // 10_000, 10_000))
    assert image_size(str(path)) == (10_000, MAX_PIXELS // 10_000)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp"])
@pytest.mark.parametrize("reader", [read_image, read_mask, read_predicted_mask], ids=lambda r: r.__name__)
def test_truncated_file(tmp_path, ext, reader):
    image = np.random.default_rng(0).integers(0, 3, (64, 80), dtype=np.uint8)
    ok, buf = cv2.imencode(ext, image)
    path = tmp_path / f"cut{ext}"
    path.write_bytes(buf.tobytes()[: len(buf) // 2])
    _raises_naming(path, "not a readable image.*truncated or corrupt .* the header says 80x64", reader)


def test_header_reads_size_and_mode_without_decoding(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(_png_bytes(np.zeros((30, 50, 3), np.uint8)))
    header = image_header(str(path))
    assert (header.height, header.width, header.mode, header.format, header.channels) == (30, 50, "RGB", "PNG", 3)
    assert image_size(str(path)) == (30, 50)


def test_images_of_every_supported_kind_read_as_rgb_uint8(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(read_image(str(tmp_path / "rgb.png")), rgb)
    Image.fromarray(rgb[:, :, 0]).save(tmp_path / "gray.bmp")
    np.testing.assert_array_equal(read_image(str(tmp_path / "gray.bmp")), np.repeat(rgb[:, :, :1], 3, axis=2))
    sixteen = (rgb[:, :, 0].astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "gray16.png"), sixteen)
    np.testing.assert_array_equal(read_image(str(tmp_path / "gray16.png"))[:, :, 0], rgb[:, :, 0])


def test_unsupported_pixel_type_is_refused(tmp_path):
    path = tmp_path / "signed.tif"
    Image.fromarray(np.full((8, 8), -5, np.int32), mode="I").save(path)
    _raises_naming(path, "unsupported pixel type int32", read_image)


def test_ground_truth_mask_rules(tmp_path):
    mask = np.random.default_rng(2).integers(0, 4, (16, 24), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "m.png"), mask)
    np.testing.assert_array_equal(read_mask(str(tmp_path / "m.png")), mask)
    cv2.imwrite(str(tmp_path / "gray_as_rgb.png"), np.repeat(mask[:, :, None], 3, axis=2))
    np.testing.assert_array_equal(read_mask(str(tmp_path / "gray_as_rgb.png")), mask)
    colours = np.stack([mask, mask, (mask + 1) % 4], axis=2)
    cv2.imwrite(str(tmp_path / "colour.png"), colours)
    _raises_naming(tmp_path / "colour.png", "mask has 3 different colour channels", read_mask)
    cv2.imwrite(str(tmp_path / "big16.png"), mask.astype(np.uint16) * 300)
    _raises_naming(tmp_path / "big16.png", "mask value 900 does not fit a class id", read_mask)


def test_predicted_mask_must_be_8_bit_single_channel(tmp_path):
    mask = np.random.default_rng(3).integers(0, 3, (16, 24), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "ok.png"), mask)
    out = read_predicted_mask(str(tmp_path / "ok.png"))
    assert out.dtype == np.uint8 and out.ndim == 2
    np.testing.assert_array_equal(out, mask)

    cases = {
        "sixteen.png": (lambda p: cv2.imwrite(p, mask.astype(np.uint16)), "16-bit"),
        "rgb.png": (lambda p: cv2.imwrite(p, np.repeat(mask[:, :, None], 3, axis=2)), "3 channels"),
        "rgba.png": (lambda p: cv2.imwrite(p, np.repeat(mask[:, :, None], 4, axis=2)), "4 channels"),
        "gray_alpha.png": (lambda p: Image.fromarray(np.stack([mask, mask], axis=2), mode="LA").save(p), "2 channels"),
        "palette.png": (lambda p: Image.fromarray(mask, mode="L").convert("P").save(p), "a palette image"),
        "one_bit.png": (lambda p: Image.fromarray(mask > 0).save(p), "a 1-bit image"),
    }
    for name, (write, reason) in cases.items():
        path = tmp_path / name
        write(str(path))
        _raises_naming(path, f"predicted mask is {reason}.*expected a single-channel 8-bit PNG", read_predicted_mask)
    # The lenient ground-truth reader still accepts a 16-bit mask whose values fit.
    np.testing.assert_array_equal(read_mask(str(tmp_path / "sixteen.png")), mask)
