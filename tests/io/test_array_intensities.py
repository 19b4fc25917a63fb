"""The intensity rules of arrays and PIL images given to the Python API (as_rgb)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fmuia.errors import DataError
from fmuia.predict.images import as_rgb


def _gray(values, dtype):
    return np.asarray(values, dtype=dtype).reshape(1, -1)


@pytest.mark.parametrize(
    "values,dtype,expected",
    [
        ([0, 17, 255], np.uint8, [0, 17, 255]),
        ([0, 100, 255], np.uint16, [0, 100, 255]),  # 8-bit data in a uint16 array
        ([0, 1023], np.uint16, [0, 255]),  # 10-bit
        ([0, 2048, 4095], np.uint16, [0, 128, 255]),  # 12-bit: not mapped to 0..15
        ([0, 65535], np.uint16, [0, 255]),
        ([0, 70_000, 2**24 - 1], np.int32, [0, 1, 255]),  # 24-bit, no saturation
        ([-128, 0, 127], np.int8, [0, 128, 255]),  # negatives: the dtype's range
        ([-32768, 0, 32767], np.int16, [0, 128, 255]),
        ([0.0, 0.5, 1.0], np.float32, [0, 128, 255]),
        ([0.0, 2.0, 255.0], np.float64, [0, 2, 255]),
    ],
)
def test_array_intensity_rules(values, dtype, expected):
    rgb = as_rgb(_gray(values, dtype))
    assert rgb.dtype == np.uint8 and rgb.shape == (1, len(values), 3)
    np.testing.assert_array_equal(rgb[0, :, 0], expected)
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])


def test_rgba_drops_alpha_and_keeps_channel_order():
    rgba = np.zeros((2, 2, 4), np.uint16)
    rgba[..., 0], rgba[..., 2], rgba[..., 3] = 4095, 1000, 65535  # alpha must not set the depth
    rgb = as_rgb(rgba)
    assert rgb[0, 0].tolist() == [255, 0, 62]


@pytest.mark.parametrize(
    "image,reason",
    [
        (np.array([[0.0, 1.5, 300.0]]), r"float array values span \[0, 300\]; expected \[0, 1\] or \[0, 255\]"),
        (np.array([[-0.5, 0.5]]), r"values span \[-0.5, 0.5\]"),
        (np.array([[0.0, np.nan]]), "NaN or infinite"),
        (np.array([[True, False]]), "unsupported array dtype bool"),
        (np.array([[1 + 2j]]), "unsupported array dtype complex128"),
        (np.zeros((4, 4, 2), np.uint8), r"must be \(H, W\).*got shape \(4, 4, 2\)"),
        (np.zeros((0, 4), np.uint8), r"got shape \(0, 4, 1\)"),
        (np.zeros((2, 4, 4, 3), np.uint8), "got shape"),
        ([[1, 2]], "cannot read an image from list"),
    ],
)
def test_unsupported_arrays_name_the_argument(image, reason):
    with pytest.raises(DataError, match="^image: .*" + reason):
        as_rgb(image)


def test_pil_images_follow_the_same_rules():
    sixteen = Image.fromarray(np.array([[0, 4095]], np.uint16))
    assert sixteen.mode.startswith("I;16")
    assert as_rgb(sixteen)[0, :, 0].tolist() == [0, 255]
    palette = Image.fromarray(np.array([[0, 255]], np.uint8), mode="L").convert("P")
    assert as_rgb(palette)[0, :, 0].tolist() == [0, 255]
    assert as_rgb(Image.fromarray(np.full((2, 2, 3), 7, np.uint8))).max() == 7
