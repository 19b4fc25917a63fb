"""The multi-task network: one shared encoder, an FPN for dense tasks, one head per task."""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from fmuia.errors import ConfigError
import fmuia.model.routing as routing
from fmuia.config.predict import PredictConfig
from fmuia.model.config import ModelConfig
from fmuia.model.decoder import FPN
from fmuia.model.encoder import Encoder
from fmuia.model.heads import Head, build_head, head_class, head_types
from fmuia.model.input_sizes import scaled_size, task_input_sizes
from fmuia.tasks import TaskRegistry


__all__ = ["MultiTaskModel", "build_model", "scaled_size", "task_input_sizes"]


def _module_key(task_id: str) -> str:
    return task_id.replace(".", "%2E")  # module names may not contain dots


class MultiTaskModel(nn.Module):
    """``model(images, task_ids) -> dict[task_id, Tensor]``.

    ``images``: float ``(B, 3, H, W)``, ImageNet mean/std normalised, H and W multiples of 32.
    ``task_ids``: ``B`` task ids, one per image (any mix of tasks). The encoder runs once on
    the whole batch, the FPN once on the samples whose task reads it, each head on its own
    samples. ``out[t]`` holds task ``t``'s rows in batch order (see ``group_indices``), as
    float32 even under autocast. Raw output shapes are documented on each head class.

    ``predict``: the prediction-only settings the model carries (the ``predict:`` section;
    saved with the checkpoint); the heads decode with them (``set_decoding``).
    """

    def __init__(self, registry: TaskRegistry, config: ModelConfig, predict: PredictConfig | None = None) -> None:
        super().__init__()
        if len(registry) == 0:
            raise ConfigError("the model needs at least one task")
        self.registry = registry
        self.config = config
        self.encoder = Encoder(config.encoder, config.image_size, config.pretrained)
        self.head_types = head_types(config.heads)
        # A head type may name the features it needs (``feature_source``); the config's
        # routing still has the last word.
        preferred = {kind.value: head_class(kind, name).feature_source for kind, name in self.head_types.items()
                     if head_class(kind, name).feature_source}
        self.routes = routing.resolve_routes(registry, {**preferred, **config.routing})
        # Each task's input side (``model.input_scale``); the weights serve every size. The
        # one source of the mapping: data loading and prediction receive it from here.
        self.input_sizes: dict[str, int] = task_input_sizes(registry, config)
        needs_fpn = routing.FPN in self.routes.values()
        self.decoder: FPN | None = (
            FPN(self.encoder.feature_info, config.decoder_channels, config.decoder_out_channels, config.decoder_dropout,
                config.decoder_stride)
            if needs_fpn else None
        )
        channels = {routing.TOP: self.encoder.top_channels, routing.FPN: config.decoder_out_channels}
        self.heads = nn.ModuleDict({
            _module_key(t.task_id): build_head(t, channels[self.routes[t.task_id]], config, self.head_types[t.kind])
            for t in registry
        })
        self.set_decoding(predict or PredictConfig())
        if config.channels_last:
            self.to(memory_format=torch.channels_last)

    def set_decoding(self, predict: PredictConfig) -> None:
        """Decode with ``predict``'s settings (box voting); the weights stay as they are."""
        self.predict = predict
        for head in self.heads.values():
            head.set_decoding(predict)

    def head(self, task_id: str) -> Head:
        if task_id not in self.registry:
            raise KeyError(f"unknown task {task_id!r}; the model's tasks: {', '.join(self.registry.task_ids)}")
        return self.heads[_module_key(task_id)]

    def decode(self, outputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each task's raw output turned into normalised predictions by its head."""
        return {task_id: self.head(task_id).decode(raw) for task_id, raw in outputs.items()}

    def forward(self, images: torch.Tensor, task_ids: Sequence[str]) -> dict[str, torch.Tensor]:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        if len(task_ids) != images.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {len(task_ids)} task ids")
        height, width = images.shape[-2:]
        if height % 32 or width % 32:
            raise ValueError(f"image height and width must be multiples of 32, got {height}x{width}")
        groups = routing.group_indices(task_ids)
        unknown = [t for t in groups if t not in self.registry]
        if unknown:
            raise KeyError(f"unknown task(s) {', '.join(map(repr, unknown))}; the model's tasks: {', '.join(self.registry.task_ids)}")
        if self.config.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        batch = images.shape[0]
        feats = self.encoder(images)
        sources = {routing.TOP: (feats[-1], None)}
        fpn_rows = sorted(i for t, rows in groups.items() if self.routes[t] == routing.FPN for i in rows)
        if fpn_rows:
            sources[routing.FPN] = (self.decoder(_rows(feats, fpn_rows, batch)), {i: j for j, i in enumerate(fpn_rows)})
        out: dict[str, torch.Tensor] = {}
        for task_id, rows in groups.items():
            features, position = sources[self.routes[task_id]]
            local = rows if position is None else [position[i] for i in rows]
            raw = self.head(task_id)(_rows([features], local, features.shape[0])[0], (height, width))
            out[task_id] = raw.float()
        return out


def _rows(tensors: list[torch.Tensor], rows: list[int], batch: int) -> list[torch.Tensor]:
    """The given batch rows of each tensor (no copy when that is all of them, in order)."""
    if len(rows) == batch and rows == list(range(batch)):
        return tensors
    index = torch.as_tensor(rows, device=tensors[0].device)
    return [t.index_select(0, index) for t in tensors]


def build_model(config: "ModelConfig | Mapping | None", registry: TaskRegistry,
                predict: PredictConfig | None = None) -> MultiTaskModel:
    """Build the network for ``registry`` from a ``ModelConfig`` or the ``model:`` mapping,
    carrying the prediction settings ``predict`` (default: the ``predict:`` defaults)."""
    if not isinstance(config, ModelConfig):
        config = ModelConfig.from_dict(config)
    return MultiTaskModel(registry, config, predict)
