"""Reading a training config: YAML files over the defaults, dotted command-line
overrides, checks; writing the resolved config back as YAML.

Several files may be layered: a recipe, then a budget overlay (network size, epochs)
over it; each later one overrides the earlier ones key by key.

A file may extend another and name the changes it applies::

    extends: fmuia2026_baseline.yaml      # relative to this file; chains allowed
    changes: [keypoint heatmap, mixed batches]
    train: {epochs: 20}

reads as the file it extends (resolved the same way), then each named change's overrides
(``fmuia.config.changes``: found in the ``changes/`` folder beside this file or beside a
file it extends), then this file's own keys. A resolved config, as a run saves it, names
neither: it loads without the files it came from.

Overrides are ``dotted.key=value`` strings, the value parsed as a YAML scalar
(``train.epochs=2``, ``optim.lr=3e-4``, ``model.pretrained=none``, ``data.cache_dir=null``).
"""
from __future__ import annotations

import copy
import functools
import os
from typing import Any, Iterable, Mapping, Sequence

import yaml

from fmuia.io.atomic import write_text
from fmuia.config.changes import CHANGES_FOLDER, Change, parse_catalogue
from fmuia.config.checks import FLOAT_TEXT
from fmuia.config.sections import Config, Section, build_config, merge
from fmuia.errors import ConfigError

__all__ = ["defaults", "dump_config", "load_config", "merge_layers", "parse_override", "read_changes", "read_yaml",
           "save_config"]


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
    return build_config(merge_layers(defaults(), source, overrides))


def merge_layers(
    tree: Mapping[str, Any],
    source: "ConfigSource | Sequence[ConfigSource] | None" = None,
    overrides: "Iterable[str] | Mapping[str, Any] | None" = None,
) -> dict[str, Any]:
    """``tree`` (a schema's defaults) <- each layer of ``source`` <- ``overrides``, checked
    key by key as ``load_config`` describes; any config schema built from ``Section``s
    (the training ``Config``, ``fmuia.config.pretrain.PretrainConfig``) reads its files this way."""
    tree = dict(tree)
    for layer in _layers(source):
        for where, data in _expand(layer):
            try:
                tree = merge(tree, data)
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from None
    items = overrides.items() if isinstance(overrides, Mapping) else (parse_override(o) for o in overrides or ())
    for key, value in items:
        try:
            tree = merge(tree, _nest(key, value))
        except ConfigError as exc:
            raise ConfigError(f"override {key}={value!r}: {exc}") from None
    return tree


def _layers(source: Any) -> list[Any]:
    """``source`` as the list of configs to merge in order."""
    if source is None:
        return []
    if isinstance(source, (list, tuple)):
        if not source:
            raise ConfigError("config: an empty list of config files")
        return list(source)
    return [source]


def _expand(layer: Any) -> list[tuple[str, Mapping[str, Any]]]:
    """One layer of a source as the mappings to merge in order, each with where it came
    from: a file's chain of ``extends`` and ``changes``, or a ``Change`` (a named change's
    overrides), or a mapping or ``Config`` as it is."""
    if isinstance(layer, (str, os.PathLike)):
        return _file_layers(os.fspath(layer), ())[0]
    if isinstance(layer, Change):
        return [(f"recipe change {layer.name!r}", layer.overrides)]
    data = layer.to_dict() if isinstance(layer, Section) else layer
    if isinstance(data, Mapping) and ("extends" in data or "changes" in data):
        raise ConfigError("config: 'extends' and 'changes' are read from config files only, not from a mapping")
    return [("config", data)]


def _file_layers(path: str, chain: tuple[str, ...]) -> tuple[list[tuple[str, Mapping[str, Any]]], list[str]]:
    """The layers of the file at ``path`` (what it extends, its changes, its own keys) and
    the folders, nearest first, whose ``changes/`` catalogues its names are looked up in.
    ``chain``: the files that extend it, to refuse a cycle."""
    if os.path.realpath(path) in chain:
        cycle = " -> ".join([*chain[chain.index(os.path.realpath(path)):], os.path.realpath(path)])
        raise ConfigError(f"{path}: extends itself ({cycle})")
    data = read_yaml(path)
    layers: list[tuple[str, Mapping[str, Any]]] = []
    folders = [os.path.dirname(os.path.abspath(path))]
    parent = data.pop("extends", None)
    if parent is not None:
        if not isinstance(parent, str) or not parent.strip():
            raise ConfigError(f"{path}: extends: expected the path of a config file, got {parent!r}")
        target = os.path.join(os.path.dirname(path), os.path.expanduser(parent))
        if not os.path.isfile(target):
            raise ConfigError(f"{path}: extends {parent}: no such file ({target})")
        parent_layers, parent_folders = _file_layers(target, (*chain, os.path.realpath(path)))
        layers += parent_layers
        folders += parent_folders
    names = data.pop("changes", None) or []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or len(set(names)) < len(names):
        raise ConfigError(f"{path}: changes: expected a list of different change names, got {names!r}")
    # a copy: the parsed catalogues are cached and shared
    layers += [(f"{path}: recipe change {c.name!r}", copy.deepcopy(c.overrides)) for c in _find_changes(names, folders, path)]
    layers.append((path, data))
    return layers, folders


def _find_changes(names: list[str], folders: list[str], path: str) -> list[Change]:
    """Each of ``names`` from the catalogues of the nearest of ``folders`` that has it."""
    catalogues = [_catalogue(os.path.join(folder, CHANGES_FOLDER)) for folder in dict.fromkeys(folders)]
    found = []
    for name in names:
        change = next((c[name] for c in catalogues if name in c), None)
        if change is None:
            where = " or ".join(dict.fromkeys(os.path.join(f, CHANGES_FOLDER) for f in folders))
            known = ", ".join(repr(n) for c in catalogues for n in c) or "none"
            raise ConfigError(f"{path}: changes: unknown change {name!r} (looked in {where}; known: {known})")
        found.append(change)
    return found


def _catalogue(folder: str) -> dict[str, Change]:
    """Every change of the catalogues in ``folder`` (none when it does not exist), by name."""
    by_name: dict[str, Change] = {}
    where: dict[str, str] = {}
    files = sorted(f for f in os.listdir(folder) if f.endswith(".yaml")) if os.path.isdir(folder) else []
    for entry in files:
        path = os.path.join(folder, entry)
        stat = os.stat(path)
        for change in _read_changes_cached(path, stat.st_mtime_ns, stat.st_size):
            if change.name in by_name:
                raise ConfigError(f"{path}: change {change.name!r} is also in {where[change.name]}")
            by_name[change.name], where[change.name] = change, path
    return by_name


def read_changes(path: str) -> tuple[Change, ...]:
    """The named changes of the catalogue file at ``path``, in file order."""
    return parse_catalogue(read_yaml(path), path)


@functools.lru_cache(maxsize=64)
def _read_changes_cached(path: str, mtime_ns: int, size: int) -> tuple[Change, ...]:
    # A recipe resolves its chain's catalogues again at each load (the quality benchmark
    # resolves hundreds of configs); a file is parsed again only once it has changed.
    return read_changes(path)


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
