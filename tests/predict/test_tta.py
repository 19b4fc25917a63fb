"""Test-time flip: averaged only where a flip keeps the label, and flipped back right.

A stub backend "sees" a bright rectangle: its segmentation is the rectangle, its box
the rectangle's bounds, its classification says whether the rectangle is in the left
half. With the flip, the box and mask must come back where the rectangle really is,
while the left/right class is averaged to 50/50 (proof that the flipped view counted).
"""
import numpy as np
import pytest
import torch

from fmuia.config import PredictConfig
from fmuia.errors import ConfigError
from fmuia.model.config import ModelConfig
from fmuia.predict.predictor import Predictor, tta_tasks
from fmuia.tasks import Task, TaskRegistry

S = 32
REGISTRY = TaskRegistry([
    Task("seg", "segmentation", 2), Task("cls", "classification", 2), Task("det", "detection", 1),
    Task("pts", "Regression", 1), Task("side_cls", "classification", 2, orientation_sensitive=True),
])


class RectangleBackend:
    name = "stub"
    registry = REGISTRY
    config = ModelConfig(encoder="resnet18", pretrained="none", image_size=S)
    input_sizes = {t.task_id: S for t in REGISTRY}
    predict = PredictConfig()
    device = torch.device("cpu")

    def __init__(self):
        self.calls = []

    def decoded(self, images, task_ids):
        """Decoded predictions as a backend gives them: float32 NumPy, rows in batch order."""
        self.calls.append(list(task_ids))
        bright = (torch.as_tensor(images)[..., 0] > 127).float()  # uint8 (B, S, S, 3) as read -> (B, S, S)
        out = {}
        for t in dict.fromkeys(task_ids):
            rows = [i for i, x in enumerate(task_ids) if x == t]
            b = bright[rows]
            if t == "seg":
                out[t] = torch.stack([1 - b, b], dim=1)
            elif t == "det":
                boxes = []
                for m in b:
                    ys, xs = torch.nonzero(m, as_tuple=True)
                    boxes.append([xs.min() / S, ys.min() / S, (xs.max() + 1) / S, (ys.max() + 1) / S, 1.0])
                out[t] = torch.tensor(boxes)
            elif t == "pts":
                out[t] = torch.stack([(m.nonzero()[:, [1, 0]].float().mean(0) + 0.5) / S for m in b])[:, None, :]
            else:
                left = (b[:, :, : S // 2].sum((1, 2)) > 0).float()
                out[t] = torch.stack([1 - left, left], dim=1)
        return {t: v.float().numpy() for t, v in out.items()}


def _rectangle_image():
    image = np.zeros((S, S, 3), np.uint8)
    image[4:12, 3:10] = 255  # left side
    return image


def test_flip_back_puts_predictions_where_the_object_is():
    image = _rectangle_image()
    plain = Predictor(RectangleBackend()).predict_batch([image] * 4, ["seg", "det", "pts", "cls"])
    flipped = Predictor(RectangleBackend(), tta=True).predict_batch([image] * 4, ["seg", "det", "pts", "cls"])
    np.testing.assert_array_equal(flipped[0].mask, plain[0].mask)
    assert plain[0].mask[4:12, 3:10].all() and plain[0].mask.sum() == 8 * 7
    np.testing.assert_allclose(flipped[1].box, [3, 4, 10, 12], atol=1e-5)
    np.testing.assert_allclose(plain[1].box, [3, 4, 10, 12], atol=1e-5)
    np.testing.assert_allclose(flipped[2].points, [[6.5, 8.0]], atol=1e-5)
    np.testing.assert_allclose(plain[2].points, [[6.5, 8.0]], atol=1e-5)
    assert plain[3].label == 1 and plain[3].probabilities[1] == 1.0
    np.testing.assert_allclose(flipped[3].probabilities, [0.5, 0.5])


def test_orientation_sensitive_tasks_never_flipped():
    backend = RectangleBackend()
    result = Predictor(backend, tta=True).predict_batch([_rectangle_image()] * 2, ["side_cls", "cls"])
    assert result[0].probabilities[1] == 1.0  # no flipped view averaged in
    # one forward pass: the batch, then the flipped rows of the tasks that take the flip
    assert backend.calls == [["side_cls", "cls", "cls"]]
    assert "side_cls" not in tta_tasks(REGISTRY, True) and "pts" in tta_tasks(REGISTRY, True)
    with pytest.raises(ConfigError, match="side_cls are orientation-sensitive"):
        tta_tasks(REGISTRY, ["cls", "side_cls"])
    assert tta_tasks(REGISTRY, False) == frozenset()


class FlipByConfigBackend(RectangleBackend):
    predict = PredictConfig(tta=True)


def test_saved_predict_tta_is_the_default_and_an_argument_overrides_it():
    assert Predictor(RectangleBackend()).tta == frozenset()
    assert Predictor(FlipByConfigBackend()).tta == tta_tasks(REGISTRY, True)
    assert Predictor(FlipByConfigBackend(), tta=False).tta == frozenset()
    assert Predictor(RectangleBackend(), tta=["cls"]).tta == frozenset({"cls"})


def test_predict_tta_must_be_a_boolean():
    with pytest.raises(ConfigError, match="predict.tta"):
        PredictConfig(tta="yes")


@pytest.mark.parametrize("flags, expected", [([], None), (["--tta"], True), (["--no-tta"], False)])
def test_predict_command_leaves_the_choice_to_the_checkpoint_unless_told(flags, expected):
    from fmuia.cli.main import build_parser

    args = build_parser().parse_args(["predict", "--checkpoint", "c", "--data", "d", "--out", "o", *flags])
    assert args.tta is expected
