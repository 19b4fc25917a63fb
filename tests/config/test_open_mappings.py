"""Open mappings (keyed by kinds, task ids, augmentation names, head types, loss names)
are checked when the config is loaded, naming the dotted key."""
import pytest

from fmuia.config import load_config
from fmuia.errors import ConfigError


@pytest.mark.parametrize("override, message", [
    ("augment.default.sharpen=0.5", "augment.default.sharpen: not an augmentation (expected one of brightness_contrast,"),
    ("augment.default.hflip=1.5", "augment.default.hflip: expected a probability in [0, 1], got 1.5"),
    ("augment.kinds.ultrasound={hflip: 0.5}", "augment.kinds.ultrasound: not a kind (expected one of segmentation,"),
    ("augment.tasks.lung.noise=lots", "augment.tasks.lung.noise: expected a number, got 'lots'"),
    ("loss.kind_weights.pixels=1", "loss.kind_weights.pixels: not a kind"),
    ("loss.params={detection.grid: {box_weight: -1}}", "loss.params.detection.grid.box_weight: must be >= 0, got -1.0"),
    ("loss.params={detection.grid: {negatives: 'no'}}", "loss.params.detection.grid.negatives: expected true or false, got 'no'"),
    ("loss.params={detection.grid: {boxweight: 2}}", "loss.params.detection.grid.boxweight: unknown parameter (known: box_weight,"),
    ("loss.params={detection.yolo: {}}", "loss.params.detection.yolo: not a kind.head type"),
    ("model.heads.keypoints=hourglass", "model.heads.keypoints: unknown head type 'hourglass' (known: regression,"),
    ("model.heads.pixels=conv", "model.heads.pixels: not a kind"),
    ("model.input_scale.segmentation=8", "model.input_scale.segmentation: expected a factor in [0.25, 4], got 8.0"),
    ("model.routing.keypoints=middle", "model.routing.keypoints: expected one of top, fpn, got 'middle'"),
    ("optim.lr_multipliers.kinds.detection=-2", "optim.lr_multipliers.kinds.detection: must be >= 0, got -2.0"),
    ("predict.backend=tensorrt", "predict.backend: expected one of torch, onnxruntime, openvino, got 'tensorrt'"),
])
def test_open_mapping_mistakes_are_named_when_loaded(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert message in str(err.value)


def test_open_mapping_values_are_normalised():
    config = load_config(None, ["loss.params={detection.grid: {box_weight: 4}}", "model.input_scale.lung=2"])
    assert config.loss.params == {"detection.grid": {"box_weight": 4.0, "negatives": True, "positive_share": 0.5}}
    assert isinstance(config.loss.params["detection.grid"]["box_weight"], float)
    assert config.model.input_scale == {"lung": 2.0}


def test_a_dotted_override_reaches_a_loss_parameter():
    config = load_config(None, ["loss.params.detection.grid.box_weight=4", "loss.params.keypoints.heatmap.sigma=2"])
    # merged key by key over the default entry of detection.grid
    assert config.loss.params == {"detection.grid": {"box_weight": 4.0, "negatives": True, "positive_share": 0.5},
                                  "keypoints.heatmap": {"sigma": 2.0}}
