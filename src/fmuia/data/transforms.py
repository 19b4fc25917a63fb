"""Preprocessing and augmentation: a sample at its original size -> the model's frame.

The model sees every image as a plain ``image_size x image_size`` resize, normalised
with the ImageNet mean and std. Targets move with the image in one albumentations
pipeline (masks nearest-resized, boxes through ``bbox_params``, points through
``keypoint_params``; each kind says which in ``TaskKind.transform_inputs``) and are then
expressed in the model's frame by ``TaskKind.encode_target``:

=============== ================================================================
kind            target
=============== ================================================================
segmentation    ``LongTensor (S, S)`` of class ids
classification  ``LongTensor ()`` class id
detection       ``FloatTensor (4,)`` ``[x1, y1, x2, y2] / [S, S, S, S]``, in 0..1
keypoints       ``FloatTensor (K, 2)`` ``[x, y] / [S, S]``
=============== ================================================================

Because the resize is a pure scale, a normalised coordinate is also the original
pixel coordinate divided by the original ``(w, h)``: multiplying a normalised
prediction by ``(w, h)`` gives original pixels.

Training augmentation is photometric by default (no geometric change), chosen per
task from the config's augmentation policy. A horizontal flip is never applied to a
task whose labels depend on orientation (``Task.orientation_sensitive``). The geometric
and ultrasound-style entries (``affine``, ``speckle``, ``gain``, all off by default) are
built by ``fmuia.data.augment``.

albumentations keeps its own random state, untouched by ``torch``/``numpy`` seeding:
``encode_sample(..., seed=...)`` reseeds the pipeline for each sample so that an
augmented sample depends only on (run seed, epoch, sample index), whatever the number
of DataLoader workers and across a resumed run.
"""
from __future__ import annotations

import random
from typing import Any, Mapping

import albumentations as A
import numpy as np
import torch

from fmuia.config.sections import AugmentConfig
from fmuia.config.catalogue import AUGMENTATIONS
from fmuia.data import resize
from fmuia.data.augment import geometric_steps, ultrasound_steps
from fmuia.data.records import Sample
from fmuia.errors import ConfigError, DataError
from fmuia.imagenet import IMAGENET_MEAN, IMAGENET_STD
from fmuia import kinds
from fmuia.tasks import Task


# Probability of each augmentation; 0 disables it. The names, defaults and help are the
# config catalogue's (a config policy naming another is refused when it is loaded).
DEFAULT_POLICY: dict[str, float] = {name: param.default for name, param in AUGMENTATIONS.items()}

__all__ = [
    "DEFAULT_POLICY",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "build_eval_transform",
    "build_train_transform",
    "encode_sample",
    "normalize_step",
    "photometric_steps",
    "policy_for",
    "resize_sample",
]


def _label_params() -> dict[str, Any]:
    # clip: a box touching the border (x_max == width) is valid; remove_invisible=False:
    # a keypoint is a regression target and must never be dropped.
    return {
        "bbox_params": A.BboxParams(format="pascal_voc", clip=True),
        "keypoint_params": A.KeypointParams(format="xy", remove_invisible=False),
    }


def _resize(image_size: int) -> A.Resize:
    _check_size(image_size)
    return A.Resize(image_size, image_size, interpolation=resize.IMAGE_INTERPOLATION,
                    mask_interpolation=resize.MASK_INTERPOLATION)


def _normalize() -> A.Normalize:
    return A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD, max_pixel_value=255.0)


def _check_size(image_size: int) -> None:
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ConfigError(f"image_size: expected a positive integer, got {image_size!r}")


def build_eval_transform(image_size: int) -> A.Compose:
    """Plain resize to ``image_size`` square plus ImageNet normalisation (no randomness)."""
    return A.Compose([_resize(image_size), _normalize()], seed=0, **_label_params())


def policy_for(task: Task, augment: AugmentConfig | None) -> dict[str, float]:
    """The augmentation policy of one task from the config's ``augment`` section.

    The section's ``default``, then ``kinds[kind]``, then ``tasks[task_id]`` override
    each other key by key, on top of ``DEFAULT_POLICY``; None: ``DEFAULT_POLICY`` alone.
    """
    policy = dict(DEFAULT_POLICY)
    if augment is None:
        return policy
    for where, part in (
        ("augment.default", augment.default),
        (f"augment.kinds.{task.kind.value}", (augment.kinds or {}).get(task.kind.value)),
        (f"augment.tasks.{task.task_id}", (augment.tasks or {}).get(task.task_id)),
    ):
        if not part:
            continue
        if not isinstance(part, Mapping):
            raise ConfigError(f"{where}: expected a mapping of augmentation names to probabilities, got {part!r}")
        for key, value in part.items():
            if key not in DEFAULT_POLICY:
                raise ConfigError(f"{where}.{key}: unknown augmentation (known: {', '.join(DEFAULT_POLICY)})")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"{where}.{key}: expected a probability in [0, 1], got {value!r}")
            policy[key] = float(value)
    return policy


