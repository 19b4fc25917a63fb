"""One synthetic sample of a task: pixels and exact label, from its own seed.

Every sample has a seed derived from (seed, task, split, index) only, so a
sample is the same whether it is drawn alone, in order or by a worker process.
There is one label maker per task kind; what differs between tasks is data
(``profiles.PROFILES``).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from fmuia.synthetic.anatomy import ANATOMIES, Anatomy
from fmuia.synthetic.profiles import Profile, profile_of
from fmuia.synthetic.scanner import make_probe
from fmuia.synthetic.scene import Scene
from fmuia.tasks import Task


@dataclass
class SyntheticSample:
    """``image`` is uint8, (H, W) for grayscale tasks or (H, W, 3) RGB; ``label`` is in
    the native forms of ``fmuia.data.records`` (mask, class id, box, points)."""

    task: Task
    image: np.ndarray
    label: np.ndarray | int
    ext: str
    note: str = ""  # what the label shows (class variant), for the gallery
    true_class: int | None = None  # classification: the class drawn, before label noise
    structure: np.ndarray | None = None  # detection/keypoints: mask of the labelled structure
    valid: np.ndarray | None = field(default=None, repr=False)  # field-of-view mask

    @property
    def gray(self) -> np.ndarray:
        return self.image if self.image.ndim == 2 else self.image[..., 0]


def sample_rng(seed: int, task_id: str, split: str, index: int) -> np.random.Generator:
    """The random stream of one sample (stable across processes and Python runs)."""
    key = [int(seed) & 0xFFFFFFFF, zlib.crc32(task_id.encode()), zlib.crc32(split.encode()), int(index)]
    return np.random.default_rng(np.random.SeedSequence(key))


def _draw(scene: Scene, anatomy: str, params, omit=frozenset()) -> Anatomy:
    return ANATOMIES[anatomy](scene, omit=frozenset(omit), **dict(params))


def _segmentation(task: Task, profile: Profile, scene: Scene) -> dict:
    rng = scene.rng
    omit = {part for part in profile.parts if rng.random() < profile.absent}
    anatomy = _draw(scene, profile.anatomy, profile.params, omit)
    mask = np.zeros(scene.shape, np.uint8)
    for class_id, part in enumerate(profile.parts, start=1):
        mask[anatomy.parts[part] & scene.probe.valid] = class_id
    return {"label": mask}


def _classification(task: Task, profile: Profile, scene: Scene) -> dict:
    rng = scene.rng
    priors = np.asarray(profile.priors, np.float64)
    true = int(rng.choice(task.n, p=priors / priors.sum()))
    variant = profile.variants[true]
    _draw(scene, variant.anatomy, variant.params)
    label = true
    if rng.random() < profile.label_noise:
        label = int(rng.choice([c for c in range(task.n) if c != true]))
    return {"label": label, "true_class": true, "note": variant.note}


def _detection(task: Task, profile: Profile, scene: Scene) -> dict:
    anatomy = _draw(scene, profile.anatomy, profile.params)
    target = anatomy.parts[profile.parts[0]] & scene.probe.valid
    ys, xs = np.nonzero(target)
    if xs.size == 0:
        raise RuntimeError(f"{task.task_id}: the detection target was not drawn")
    # Pixel-edge box: it covers exactly the target's pixels.
    box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)
    return {"label": box, "structure": target}


def _keypoints(task: Task, profile: Profile, scene: Scene) -> dict:
    anatomy = _draw(scene, profile.anatomy, profile.params)
    points = np.array([anatomy.points[name] for name in profile.points], np.float64).round(1)
    structure = np.zeros(scene.shape, bool)
    for part in profile.parts:
        structure |= anatomy.parts[part]
    return {"label": points, "structure": structure & scene.probe.valid}


# How the generator derives each kind's label from a drawn scene (by kind name).
LABEL_MAKERS: dict[str, Callable[[Task, Profile, Scene], dict]] = {
    "segmentation": _segmentation,
    "classification": _classification,
    "detection": _detection,
    "keypoints": _keypoints,
}


def _stored(gray: np.ndarray, profile: Profile) -> np.ndarray:
    if profile.channels == 1:
        return gray
    rgb = gray[..., None].astype(np.float32) * np.asarray(profile.tint, np.float32)
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def synthesize(task: Task, seed: int = 0, split: str = "train", index: int = 0) -> SyntheticSample:
    """Draw sample ``index`` of ``split`` for ``task``."""
    profile = profile_of(task.task_id)
    rng = sample_rng(seed, task.task_id, split, index)
    w = int(rng.integers(profile.width[0], profile.width[1] + 1))
    h = int(round(w * rng.uniform(*profile.aspect)))
    scene = Scene(make_probe(h, w, profile.probe, rng), rng)
    made = LABEL_MAKERS[task.kind.value](task, profile, scene)
    image = _stored(scene.render(), profile)
    return SyntheticSample(task=task, image=image, ext=profile.ext, valid=scene.probe.valid, **made)
