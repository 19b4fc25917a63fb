"""Named changes: the steps between recipes, each stated once.

A change is a name, one line saying what it does, the config overrides that switch it
on, and the kinds it concerns. Changes live in catalogues, the YAML files of a
``changes/`` folder beside the recipes (``configs/changes/fixes.yaml``,
``improvements.yaml``, ``candidates.yaml``), one entry per change::

    keypoint heatmap:
      what: "keypoints: heatmap head on the FPN map, soft-argmax decoding"
      kinds: [keypoints]            # absent: every kind
      overrides:
        model: {heads: {keypoints: heatmap}, routing: {keypoints: fpn}}

A config applies changes by name (``changes: [keypoint heatmap]``);
``fmuia.config.loading`` finds them in the ``changes/`` folder beside that config or
beside a config it extends. This module only parses: it reads no file and imports no
task or kind module (a kind is named by its config name, which compares equal to
``fmuia.tasks.Kind``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from fmuia.errors import ConfigError

__all__ = ["CHANGES_FOLDER", "Change", "parse_catalogue"]

# The folder, beside a config, whose YAML files are the catalogues its `changes:` names come from.
CHANGES_FOLDER = "changes"

_ENTRY_KEYS = ("what", "kinds", "overrides")


@dataclass(frozen=True)
class Change:
    """One switchable idea: ``overrides`` is merged over the config that applies it."""

    name: str
    what: str
    overrides: Mapping[str, Any]
    kinds: tuple[str, ...] = ()  # the kinds it concerns, by their config names; () = every kind


def parse_catalogue(data: Mapping[str, Any], where: str) -> tuple[Change, ...]:
    """The changes of one catalogue (``data``: its YAML, read from ``where``), in file order."""
    changes = []
    for name, entry in data.items():
        if not isinstance(name, str) or not name.strip() or "," in name:
            # benchmarks/quality.py --only splits its list of names on commas
            raise ConfigError(f"{where}: change {name!r}: a name is non-empty text without commas")
        if not isinstance(entry, Mapping) or set(entry) - set(_ENTRY_KEYS) or "overrides" not in entry:
            raise ConfigError(f"{where}: change {name!r}: expected a mapping of {', '.join(_ENTRY_KEYS)} "
                              f"(overrides required), got {entry!r}")
        what, overrides, kinds = entry.get("what"), entry["overrides"], entry.get("kinds") or []
        if not isinstance(what, str) or not what.strip():
            raise ConfigError(f"{where}: change {name!r}: 'what' must be one line of text")
        if not isinstance(overrides, Mapping) or not overrides:
            raise ConfigError(f"{where}: change {name!r}: 'overrides' must be a non-empty mapping of config keys")
        if not isinstance(kinds, list) or not all(isinstance(k, str) and k for k in kinds):
            raise ConfigError(f"{where}: change {name!r}: 'kinds' must be a list of kind names, got {kinds!r}")
        changes.append(Change(name, what.strip(), overrides, tuple(kinds)))
    return tuple(changes)
