"""The names the open mappings of a config accept, with their defaults and help, torch-free:
the kinds (``fmuia.tasks.Kind``), the augmentations of a policy, and each kind's head
types with their loss parameters.

The kinds (``fmuia.kinds``) register their heads from ``HEAD_TYPES`` and
``LOSS_PARAMS`` (``Kind.add_head``), and the augmentation pipeline
(``fmuia.data.transforms``) takes its default policy from ``AUGMENTATIONS``: this is the
one place these names and defaults are written, so a config is checked against them when
it is loaded, without importing the network code.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fmuia.tasks import Kind

__all__ = ["AUGMENTATIONS", "HEAD_TYPES", "LOSS_PARAMS", "Param", "augmentation_names", "forget_head_type",
           "head_type_names", "kind_names", "loss_param_names", "loss_params", "register_head_type"]


@dataclass(frozen=True)
class Param:
    """A named value inside an open mapping: its default, help line and bounds."""

    default: Any
    help: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None


def kind_names() -> list[str]:
    """The registered task kinds, in registration order."""
    return [kind.value for kind in Kind]


# Probability of each augmentation of a policy (augment.default, .kinds.K, .tasks.T); 0 disables it.
AUGMENTATIONS: dict[str, Param] = {
    "brightness_contrast": Param(0.5, "RandomBrightnessContrast (+-0.2)"),
    "gamma": Param(0.0, "RandomGamma (80..120): the log-compression curve"),
    "blur": Param(0.0, "GaussianBlur (3..5): lateral/axial resolution"),
    "noise": Param(0.0, "GaussNoise: additive grain"),
    "hflip": Param(0.0, "horizontal flip; never applied to orientation-sensitive tasks"),
    "affine": Param(0.0, "scale/rotation/shift moving image, mask, box and points together"),
    "speckle": Param(0.0, "multiplicative per-pixel noise (speckle)"),
    "gain": Param(0.0, "a global multiplicative gain (the scanner's gain knob)"),
}


def augmentation_names() -> list[str]:
    return list(AUGMENTATIONS)


# Each kind's head types (model.heads values), the kind's default first.
HEAD_TYPES: dict[str, dict[str, str]] = {
    "segmentation": {
        "conv": "a 1x1 convolution on the FPN map, upsampled to the input",
        "tower": "two 3x3 convolutions before the 1x1 classifier",
    },
    "classification": {
        "linear": "global mean pooling of the top features, dropout, a linear layer",
        "position_pooled": "each channel's mean and its x/y first moments, so a class that is a position can be read",
    },
    "detection": {
        "grid": "a box and an objectness score per grid cell; the best-scoring cell's box",
        "centernet": "a centre-score map with per-cell box sides on the FPN map (focal loss, GIoU)",
    },
    "keypoints": {
        "regression": "a linear layer on the pooled top features giving the coordinates",
        "bounded_regression": "regression through a sigmoid: every point lies in the image",
        "heatmap": "one heatmap per point on the FPN map, soft-argmax decoding",
    },
}

# The parameters of each head type's loss (loss.params["<kind>.<head type>"]), with defaults.
LOSS_PARAMS: dict[str, dict[str, Param]] = {
    "segmentation.conv": {"ce_weight": Param(0.0, "weight of a pixel cross-entropy added to the Dice loss (0: Dice alone)", ge=0)},
    "segmentation.tower": {"ce_weight": Param(0.0, "weight of a pixel cross-entropy added to the Dice loss (0: Dice alone)", ge=0)},
    "classification.linear": {"label_smoothing": Param(0.0, "share of the target's mass spread evenly over the classes", ge=0, lt=1)},
    "classification.position_pooled": {
        "label_smoothing": Param(0.0, "share of the target's mass spread evenly over the classes", ge=0, lt=1)},
    "detection.grid": {
        "box_weight": Param(8.0, "weight of the box L1 loss against the score BCE", ge=0),
        "negatives": Param(True, "train the score on every cell (1 at the centre, 0 elsewhere); false: the centre cell only"),
        "positive_share": Param(0.0, "with negatives: the centre cells' share of the score loss (0: averaged over all cells)",
                                ge=0, lt=1),
    },
    "detection.centernet": {
        "score_weight": Param(1.0, "weight of the centre-score focal loss", ge=0),
        "giou_weight": Param(2.0, "weight of the boxes' GIoU loss", ge=0),
        "l1_weight": Param(5.0, "weight of the boxes' L1 loss", ge=0),
        "alpha": Param(2.0, "focal loss exponent on the prediction's error", ge=0),
        "beta": Param(4.0, "focal loss exponent down-weighting cells near a centre", ge=0),
        "gaussian_scale": Param(0.15, "the centre heat's Gaussian sigma, as a fraction of the box's sides", gt=0),
        "box_threshold": Param(0.3, "cells whose centre heat is at least this train the box", ge=0, le=1),
    },
    "keypoints.regression": {},
    "keypoints.bounded_regression": {},
    "keypoints.heatmap": {
        "coord_weight": Param(2.0, "weight of the soft-argmax point's distance to the target", ge=0),
        "reg_weight": Param(1.0, "weight of the Jensen-Shannon regulariser towards a Gaussian heatmap", ge=0),
        "sigma": Param(1.0, "the target Gaussian's sigma, in heatmap cells", gt=0),
    },
}


# Head types added at run time (a kind or head defined outside this package), beside the built-in ones above.
_ADDED_HEADS: dict[str, dict[str, str]] = {}
_ADDED_PARAMS: dict[str, dict[str, Param]] = {}


def head_type_names(kind: str) -> list[str]:
    return [*HEAD_TYPES.get(kind, {}), *_ADDED_HEADS.get(kind, {})]


def loss_param_names() -> list[str]:
    return [*LOSS_PARAMS, *_ADDED_PARAMS]


def loss_params(name: str) -> "dict[str, Param] | None":
    """The parameters of the loss ``<kind>.<head type>``; None for an unknown one."""
    return LOSS_PARAMS.get(name, _ADDED_PARAMS.get(name))


def register_head_type(kind: str, name: str, help: str, params: "dict[str, Any] | None" = None) -> None:
    """Add a head type at run time (``fmuia.kinds`` does, for a head not listed above):
    its name and its loss parameters' defaults become known to the config checks."""
    _ADDED_HEADS.setdefault(kind, {})[name] = help
    _ADDED_PARAMS[f"{kind}.{name}"] = {p: Param(v, f"parameter of the {kind} {name} loss") for p, v in (params or {}).items()}


def forget_head_type(kind: str, name: str) -> None:
    """Remove a head type added at run time (``fmuia.kinds.unregister_kind``, tests)."""
    _ADDED_HEADS.get(kind, {}).pop(name, None)
    _ADDED_PARAMS.pop(f"{kind}.{name}", None)
