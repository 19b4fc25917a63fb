"""The dense localisation heads: raw and decoded shapes inside the network, and decoding
of hand-made outputs back to the point / box they encode (sub-pixel)."""
import math

import pytest
import torch

from model_helpers import SIZE, images, tiny_config

from fmuia.config import PredictConfig
from fmuia.model import build_model
from fmuia.kinds.dense import soft_argmax
from fmuia.kinds.detection_heads import CentreDetectionHead
from fmuia.kinds.keypoints_heads import KeypointBoundedRegressionHead, KeypointHeatmapHead
from fmuia.tasks import Kind, Task, TaskRegistry

PLUS_HEADS = {"heads": {"keypoints": "heatmap", "detection": "centernet"}, "routing": {"keypoints": "fpn"}}
GRID = SIZE // 4  # the FPN map's side


@pytest.fixture(scope="module")
def plus_model():
    registry = TaskRegistry([Task("det", Kind.DETECTION, 1), Task("kp", Kind.KEYPOINTS, 3), Task("seg", Kind.SEGMENTATION, 2)])
    torch.manual_seed(0)
    return build_model(tiny_config(**PLUS_HEADS), registry).eval()


def test_heads_are_chosen_and_routed_to_the_fpn(plus_model):
    assert isinstance(plus_model.head("kp"), KeypointHeatmapHead)
    assert isinstance(plus_model.head("det"), CentreDetectionHead)
    assert plus_model.routes["kp"] == "fpn" and plus_model.routes["det"] == "fpn"


def test_raw_and_decoded_shapes(plus_model):
    with torch.no_grad():
        raw = plus_model(images(5), ["kp", "det", "kp", "seg", "det"])
        decoded = plus_model.decode(raw)
    assert raw["kp"].shape == (2, 3, GRID, GRID)
    assert raw["det"].shape == (2, 5, GRID, GRID)
    assert decoded["kp"].shape == (2, 3, 2)
    assert decoded["det"].shape == (2, 5)
    assert decoded["kp"].min() >= 0 and decoded["kp"].max() <= 1
    box = decoded["det"]
    assert (box[:, 0] <= box[:, 2]).all() and (box[:, 1] <= box[:, 3]).all()
    assert (box >= 0).all() and (box <= 1).all()


def _gaussian_logits(points: torch.Tensor, h: int, w: int, sigma: float) -> torch.Tensor:
    """Log of a Gaussian of ``sigma`` cells at each normalised point: (B, K, h, w)."""
    xs = (torch.arange(w) + 0.5) / w
    ys = (torch.arange(h) + 0.5) / h
    dx = (xs.view(1, 1, 1, w) - points[..., 0, None, None]) * w
    dy = (ys.view(1, 1, h, 1) - points[..., 1, None, None]) * h
    return -(dx * dx + dy * dy) / (2 * sigma * sigma)


def test_heatmap_decode_recovers_points_to_sub_pixel_accuracy(plus_model):
    # Off-grid points, away from the border (within it the map is truncated).
    points = torch.tensor([[[0.3137, 0.7021], [0.55, 0.4123], [0.701, 0.296]],
                           [[0.25, 0.25], [0.6666, 0.5432], [0.4, 0.77]]])
    raw = _gaussian_logits(points, GRID, GRID, sigma=1.0)
    decoded = plus_model.head("kp").decode(raw)
    error_px = ((decoded - points) * SIZE).norm(dim=-1)  # in input pixels (a cell is 4)
    assert error_px.max() < 0.1


def test_heatmap_decode_ignores_a_distant_second_mode():
    h = w = 32
    point = torch.tensor([[[0.3, 0.3]]])
    strong = _gaussian_logits(point, h, w, 1.0)
    weak = _gaussian_logits(torch.tensor([[[0.8, 0.8]]]), h, w, 1.0) - 1.0  # e^-1 of the height
    raw = torch.logaddexp(strong, weak)
    windowed = soft_argmax(raw, window=3)
    assert (windowed - point).abs().max() < 0.5 / w
    assert (soft_argmax(raw) - point).abs().max() > 0.05  # the global expectation is pulled away


def _logit(p: torch.Tensor) -> torch.Tensor:
    return torch.log(p) - torch.log1p(-p)


def test_centre_decode_recovers_the_box_of_the_best_cell(plus_model):
    h = w = GRID
    box = torch.tensor([0.2031, 0.3377, 0.6123, 0.9001])
    raw = torch.full((1, 5, h, w), -3.0)
    row, col = 9, 6  # a cell inside the box
    cx, cy = (col + 0.5) / w, (row + 0.5) / h
    sides = torch.tensor([cx - box[0], cy - box[1], box[2] - cx, box[3] - cy])
    raw[0, 1:5, row, col] = _logit(sides)
    raw[0, 0, row, col] = 2.0
    raw[0, 0, 2, 2] = 1.5  # a weaker cell elsewhere whose box is something else
    decoded = plus_model.head("det").decode(raw)
    assert decoded.shape == (1, 5)
    assert torch.allclose(decoded[0, :4], box, atol=1e-5)
    assert decoded[0, 4].item() == pytest.approx(1 / (1 + math.exp(-2.0)), abs=1e-6)


