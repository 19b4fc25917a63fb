"""Reading a training config: YAML files over the defaults, dotted command-line
overrides, checks; writing the resolved config back as YAML.

Several files may be layered: a recipe, then a budget overlay (network size, epochs)
over it; each later one overrides the earlier ones key by key.

Overrides are ``dotted.key=value`` strings, the value parsed as a YAML scalar
(``train.epochs=2``, ``optim.lr=3e-4``, ``model.pretrained=none``, ``data.cache_dir=null``).
"""
from __future__ import annotations

import os
from typing import Any, Iterable, Mapping, Sequence

import yaml

from fmuia.io.atomic import write_text
from fmuia.config.schema import FLOAT_TEXT, Section, build, merge
from fmuia.config.sections import Config
from fmuia.errors import ConfigError

__all__ = ["defaults", "dump_config", "load_config", "merge_layers", "parse_override", "read_yaml", "save_config"]


def defaults() -> dict[str, Any]:
    """Every key a config may set, with its default, as nested mappings."""
    return Config().to_dict()


def parse_override(text: str) -> tuple[str, Any]:
    """``"a.b=value"`` -> ``("a.b", value)`` with the value parsed as a YAML scalar."""
    key, sep, raw = str(text).partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r}: expected KEY=VALUE with a dotted key, e.g. train.epochs=2")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML: {exc}") from None
    if isinstance(value, str) and FLOAT_TEXT.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads 3e-4 (no dot) as a string
    return key, value


def _nest(key: str, value: Any) -> dict[str, Any]:
    parts = key.split(".")
    out: dict[str, Any] = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        out = {part: out}
    return out


def read_yaml(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping at the top level")
    return data


ConfigSource = "str | os.PathLike[str] | Mapping[str, Any] | Config"


def load_config(
    source: "ConfigSource | Sequence[ConfigSource] | None" = None,
    overrides: "Iterable[str] | Mapping[str, Any] | None" = None,
) -> Config:
    """The resolved ``Config``: defaults <- ``source`` (YAML path, mapping or ``Config``,
    or a list of them, each merged over the ones before it key by key) <- ``overrides``.

    ``overrides`` is a list of ``"dotted.key=value"`` strings or a mapping of dotted keys
    to values. Unknown keys and wrong types are ``ConfigError``s naming the file or
    override and the dotted key."""
    return merge_layers(Config, source, overrides)


def merge_layers(
    schema: type,
    source: "ConfigSource | Sequence[ConfigSource] | None" = None,
    overrides: "Iterable[str] | Mapping[str, Any] | None" = None,
) -> Any:
    """The ``schema`` section (``Config``, ``fmuia.config.pretrain.PretrainConfig``) of its
    defaults <- each layer of ``source`` <- ``overrides``. Each layer is checked as it is
    laid on (so an error names the file or override it comes from) after the schema's
    ``migrate`` has put keys of older schemas in their place."""
    tree, config = schema().to_dict(), schema()
    layers = [(os.fspath(layer), read_yaml(os.fspath(layer))) if isinstance(layer, (str, os.PathLike))
              else ("config", layer.to_dict() if isinstance(layer, Section) else layer) for layer in _layers(source)]
    items = overrides.items() if isinstance(overrides, Mapping) else (parse_override(o) for o in overrides or ())
    layers += [(f"override {key}={value!r}", _nest(key, value)) for key, value in items]
    for where, data in layers:
        try:
            if isinstance(data, Mapping):
                data = schema.migrate(data, where)
            tree = merge(tree, data, schema=schema)
            config = build(schema, tree)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return config


def _layers(source: Any) -> list[Any]:
    """``source`` as the list of configs to merge in order."""
    if source is None:
        return []
    if isinstance(source, (list, tuple)):
        if not source:
            raise ConfigError("config: an empty list of config files")
        return list(source)
    return [source]


def dump_config(config: "Section | Mapping[str, Any]") -> str:
    """The config as YAML, keys in schema order."""
    return yaml.safe_dump(_plain(config.to_dict() if isinstance(config, Section) else config), sort_keys=False)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def save_config(config: "Section | Mapping[str, Any]", path: str) -> None:
    """Write the config as YAML, atomically."""
    write_text(path, dump_config(config))
