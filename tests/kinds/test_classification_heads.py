"""The classification heads: the plain head sees what is in the image, the
position-pooled head also where it lies."""
import torch

from fmuia.kinds.classification_heads import ClassificationHead, PositionPooledClassificationHead
from fmuia.model import ModelConfig
from fmuia.tasks import Kind, Task

TASK = Task("position", Kind.CLASSIFICATION, 4)
CONFIG = ModelConfig(encoder="resnet18", pretrained="none", dropout=0.0)


def _blob(column: int, row: int, channels: int = 8, size: int = 6) -> torch.Tensor:
    features = torch.zeros(1, channels, size, size)
    features[0, :, row, column] = 1.0
    return features


def test_the_mean_cannot_tell_where_a_feature_lies_and_position_pooling_can():
    torch.manual_seed(0)
    plain = ClassificationHead(TASK, 8, CONFIG).eval()
    placed = PositionPooledClassificationHead(TASK, 8, CONFIG).eval()
    left, right, top = _blob(0, 2), _blob(5, 2), _blob(2, 0)
    assert torch.allclose(plain(left, (24, 24)), plain(right, (24, 24)))
    assert not torch.allclose(placed(left, (24, 24)), placed(right, (24, 24)), atol=1e-4)
    assert not torch.allclose(placed(left, (24, 24)), placed(top, (24, 24)), atol=1e-4)


def test_position_pooling_gives_the_mean_and_the_signed_first_moments():
    head = PositionPooledClassificationHead(TASK, 8, CONFIG).eval()
    with torch.no_grad():
        head.linear.weight.zero_()
        head.linear.bias.zero_()
        head.linear.weight[0, 0] = 1.0  # channel 0's mean
        head.linear.weight[1, 8] = 1.0  # its x moment
        head.linear.weight[2, 16] = 1.0  # its y moment
        right_bottom = head(_blob(5, 5), (24, 24))[0]
        left_top = head(_blob(0, 0), (24, 24))[0]
    # one cell of 36 lit: mean 1/36; the edge cells' centres lie at +-5/6
    assert torch.allclose(right_bottom[:3], torch.tensor([1, 5 / 6, 5 / 6]) / 36)
    assert torch.allclose(left_top[:3], torch.tensor([1, -5 / 6, -5 / 6]) / 36)
    # a one-cell map has its single centre at 0: no position to tell
    one = head(torch.ones(1, 8, 1, 1), (32, 32))[0]
    assert torch.allclose(one[:3], torch.tensor([1.0, 0.0, 0.0]))


def test_position_pooling_works_at_any_feature_size():
    head = PositionPooledClassificationHead(TASK, 8, CONFIG).eval()
    for size in (1, 3, 7):
        assert head(torch.randn(2, 8, size, size + 1), (32, 32)).shape == (2, 4)