def _cell_sides(box: torch.Tensor, row: int, col: int, h: int, w: int) -> torch.Tensor:
    cx, cy = (col + 0.5) / w, (row + 0.5) / h
    return _logit(torch.tensor([cx - box[0], cy - box[1], box[2] - cx, box[3] - cy]))


def test_box_voting_averages_the_cells_around_the_peak_by_score():
    registry = TaskRegistry([Task("det", Kind.DETECTION, 1)])
    torch.manual_seed(0)
    model = build_model(tiny_config(heads={"detection": "centernet"}), registry, PredictConfig(box_voting=True)).eval()
    head, h, w = model.head("det"), GRID, GRID
    first, second = torch.tensor([0.20, 0.30, 0.60, 0.90]), torch.tensor([0.22, 0.28, 0.64, 0.86])
    raw = torch.full((1, 5, h, w), -6.0)
    raw[0, 1:5, 9, 6], raw[0, 0, 9, 6] = _cell_sides(first, 9, 6, h, w), 2.0  # the peak
    raw[0, 1:5, 9, 7], raw[0, 0, 9, 7] = _cell_sides(second, 9, 7, h, w), 1.0  # a voter: above half the peak
    raw[0, 1:5, 10, 6], raw[0, 0, 10, 6] = _cell_sides(torch.tensor([0.0, 0.0, 1.0, 1.0]), 10, 6, h, w), -1.5
    raw[0, 1:5, 1, 14], raw[0, 0, 1, 14] = _cell_sides(torch.tensor([0.8, 0.0, 0.95, 0.1]), 1, 14, h, w), 1.9
    p1, p2 = torch.sigmoid(torch.tensor(2.0)), torch.sigmoid(torch.tensor(1.0))
    expected = (p1 * first + p2 * second) / (p1 + p2)  # the weak cell and the cell outside the peak's box do not vote
    decoded = head.decode(raw)
    assert torch.allclose(decoded[0, :4], expected, atol=1e-5)
    assert decoded[0, 4].item() == pytest.approx(float(p1), abs=1e-6)
    # switched off at prediction time (fmuia.load(box_voting=False) does this): the peak cell alone
    head.set_decoding(model.predict.replace(box_voting=False))
    assert torch.allclose(head.decode(raw)[0, :4], first, atol=1e-5)


def test_centre_head_starts_with_a_low_score_prior(plus_model):
    head = plus_model.head("det")
    assert torch.sigmoid(head.out.bias[0]).item() == pytest.approx(0.1, abs=0.01)


def test_head_norm_exports_to_onnx_that_takes_an_empty_batch(tmp_path):
    """In the exported graph a task absent from the batch sends zero rows to its head."""
    import numpy as np
    import onnxruntime as ort

    from fmuia.kinds.dense import _GroupNorm

    class Rows(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = _GroupNorm(32, 64)

        def forward(self, x, rows):
            return self.norm(x.index_select(0, rows))

    module = Rows().eval()
    torch.nn.init.normal_(module.norm.weight)
    torch.nn.init.normal_(module.norm.bias)
    path = str(tmp_path / "norm.onnx")
    torch.onnx.export(module, (torch.randn(2, 64, 8, 8), torch.tensor([0, 1])), path, input_names=["x", "rows"],
                      output_names=["y"], dynamic_axes={"x": {0: "b"}, "rows": {0: "k"}, "y": {0: "k"}}, dynamo=False)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    x = (np.random.default_rng(0).standard_normal((3, 64, 8, 8)) * 3 + 1).astype(np.float32)
    assert session.run(None, {"x": x, "rows": np.zeros((0,), np.int64)})[0].shape == (0, 64, 8, 8)
    got = session.run(None, {"x": x, "rows": np.array([2, 0])})[0]
    with torch.no_grad():
        want = module(torch.from_numpy(x), torch.tensor([2, 0])).numpy()  # nn.GroupNorm itself
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_bounded_regression_predicts_inside_the_image_and_starts_at_its_centre():
    registry = TaskRegistry([Task("kp", Kind.KEYPOINTS, 3)])
    torch.manual_seed(0)
    model = build_model(tiny_config(heads={"keypoints": "bounded_regression"}), registry).eval()
    head = model.head("kp")
    assert isinstance(head, KeypointBoundedRegressionHead)
    # any logits, however large, decode to points inside the image
    points = head.decode(torch.tensor([[-80.0, 80.0, 0.0, 3.0, -3.0, 1e4]]))
    assert points.shape == (1, 3, 2) and bool(((points >= 0) & (points <= 1)).all())
    assert points[0, 1, 0] == pytest.approx(0.5) and 0.5 < float(points[0, 1, 1]) < 1.0
    # with its linear layer zeroed the head points at the centre, whatever the image
    with torch.no_grad():
        head.linear.weight.zero_()
        head.linear.bias.zero_()
        decoded = model.decode(model(images(2), ["kp", "kp"]))["kp"]
    assert torch.allclose(decoded, torch.full((2, 3, 2), 0.5))
