"""Segmentation class maps: NumPy's argmax on the CPU gives torch's class ids, ties
(the first maximum wins) and half precisions included."""
import numpy as np
import pytest
import torch

from fmuia.kinds.segmentation import class_map


@pytest.mark.parametrize("classes", [2, 3, 5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_class_map_matches_torch_argmax_with_ties(classes, dtype):
    generator = torch.Generator().manual_seed(classes)
    # Small integers: most pixels have two or more classes at the same score.
    scores = torch.randint(-2, 3, (4, classes, 17, 23), generator=generator).to(dtype)
    got = class_map(scores)
    expected = scores.float().argmax(dim=1).to(torch.uint8).numpy()
    assert got.dtype == np.uint8 and got.shape == (4, 17, 23)
    np.testing.assert_array_equal(got, expected)
    assert (scores.float().max(dim=1).values.unsqueeze(1) == scores.float()).sum(dim=1).gt(1).any()  # ties were there


def test_class_map_of_a_strided_view():
    scores = torch.randn(2, 4, 9, 9).flip(-1)  # as the flip's averaged outputs: a non-contiguous view
    np.testing.assert_array_equal(class_map(scores), scores.argmax(dim=1).to(torch.uint8).numpy())
