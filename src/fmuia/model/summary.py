"""Parameter and FLOP counts of the network's parts (encoder, decoder, heads by kind)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

import fmuia.model.routing as routing
from fmuia.model.network import MultiTaskModel
from fmuia.tasks import Kind


@dataclass
class PartStats:
    """``params``: all parameters of the part (every head of a kind together);
    ``gflops``: forward GFLOPs for one image through one instance of the part."""

    name: str
    modules: int
    params: int
    gflops: float


def _flops(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def _params(module: torch.nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


@torch.no_grad()
def summarise(model: MultiTaskModel, image_size: int | None = None) -> list[PartStats]:
    size = image_size or model.config.image_size
    was_training = model.training
    model.eval()
    try:
        image = torch.zeros(1, 3, size, size)
        feats = model.encoder(image)
        rows = [PartStats(f"encoder ({model.config.encoder})", 1, _params(model.encoder), _flops(lambda: model.encoder(image)))]
        sources = {routing.TOP: feats[-1]}
        if model.decoder is not None:
            rows.append(PartStats("decoder (FPN)", 1, _params(model.decoder), _flops(lambda: model.decoder(feats))))
            sources[routing.FPN] = model.decoder(feats)
        for kind in Kind:
            tasks = model.registry.of_kind(kind)
            if not tasks:
                continue
            heads = [model.head(t.task_id) for t in tasks]
            first = tasks[0].task_id
            features = sources[model.routes[first]]
            gflops = _flops(lambda: heads[0](features, (size, size)))
            label = f"{kind.value} heads ({model.head_types[kind]})"
            rows.append(PartStats(label, len(heads), sum(_params(h) for h in heads), gflops))
    finally:
        model.train(was_training)
    return rows


def format_table(rows: list[PartStats], image_size: int) -> str:
    lines = [f"{'part':<40} {'count':>5} {'params':>12} {'GFLOPs/img':>11}"]
    for row in rows:
        lines.append(f"{row.name:<40} {row.modules:>5} {row.params:>12,} {row.gflops:>11.4f}")
    total = sum(r.params for r in rows)
    lines.append(f"{'total':<40} {'':>5} {total:>12,}")
    lines.append(f"(GFLOPs: one {image_size}x{image_size} image through one instance of the part)")
    return "\n".join(lines)
