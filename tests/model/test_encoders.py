import pytest
import torch

from fmuia.errors import ConfigError
from fmuia.model import Encoder, build_model
from fmuia import runtime
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


def test_resolve_precision_keeps_an_explicit_choice():
    assert [resolve_precision(p, "cpu") for p in ("fp32", "bf16", "fp16")] == ["fp32", "bf16", "fp16"]
    with pytest.raises(ConfigError, match="precision: expected one of auto, fp32, bf16, fp16, got 'fp64'"):
        resolve_precision("fp64")


@pytest.mark.parametrize("fast_bf16, expected", [(True, "bf16"), (False, "fp32")])
def test_resolve_precision_auto_on_cpu_follows_the_bf16_hardware(monkeypatch, fast_bf16, expected):
    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: fast_bf16)
    assert resolve_precision("auto", "cpu") == expected


@pytest.mark.parametrize("bf16_supported, expected", [(True, "bf16"), (False, "fp16")])
def test_resolve_precision_auto_on_cuda(monkeypatch, bf16_supported, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16_supported)
    assert resolve_precision("auto", "cuda") == expected