def build_train_transform(
    image_size: int, task: Task, policy: Mapping[str, float] | None = None, seed: int | None = None
) -> A.Compose:
    """Resize, the task's augmentations, normalisation.

    ``policy`` maps names of ``DEFAULT_POLICY`` to probabilities (missing names take the
    default). The flip is left out for orientation-sensitive tasks whatever the policy.
    """
    p = dict(DEFAULT_POLICY)
    p.update(policy or {})
    steps: list[A.BasicTransform] = [_resize(image_size)]
    if p["hflip"] > 0 and not task.orientation_sensitive:
        steps.append(A.HorizontalFlip(p=p["hflip"]))
    steps += geometric_steps(task, p, image_size)
    steps += photometric_steps(p)
    steps.append(_normalize())
    return A.Compose(steps, seed=seed, **_label_params())


def photometric_steps(policy: Mapping[str, float]) -> list[A.BasicTransform]:
    """The intensity-only augmentations of a policy, in pipeline order: brightness and
    contrast, gamma, blur, additive noise, then the ultrasound gain and speckle
    (``fmuia.data.augment``). Each is left out when its probability is 0; none changes
    the geometry, so they apply to any kind of task (and to unlabelled images)."""
    p = dict(DEFAULT_POLICY)
    p.update(policy or {})
    steps: list[A.BasicTransform] = []
    if p["brightness_contrast"] > 0:
        steps.append(A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=p["brightness_contrast"]))
    if p["gamma"] > 0:
        steps.append(A.RandomGamma(gamma_limit=(80, 120), p=p["gamma"]))
    if p["blur"] > 0:
        steps.append(A.GaussianBlur(blur_limit=(3, 5), p=p["blur"]))
    if p["noise"] > 0:
        steps.append(A.GaussNoise(std_range=(0.02, 0.08), p=p["noise"]))
    steps += ultrasound_steps(p)
    return steps


def normalize_step() -> A.Normalize:
    """ImageNet mean/std normalisation of uint8 pixels, the last step of every pipeline."""
    return _normalize()


def _inputs(sample: Sample) -> dict[str, Any]:
    """albumentations keyword arguments for a sample (only the targets it has)."""
    data: dict[str, Any] = {"image": sample.image}
    label = sample.label
    if label is None:
        return data
    data.update(kinds.kind_of(sample.kind).transform_inputs(label))
    return data


def _apply(sample: Sample, transform: A.Compose, seed: int | None) -> dict[str, Any]:
    if seed is not None:
        # One shared generator for the whole pipeline: ``set_random_seed`` would give
        # every step its own generator with the same seed, so their draws would coincide.
        transform.set_random_state(np.random.default_rng(int(seed)), random.Random(int(seed)))
    out = transform(**_inputs(sample))
    if sample.label is not None and not kinds.kind_of(sample.kind).transformed_ok(out):
        raise DataError(f"{sample.entry.where} (task {sample.task_id}): label {np.asarray(sample.label).tolist()} "
                        f"does not survive preprocessing (empty or outside the image)")
    return out


def encode_sample(
    sample: Sample, transform: A.Compose, seed: int | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(image, target)`` in the model's frame (see the module docstring).

    ``image`` is float32 (3, S, S), ImageNet-normalised; ``target`` is None for an
    unlabelled sample. ``seed`` reseeds the transform's random state first.
    """
    out = _apply(sample, transform, seed)
    image = out["image"]
    size_h, size_w = image.shape[:2]
    tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))
    label = sample.label
    if label is None:
        return tensor, None
    return tensor, kinds.kind_of(sample.kind).encode_target(out, label, (size_h, size_w))


_RESIZERS: dict[int, A.Compose] = {}


def _resizer(image_size: int) -> A.Compose:
    if image_size not in _RESIZERS:
        _RESIZERS[image_size] = A.Compose([_resize(image_size)], seed=0, **_label_params())
    return _RESIZERS[image_size]


def resize_sample(sample: Sample, image_size: int) -> Sample:
    """The sample resized to ``image_size`` square, still uint8 with labels in the resized
    pixels (what a preprocessing cache stores; ``encode_sample`` of it equals
    ``encode_sample`` of the original, the resize being then the identity)."""
    out = _apply(sample, _resizer(image_size), None)
    label = sample.label
    if label is not None:
        label = kinds.kind_of(sample.kind).resized_label(out, label)
    return Sample(entry=sample.entry, image=np.ascontiguousarray(out["image"]), label=label)
