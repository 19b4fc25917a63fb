"""Geometric and ultrasound-style augmentation, added to a task's training pipeline by
its augmentation policy (``augment:`` in the config; every probability here defaults to
0, so a policy that does not name them trains exactly as without this module).

Geometric (``affine``): scale, rotation and shift in one ``albumentations.Affine``, run
inside the task's pipeline so the mask (nearest), the box (``bbox_params``, its rotated
outline fitted by an ellipse rather than the inflated corner hull) and the points
(``keypoint_params``) move with the image. A box must survive augmentation (its loss
needs it), so detection tasks (``TaskKind.label_must_stay_inside``) get a zoom-out about the centre (no rotation: turning the
frame can carry a box in a corner out of it), which keeps any box inside the frame,
followed by a random crop that is guaranteed to contain the box
(``RandomSizedBBoxSafeCrop``) as their zoom-in and shift. Flips are not here: the
existing ``hflip`` entry, which is never applied to orientation-sensitive tasks.

Ultrasound photometric:

* ``speckle``: multiplicative per-pixel noise (speckle is multiplicative, unlike the
  additive grain of ``noise``);
* ``gain``: a global multiplicative gain (the scanner's overall gain knob);
* ``gamma`` and ``blur`` already exist in the base policy (log-compression curve and
  lateral/axial resolution) and are simply switched on by the improved recipe.
"""
from __future__ import annotations

from typing import Mapping

import albumentations as A
import cv2

from fmuia import kinds
from fmuia.tasks import Task

__all__ = ["AFFINE_LIMITS", "EXTRA_POLICY", "geometric_steps", "ultrasound_steps"]

# The policy entries this module adds (probabilities; 0 disables).
EXTRA_POLICY: dict[str, float] = {
    "affine": 0.0,  # scale / rotation / shift moving image, mask, box and points together
    "speckle": 0.0,  # multiplicative per-pixel noise
    "gain": 0.0,  # global multiplicative gain
}

AFFINE_LIMITS = {
    "scale": (0.85, 1.15),
    "rotate": 12.0,  # degrees, either way
    "shift": 0.06,  # fraction of the side, either way
}


def geometric_steps(task: Task, policy: Mapping[str, float], image_size: int) -> list[A.BasicTransform]:
    """The geometric augmentation of ``task`` (empty when ``policy['affine']`` is 0)."""
    p = float(policy.get("affine", 0.0))
    if p <= 0:
        return []
    low, high = AFFINE_LIMITS["scale"]
    rotate = (-AFFINE_LIMITS["rotate"], AFFINE_LIMITS["rotate"])
    common = {"rotate": rotate, "interpolation": cv2.INTER_LINEAR, "mask_interpolation": cv2.INTER_NEAREST,
              "rotate_method": "ellipse", "border_mode": cv2.BORDER_CONSTANT, "fill": 0, "fill_mask": 0}
    if kinds.kind_of(task).label_must_stay_inside:
        return [
            # No rotation here: turning the frame can carry a box in a corner out of it.
            A.Affine(scale=(low, 1.0), p=p, **{**common, "rotate": 0.0}),
            A.RandomSizedBBoxSafeCrop(height=image_size, width=image_size, erosion_rate=0.0, p=p / 2),
        ]
    shift = (-AFFINE_LIMITS["shift"], AFFINE_LIMITS["shift"])
    return [A.Affine(scale=(low, high), translate_percent={"x": shift, "y": shift}, p=p, **common)]


def ultrasound_steps(policy: Mapping[str, float]) -> list[A.BasicTransform]:
    """Speckle and gain (each left out when its probability is 0)."""
    steps: list[A.BasicTransform] = []
    if policy.get("gain", 0.0) > 0:
        steps.append(A.MultiplicativeNoise(multiplier=(0.75, 1.25), per_channel=False, elementwise=False, p=float(policy["gain"])))
    if policy.get("speckle", 0.0) > 0:
        steps.append(A.MultiplicativeNoise(multiplier=(0.8, 1.2), per_channel=False, elementwise=True, p=float(policy["speckle"])))
    return steps
