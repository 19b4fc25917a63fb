"""The three recipes as named changes over one another.

``configs/fmuia2026_official.yaml`` reproduces the official code, quirks included;
``configs/fmuia2026_baseline.yaml`` is that recipe with each defect fixed by flipping its
switch; ``configs/fmuia_plus.yaml`` is the improved recipe. Each step is a ``Change``: a
name, one line saying what it does, the config overrides that switch it on, and the
kinds it concerns. ``FIXES`` lead from the official recipe to the baseline (the official
plus all of them is exactly the baseline), ``IMPROVEMENTS`` from the baseline to the
improved recipe; ``CANDIDATES`` were measured but not kept. The quality benchmark trains
these combinations; the tests check that the configs and these lists agree.

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

__all__ = ["CANDIDATES", "FIXES", "IMPROVEMENTS", "Change", "apply_changes", "changed_keys", "find_change",
           "recipe_difference"]

ConfigSource = "str | os.PathLike[str] | Mapping[str, Any]"


@dataclass(frozen=True)
class Change:
    """One switchable idea: ``overrides`` is merged over a resolved config."""

    name: str
    what: str
    overrides: Mapping[str, Any]
    kinds: tuple[Kind, ...] = ()  # the kinds it concerns, by their config names; () = every kind


# The official code's defects, each fixed by flipping one switch of the official recipe.
FIXES: tuple[Change, ...] = (
    Change("decoder trained", "the FPN decoder is optimised too (the official: left at its random initialisation)",
           {"optim": {"train_decoder": True}}),
    Change("detection negatives", "detection: the score map also learns where no box is centred, the centre "
                                  "cells keeping half of the score loss",
           {"loss": {"params": {"detection.grid": {"negatives": True, "positive_share": 0.5}}}}, (Kind("detection"),)),
    Change("every task visited", "one task per batch, every task once per cycle instead of drawn i.i.d.",
           {"sampler": {"mode": "round_robin"}}),
    Change("per-task validation split", "20% of each task held out instead of 20% of all rows",
           {"data": {"val_split": "per_task"}}),
    Change("balanced selection", "best checkpoint by the chance-rescaled score averaged over kinds",
           {"train": {"select": "balanced"}}),
    Change("bounded keypoint regression", "keypoints: the regressed coordinates pass a sigmoid, so every "
                                          "prediction lies in the image (the official: raw outputs clamped to it)",
           {"model": {"heads": {"keypoints": "bounded_regression"}}}, (Kind("keypoints"),)),
    Change("seeded augmentation", "augmentation drawn from (seed, epoch, sample): runs repeat exactly",
           {"augment": {"seeded": True}}),
)

IMPROVEMENTS: tuple[Change, ...] = (
    Change("keypoint heatmap", "keypoints: heatmap head on the FPN map, soft-argmax decoding",
           {"model": {"heads": {"keypoints": "heatmap"}, "routing": {"keypoints": "fpn"}}}, (Kind("keypoints"),)),
    Change("centre detection", "detection: centre map with negatives (focal) + box sides with GIoU",
           {"model": {"heads": {"detection": "centernet"}}}, (Kind("detection"),)),
    Change("dice + ce", "segmentation: Dice plus cross-entropy",
           {"loss": {"params": {"segmentation.conv": {"ce_weight": 1.0}}}}, (Kind("segmentation"),)),
    Change("augmentation", "geometric (masks/boxes/points move together), flips where allowed, speckle/gain/gamma/blur, "
                           "brightness/contrast p=0.5 and no Gaussian noise",
           {"augment": {"default": {"brightness_contrast": 0.5, "noise": 0.0, "affine": 0.7, "hflip": 0.5,
                                    "speckle": 0.3, "gain": 0.3, "gamma": 0.3, "blur": 0.2}}}),
    Change("classification: light augmentation", "classification tasks keep the official light policy "
                                                  "(brightness/contrast p=0.2, Gaussian noise p=0.1, nothing else)",
           {"augment": {"kinds": {"classification": {"brightness_contrast": 0.2, "noise": 0.1, "affine": 0.0,
                                                     "hflip": 0.0, "speckle": 0.0, "gain": 0.0, "gamma": 0.0,
                                                     "blur": 0.0}}}}, (Kind("classification"),)),
    Change("mixed batches", "samples of any tasks in one batch instead of one task per batch",
           {"sampler": {"mode": "mixed"}}),
    Change("gradient clipping", "the gradient norm clipped at 1",
           {"train": {"grad_clip": 1.0}}),
    Change("per-step cosine", "the cosine schedule stepped every optimiser step instead of every epoch",
           {"schedule": {"interval": "step"}}),
    Change("learning rate x5", "the base learning rate 5e-4 instead of 1e-4 (heads and decoder still 10x), warmed up "
                               "over the first 60 steps",
           {"optim": {"lr": 5.0e-4}, "schedule": {"warmup_steps": 60}}),
    Change("classification: position pooling", "classification heads pool each channel's mean and its x/y first "
                                                "moments (where a feature lies), not the mean alone",
           {"model": {"heads": {"classification": "position_pooled"}}}, (Kind("classification"),)),
    Change("uncertainty weighting", "each task's loss weighted by a learned homoscedastic uncertainty",
           {"loss": {"balance": "uncertainty"}}),
    Change("test-time flip", "predictions average a horizontally flipped view, for the tasks whose label survives a "
                             "flip (prediction only: training is unchanged)",
           {"predict": {"tta": True}}),
    Change("box voting", "detection: the box is the score-weighted mean of the boxes of the cells around the peak "
                         "(prediction only: training is unchanged)",
           {"predict": {"box_voting": True}}, (Kind("detection"),)),
    Change("dense tasks at 1.25x resolution", "segmentation, detection and keypoint tasks see a 1.25x larger "
                                              "input (160 px at image_size 128); classification keeps image_size",
           {"model": {"input_scale": {"segmentation": 1.25, "detection": 1.25, "keypoints": 1.25}}},
           (Kind("segmentation"), Kind("detection"), Kind("keypoints"))),
)

# Measured by the ablation too, but not kept in the improved recipe (the README's
# ablation table says why).
CANDIDATES: tuple[Change, ...] = (
    Change("EMA", "validate and save an exponential moving average of the weights (decay 0.995)",
           {"train": {"ema_decay": 0.995}}),
    Change("learning rate x3", "the base learning rate 3e-4 instead of 1e-4 (heads and decoder still 10x), warmed up "
                               "over the first 60 steps",
           {"optim": {"lr": 3.0e-4}, "schedule": {"warmup_steps": 60}}),
    Change("learning rate x10", "the base learning rate 1e-3 instead of 1e-4 (heads and decoder still 10x), warmed up "
                                "over the first 60 steps",
           {"optim": {"lr": 1.0e-3}, "schedule": {"warmup_steps": 60}}),
    Change("classification from the FPN map", "classification heads read the FPN map (stride 4) instead of the "
                                              "encoder's top features (stride 32)",
           {"model": {"routing": {"classification": "fpn"}}}, (Kind("classification"),)),
    Change("segmentation: conv tower", "segmentation heads put two 3x3 conv-GroupNorm-ReLU blocks before the class "
                                       "conv (Dice + cross-entropy as before)",
           {"model": {"heads": {"segmentation": "tower"}},
            "loss": {"params": {"segmentation.tower": {"ce_weight": 1.0}}}}, (Kind("segmentation"),)),
    Change("no decoder dropout", "the FPN map without its channel dropout (smp's default 0.2)",
           {"model": {"decoder_dropout": 0.0}}, (Kind("segmentation"), Kind("detection"), Kind("keypoints"))),
    Change("fine decoder stage", "dense tasks read a stride-2 map: the FPN's 1/4 map upsampled and fused with the "
                                 "encoder's stride-2 features",
           {"model": {"decoder_stride": 2}}, (Kind("segmentation"), Kind("detection"), Kind("keypoints"))),
    Change("classification: label smoothing", "classification trained towards targets with 0.1 of their mass spread "
                                              "over the classes",
           {"loss": {"params": {"classification.position_pooled": {"label_smoothing": 0.1}}}},
           (Kind("classification"),)),
    Change("dense tasks at 1.5x resolution", "segmentation, detection and keypoint tasks see a 1.5x larger input "
                                             "(192 px at image_size 128); classification keeps image_size",
           {"model": {"input_scale": {"segmentation": 1.5, "detection": 1.5, "keypoints": 1.5}}},
           (Kind("segmentation"), Kind("detection"), Kind("keypoints"))),
    Change("classification: no geometric augmentation", "classification tasks without the scale/rotation/shift",
           {"augment": {"kinds": {"classification": {"affine": 0.0}}}}, (Kind("classification"),)),
    Change("classification: no ultrasound photometric augmentation",
           "classification tasks without speckle, gain, gamma and blur",
           {"augment": {"kinds": {"classification": {"speckle": 0.0, "gain": 0.0, "gamma": 0.0, "blur": 0.0}}}},
           (Kind("classification"),)),
)


def find_change(name: str) -> Change:
    """The change of ``FIXES``, ``IMPROVEMENTS`` or ``CANDIDATES`` called ``name``."""
    every = FIXES + IMPROVEMENTS + CANDIDATES
    for change in every:
        if change.name == name:
            return change
    known = ", ".join(repr(c.name) for c in every)
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


def recipe_difference(base: ConfigSource, target: ConfigSource,
                      changes: Sequence[Change] = IMPROVEMENTS) -> list[str]:
    """Dotted config keys where ``base`` plus ``changes`` differs from ``target`` (empty:
    ``target`` is exactly ``base`` plus the changes; e.g. the baseline plus
    ``IMPROVEMENTS`` is the improved recipe, the official plus ``FIXES`` the baseline)."""
    return _differences(apply_changes(base, changes).to_dict(), load_config(target).to_dict())


def changed_keys(base: ConfigSource, change: Change) -> list[str]:
    """Dotted config keys whose value ``change`` alters on ``base`` (empty: it changes
    nothing there)."""
    return _differences(load_config(base).to_dict(), apply_changes(base, [change]).to_dict())


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
