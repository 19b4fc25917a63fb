import time

import pytest
import timm
import torch
from model_helpers import images, tiny_config
from safetensors.torch import save_file

from fmuia.errors import ConfigError
from fmuia.model import Encoder, build_model
from fmuia.model import pretrained as weights


def _resnet18_state():
    torch.manual_seed(1)
    return timm.create_model("resnet18", pretrained=False).state_dict()


def test_local_pth_with_wrapper_and_prefix_reports_missing_and_unexpected(tmp_path):
    state = _resnet18_state()
    wrapped = {k: v for k, v in state.items() if not k.startswith("layer4.1.")}  # some missing
    wrapped["extra_head.weight"] = torch.zeros(3)  # unexpected
    wrapped["conv1.weight"] = torch.zeros(1, 1)  # wrong shape
    path = tmp_path / "w.pth"
    torch.save({"epoch": 3, "state_dict": {f"module.encoder.{k}": v for k, v in wrapped.items()}}, path)
    enc = Encoder("resnet18", 64, str(path))
    report = enc.load_report
    assert report.unexpected == ["module.encoder.fc.weight", "module.encoder.fc.bias", "module.encoder.extra_head.weight"]
    assert any(k.startswith("layer4.1.") for k in report.missing)
    assert report.mismatched == [("conv1.weight", (1, 1), (64, 3, 7, 7))]
    assert "conv1.weight" in report.missing and "layer1.0.conv1.weight" in report.loaded
    torch.testing.assert_close(enc.model.state_dict()["layer1.0.conv1.weight"], state["layer1.0.conv1.weight"])
    assert "missing" in report.summary() and "unexpected" in report.summary()


def test_local_safetensors_with_model_prefix_loads_everything(tmp_path):
    state = {f"model.{k}": v.contiguous() for k, v in _resnet18_state().items()}
    path = tmp_path / "w.safetensors"
    save_file(state, str(path))
    report = Encoder("resnet18", 64, str(path)).load_report
    assert report.missing == [] and report.mismatched == []
    assert sorted(report.unexpected) == ["model.fc.bias", "model.fc.weight"]


def test_bad_weight_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        Encoder("resnet18", 64, str(tmp_path / "none.pth"))
    (tmp_path / "w.bin").write_bytes(b"x")
    with pytest.raises(ConfigError, match="must end in"):
        Encoder("resnet18", 64, str(tmp_path / "w.bin"))
    torch.save({"other": torch.zeros(2)}, tmp_path / "w.pt")
    with pytest.raises(ConfigError, match="no tensor of .* fits"):
        Encoder("resnet18", 64, str(tmp_path / "w.pt"))


def test_imagenet_offline_fails_fast_naming_the_alternatives(monkeypatch, tmp_path, small_registry):
    import huggingface_hub.constants as hub_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))  # an empty cache
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    start = time.monotonic()
    with pytest.raises(ConfigError) as info:
        build_model(tiny_config(pretrained="imagenet"), small_registry)
    assert time.monotonic() - start < 20
    message = str(info.value)
    assert "offline" in message and "pretrained: none" in message and "local weights file" in message
    assert hub_constants.HF_HUB_OFFLINE == hub_constants.HF_HUB_OFFLINE  # restored, not left forced


def test_hub_probe_honours_offline_flag(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    assert weights.hub_reachable() is False
    assert time.monotonic() - start < 0.5


def test_lite0_package_weights_map_onto_timm():
    path = weights.lite0_package_file()
    state = weights.read_state_dict(path)
    assert "_conv_stem.weight" in state and weights.has_efficientnet_pytorch_naming(state)
    full = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    report = weights.load_into(full, state, str(path))
    assert report.missing == [] and report.unexpected == [] and report.mismatched == []
    # Synthetic images (0.5/0.5 normalisation of these weights): a checkerboard, a disc,
    # stripes and noise. Pretrained predictions are confident and differ per image; a
    # random-init network is near uniform.
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 224), torch.linspace(-1, 1, 224), indexing="ij")
    checker = (((xx * 8).floor() + (yy * 8).floor()) % 2).expand(3, -1, -1)
    disc = torch.stack([(xx**2 + yy**2 < 0.3).float(), torch.zeros_like(xx), torch.full_like(xx, 0.5)])
    stripes = (torch.sin(xx * 20) > 0).float().expand(3, -1, -1)
    noise = torch.rand(3, 224, 224, generator=torch.Generator().manual_seed(0))
    x = (torch.stack([checker, disc, stripes, noise]) - 0.5) / 0.5
    with torch.no_grad():
        probs = full(x).softmax(1)
    assert len(set(probs.argmax(1).tolist())) == 4
    assert probs.max(1).values.min() > 0.1  # uniform would be 0.001
    entropy = -(probs * probs.log()).sum(1)
    assert entropy.max() < 5.5  # uniform: log(1000) = 6.9


def test_lite0_package_as_encoder_pretrained(small_registry):
    model = build_model(tiny_config(encoder="tf_efficientnet_lite0", pretrained="efficientnet-lite0-package"), small_registry)
    report = model.encoder.load_report
    assert report.missing == [] and report.mismatched == []
    assert set(k.split(".")[0] for k in report.unexpected) == {"conv_head", "bn2", "classifier"}
    assert model.encoder.adapt_input  # ImageNet-normalised input mapped to the 0.5/0.5 of these weights
    with torch.no_grad():
        assert torch.isfinite(model.eval()(images(2), ["seg", "cls"])["seg"]).all()
    with pytest.raises(ConfigError, match="tf_efficientnet_lite0"):
        build_model(tiny_config(pretrained="efficientnet-lite0-package"), small_registry)
