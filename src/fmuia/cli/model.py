"""``fmuia model summary``: parameters and GFLOPs of the network's parts."""
from __future__ import annotations

import argparse
from pathlib import Path

from fmuia.config import ModelConfig, load_config, read_yaml
from fmuia.errors import ConfigError

COMMAND = "model"
HELP = "inspect the network (summary: parameters and GFLOPs per part)"
ORDER = 60


def add_arguments(parser: argparse.ArgumentParser) -> None:
    verbs = parser.add_subparsers(dest="model_verb", metavar="VERB", required=True)
    summary = verbs.add_parser("summary", help="parameters and GFLOPs of encoder, decoder and each head kind")
    summary.add_argument("--config", type=Path, help="YAML whose 'model:' section is the model config (default: built-in defaults)")
    summary.add_argument("--image-size", type=int, help="input side in pixels (multiple of 32; default: the config's image_size)")
    summary.add_argument("--encoder", help="timm encoder name (overrides the config)")


def _read_config(path: Path | None) -> tuple[ModelConfig, list | None]:
    """The typed model section of ``path`` (a training config; defaults without one) and
    the task list of a top-level ``tasks:`` list, which is not a config key."""
    if path is None:
        return load_config().model, None
    data = read_yaml(str(path))
    tasks = data.pop("tasks") if isinstance(data.get("tasks"), list) else None
    if tasks is None:  # a config file as `fmuia train` reads it: what it extends and its changes included
        return load_config(str(path)).model, None
    try:
        return load_config(data).model, tasks
    except ConfigError as exc:
        # load_config names a mapping "config"; name the file instead.
        raise ConfigError(f"{path}: {str(exc).removeprefix('config: ')}") from None


def run(args: argparse.Namespace) -> int:
    # Imported on call, like every command's heavy modules: ``fmuia --help`` stays fast.
    from fmuia.model.network import build_model
    from fmuia.model.summary import format_table, summarise
    from fmuia.tasks import TaskRegistry, fmuia2026

    config, tasks = _read_config(args.config)
    changes = {"pretrained": "none"}  # counting needs no weights
    if args.encoder:
        changes["encoder"] = args.encoder
    if args.image_size is not None:
        changes["image_size"] = args.image_size
    config = config.replace(**changes)
    try:
        registry = TaskRegistry.from_list(tasks) if tasks is not None else fmuia2026()
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"--config {args.config}: tasks: {exc}") from None
    model = build_model(config, registry)
    print(f"encoder {config.encoder}, {len(registry)} tasks, image {config.image_size}x{config.image_size}")
    other_sizes = {side: [t for t, s in model.input_sizes.items() if s == side]
              for side in sorted(set(model.input_sizes.values())) if side != config.image_size}
    for side, task_ids in other_sizes.items():  # model.input_scale
        print(f"  {side}x{side} for {len(task_ids)} task(s): {', '.join(task_ids)}")
    print(format_table(summarise(model, config.image_size), config.image_size))
    return 0
