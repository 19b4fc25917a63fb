import pytest
import torch

from fmuia.model import Encoder, build_model
from fmuia.runtime import resolve_precision

from model_helpers import images, tiny_config


# DINOv2's patch 14 gives a 9x9 token grid at 128 px, resampled to the stride-16 grid.
@pytest.mark.parametrize("name,size", [("vit_tiny_patch16_224", 64), ("vit_small_patch14_dinov2", 128)])
def test_vit_tokens_become_a_pyramid(name, size):
    enc = Encoder(name, size)
    assert enc.feature_info.reduction() == [4, 8, 16, 32]
    feats = enc(images(2, size=size))
    for f, c, r in zip(feats, enc.feature_info.channels(), enc.feature_info.reduction()):
        assert f.shape == (2, c, size // r, size // r)


def test_vit_model_forward(small_registry):
    model = build_model(tiny_config(encoder="vit_tiny_patch16_224"), small_registry).eval()
    with torch.no_grad():
        out = model(images(3), ["seg", "cls", "det"])
    assert out["seg"].shape == (1, 3, 64, 64) and out["cls"].shape == (1, 4) and out["det"].shape == (1, 5, 16, 16)


def test_convnext_has_no_stride_2_stage(small_registry):
    model = build_model(tiny_config(encoder="convnext_atto"), small_registry).eval()
    assert model.encoder.feature_info.reduction() == [4, 8, 16, 32]
    with torch.no_grad():
        assert model(images(1), ["seg"])["seg"].shape == (1, 3, 64, 64)


def test_resolve_precision():
    assert resolve_precision("fp32") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"
    assert resolve_precision("auto", "cpu") in ("bf16", "fp32")
