"""The encoder's stages: each layer belongs to the feature level it feeds, stem first."""
import pytest

from fmuia.errors import ConfigError
from fmuia.model.encoder import Encoder
from fmuia.model.stages import module_stages, parameter_stages, stage_count


@pytest.mark.parametrize("name, first_of_stage_1", [
    ("resnet18", "model.layer1.0.conv1.weight"),
    ("tf_efficientnet_lite0", "model.blocks.1.0.conv_pw.weight"),
])
def test_stages_follow_the_feature_levels_in_order(name, first_of_stage_1):
    encoder = Encoder(name, 64)
    stages = parameter_stages(encoder)
    assert stage_count(encoder) == 5 and set(stages.values()) == set(range(5))
    ordered = list(stages.values())
    assert ordered == sorted(ordered)  # registration order is execution order
    assert ordered[0] == 0 and stages[first_of_stage_1] == 1
    assert [n for n, s in stages.items() if s == 1][0] == first_of_stage_1


def test_a_single_scale_transformer_has_no_stages():
    encoder = Encoder("vit_tiny_patch16_224", 64)
    with pytest.raises(ConfigError, match="no stages.*finetune.freeze: encoder"):
        module_stages(encoder)
