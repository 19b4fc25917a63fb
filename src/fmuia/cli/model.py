"""``fmuia model summary``: parameters and GFLOPs of the network's parts."""
from __future__ import annotations

import argparse
from pathlib import Path

import yaml

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


def _read_config(path: Path | None) -> tuple[dict, list | None]:
    if path is None:
        return {}, None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--config {path}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: expected a mapping at the top level")
    model = data.get("model") or {}
    if not isinstance(model, dict):
        raise ConfigError(f"--config {path}: 'model' must be a mapping")
    tasks = data.get("tasks")
    return model, tasks if isinstance(tasks, list) else None


def run(args: argparse.Namespace) -> int:
    from fmuia.model import ModelConfig, build_model
    from fmuia.model.summary import format_table, summarise
    from fmuia.tasks import TaskRegistry, fmuia2026

    section, tasks = _read_config(args.config)
    config = ModelConfig.from_dict(section)
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
    print(format_table(summarise(model, config.image_size), config.image_size))
    return 0
