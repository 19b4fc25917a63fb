"""The model's resize of an image: a plain bilinear resize to ``S x S``.

Stated here once, with OpenCV alone, so that prediction resizes without importing
albumentations (most of a second); the training and evaluation pipelines'
``A.Resize`` in ``fmuia.data.transforms`` is built from the same interpolations, and
``tests/data/test_resize.py`` checks that the two give the same bytes."""
from __future__ import annotations

import cv2
import numpy as np

IMAGE_INTERPOLATION = cv2.INTER_LINEAR
MASK_INTERPOLATION = cv2.INTER_NEAREST


def resize_image(image: np.ndarray, image_size: int) -> np.ndarray:
    """uint8 (H, W, C) -> uint8 (S, S, C), ``S = image_size``."""
    return np.ascontiguousarray(cv2.resize(image, (image_size, image_size), interpolation=IMAGE_INTERPOLATION))
