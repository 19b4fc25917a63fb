"""The multi-task network: timm encoder, FPN decoder, per-kind task routing, task heads,
and checkpoints that rebuild the model on their own."""
from fmuia.model.checkpoint import load_checkpoint, read_checkpoint_meta, save_checkpoint
from fmuia.model.config import ModelConfig
from fmuia.runtime import autocast, cpu_has_fast_bf16, resolve_precision
from fmuia.model.decoder import FPN
from fmuia.model.encoder import Encoder, FeatureInfo
from fmuia.model.heads import Head, default_heads, head_types
from fmuia.model.network import MultiTaskModel, build_model
from fmuia.model.pretrained import LoadReport
from fmuia.model.routing import default_routes, group_indices, resolve_routes

__all__ = [
    "Encoder", "FPN", "FeatureInfo", "Head", "default_heads", "default_routes", "head_types",
    "LoadReport", "ModelConfig", "MultiTaskModel", "autocast", "build_model", "cpu_has_fast_bf16",
    "group_indices", "load_checkpoint", "read_checkpoint_meta", "resolve_precision",
    "resolve_routes", "save_checkpoint",
]
