"""The multi-task network: timm encoder, FPN decoder, per-kind task routing, task heads,
and checkpoints that rebuild the model on their own."""
from fmuia.model.checkpoint import load_checkpoint, read_checkpoint_meta, save_checkpoint
from fmuia.model.config import ModelConfig
from fmuia.runtime import autocast, cpu_has_fast_bf16, resolve_precision
from fmuia.model.decoder import FPN
from fmuia.model.encoder import Encoder, FeatureInfo
from fmuia.model.heads import DEFAULT_HEADS, HEAD_TYPES, Head, register_head
from fmuia.model import heatmap_heads  # noqa: F401,E402 - registers the keypoint heatmap and centre detection heads
from fmuia.model.network import MultiTaskModel, build_model
from fmuia.model.pretrained import LoadReport
from fmuia.model.routing import DEFAULT_ROUTES, group_indices, resolve_routes

__all__ = [
    "DEFAULT_HEADS", "DEFAULT_ROUTES", "Encoder", "FPN", "FeatureInfo", "HEAD_TYPES", "Head",
    "LoadReport", "ModelConfig", "MultiTaskModel", "autocast", "build_model", "cpu_has_fast_bf16",
    "group_indices", "load_checkpoint", "read_checkpoint_meta", "register_head", "resolve_precision",
    "resolve_routes", "save_checkpoint",
]
