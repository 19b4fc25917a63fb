"""The improved recipe as named changes over the faithful one.

The faithful recipe is ``configs/fmuia2026_baseline.yaml`` and the improved one
``configs/fmuia_plus.yaml``. Each idea the improved recipe adds is a ``Change``: a
name, one line saying what it does, the config overrides that switch it on, and the
kinds it concerns. ``IMPROVEMENTS`` are the kept changes (the baseline plus all of them
is exactly the improved config); ``CANDIDATES`` were measured in the ablation but not
kept. The quality benchmark trains these combinations; the tests check that the
configs and this list agree.

    from fmuia.train.recipes import IMPROVEMENTS, apply_changes, find_change
    config = apply_changes("configs/fmuia2026_baseline.yaml", [find_change("mixed batches")],
                           extra={"train": {"max_steps": 600}})
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from fmuia.config import Config, load_config, merge
from fmuia.errors import ConfigError
from fmuia.tasks import Kind

__all__ = ["CANDIDATES", "IMPROVEMENTS", "Change", "apply_changes", "find_change", "recipe_difference"]

ConfigSource = "str | os.PathLike[str] | Mapping[str, Any]"


@dataclass(frozen=True)
class Change:
    """One switchable idea: ``overrides`` is merged over a resolved config."""

    name: str
    what: str
    overrides: Mapping[str, Any]
    kinds: tuple[Kind, ...] = ()  # the kinds it concerns, by their config names; () = every kind


IMPROVEMENTS: tuple[Change, ...] = (
    Change("keypoint heatmap", "keypoints: heatmap head on the FPN map, soft-argmax decoding",
           {"model": {"heads": {"keypoints": "heatmap"}, "routing": {"keypoints": "fpn"}}}, (Kind("keypoints"),)),
    Change("centre detection", "detection: centre map with negatives (focal) + box sides with GIoU",
           {"model": {"heads": {"detection": "centernet"}}}, (Kind("detection"),)),
    Change("dice + ce", "segmentation: Dice plus cross-entropy",
           {"loss": {"params": {"segmentation.conv": {"ce_weight": 1.0}}}}, (Kind("segmentation"),)),
    Change("augmentation", "geometric (masks/boxes/points move together), flips where allowed, speckle/gain/gamma/blur",
           {"augment": {"default": {"affine": 0.7, "hflip": 0.5, "speckle": 0.3, "gain": 0.3, "gamma": 0.3, "blur": 0.2}}}),
    Change("mixed batches", "samples of any tasks in one batch instead of one task per batch",
           {"sampler": {"mode": "mixed"}}),
)

# Measured by the ablation too, but not kept in the improved recipe (the README's
# ablation table says why).
CANDIDATES: tuple[Change, ...] = (
    Change("EMA", "validate and save an exponential moving average of the weights (decay 0.995)",
           {"train": {"ema_decay": 0.995}}),
)


def find_change(name: str) -> Change:
    """The change of ``IMPROVEMENTS`` or ``CANDIDATES`` called ``name``."""
    for change in IMPROVEMENTS + CANDIDATES:
        if change.name == name:
            return change
    known = ", ".join(repr(c.name) for c in IMPROVEMENTS + CANDIDATES)
    raise ConfigError(f"recipe change {name!r}: unknown (known: {known})")


def apply_changes(base: ConfigSource, changes: Iterable[Change] = (), extra: Mapping[str, Any] | None = None) -> Config:
    """The resolved config of ``base`` (a YAML path or a mapping) with ``changes`` merged
    in order, then ``extra`` (budget, network size, device)."""
    config = load_config(base)
    for change in changes:
        try:
            config = merge(config, change.overrides)
        except ConfigError as exc:
            raise ConfigError(f"recipe change {change.name!r}: {exc}") from None
    if extra:
        config = merge(config, extra)
    return load_config(config)


def recipe_difference(faithful: ConfigSource, improved: ConfigSource,
                      changes: Sequence[Change] = IMPROVEMENTS) -> list[str]:
    """Dotted config keys where ``faithful`` plus ``changes`` differs from ``improved``
    (empty: the improved recipe is exactly the faithful one plus the changes)."""
    return _differences(apply_changes(faithful, changes).to_dict(), load_config(improved).to_dict())


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        out: list[str] = []
        for key in sorted(set(a) | set(b), key=str):
            path = f"{prefix}{key}"
            if key not in a or key not in b:
                out.append(path)
            else:
                out += _differences(a[key], b[key], path + ".")
        return out
    return [] if a == b else [prefix.rstrip(".") or "config"]
