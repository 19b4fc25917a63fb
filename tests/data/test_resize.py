"""The prediction resize (OpenCV alone) gives the bytes of the pipelines' albumentations step."""
import numpy as np
import pytest

from fmuia.data.records import Entry, Sample
from fmuia.data.resize import resize_image
from fmuia.data.transforms import build_eval_transform, resize_sample
from fmuia.imagenet import IMAGENET_MEAN, IMAGENET_STD
from fmuia.tasks import Kind


def _sample(image: np.ndarray) -> Sample:
    entry = Entry(task_id="t", kind=Kind.CLASSIFICATION, image_path="x.png", image_file="x.png", csv_file="t.csv", line=2)
    return Sample(entry=entry, image=image, label=None)


@pytest.mark.parametrize("shape, side", [((37, 501), 128), ((700, 300), 64), ((128, 128), 128), ((5, 3), 96),
                                         ((256, 333), 256), ((1, 1), 32)])
def test_prediction_resize_equals_the_albumentations_step(shape, side):
    image = np.random.default_rng(sum(shape) + side).integers(0, 256, (*shape, 3), dtype=np.uint8)
    ours = resize_image(image, side)
    assert ours.shape == (side, side, 3) and ours.dtype == np.uint8 and ours.flags.c_contiguous
    assert np.array_equal(ours, resize_sample(_sample(image), side).image)
    normalised = (ours.astype(np.float32) / 255 - np.float32(IMAGENET_MEAN)) / np.float32(IMAGENET_STD)
    np.testing.assert_allclose(normalised, build_eval_transform(side)(image=image)["image"], atol=1e-5)


def test_prediction_resize_does_not_import_albumentations():
    import subprocess
    import sys

    code = "import sys, fmuia.data.resize; assert 'albumentations' not in sys.modules, 'albumentations imported'"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0
