"""Per-task settings of the synthetic data, as data.

A ``Profile`` says how images of a task look (probe, size, channels, file type)
and what is drawn: the anatomy (by name, see ``anatomy.ANATOMIES``) and which of
its parts or points are the labels. Classification tasks list one ``Variant`` per
class: the anatomy and parameters that make that class visible.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping


@dataclass(frozen=True)
class Variant:
    """How one class of a classification task looks."""

    anatomy: str
    params: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""  # what the class shows, for the gallery


@dataclass(frozen=True)
class Profile:
    probe: str  # "sector" | "convex" | "linear"
    width: tuple[int, int]  # image width range, pixels
    aspect: tuple[float, float]  # height / width range
    channels: int = 1  # 1: stored grayscale; 3: stored colour (gray with the scanner's tint)
    ext: str = "png"
    anatomy: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    parts: tuple[str, ...] = ()  # segmentation: part of class 1..n-1; detection: (target,); keypoints: (structure,)
    points: tuple[str, ...] = ()  # keypoints: landmark names in CSV order
    absent: float = 0.0  # segmentation: chance that each class is left out of an image
    variants: tuple[Variant, ...] = ()  # classification: one per class
    priors: tuple[float, ...] = ()  # classification: class frequencies
    label_noise: float = 0.03  # classification: fraction of labels replaced by another class
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)  # RGB gains of 3-channel images


# -- lesion phenotypes (ranges; sizes relative to the host region) -----------------
BREAST_BENIGN = {  # oval, circumscribed, wider than tall, thin capsule, enhancement
    "size": (0.3, 0.5), "aspect": (0.45, 0.7), "level": (0.25, 0.4), "irregularity": (0.0, 0.03),
    "rim": (0.9, 1.1), "rim_width": (2, 3), "posterior": (-0.9, -0.5), "texture": 0.15,
}
BREAST_MALIGNANT = {  # irregular, spiculated, taller than wide, very dark, shadowing, calcified
    "size": (0.3, 0.5), "aspect": (1.0, 1.5), "level": (0.05, 0.12), "irregularity": (0.15, 0.3),
    "spicules": (3, 7), "posterior": (1.2, 2.5), "texture": 0.3, "calcifications": (2, 6),
}
BREAST_ANY = {
    "size": (0.3, 0.55), "aspect": (0.45, 1.4), "level": (0.04, 0.2), "irregularity": (0.0, 0.25),
    "spicules": (0, 4), "posterior": (-0.8, 1.5), "texture": 0.25,
}
THYROID_NODULE = {  # hypo- to isoechoic, often a dark halo
    "size": (0.35, 0.65), "aspect": (0.6, 1.2), "level": (0.15, 0.4), "irregularity": (0.0, 0.12),
    "rim": (0.05, 0.12), "rim_width": (2, 5), "posterior": (-0.3, 0.3), "texture": 0.3, "calcifications": (0, 3),
}
OVARIAN_CYST = {  # large, anechoic, septated, bright wall, strong enhancement
    "size": (0.5, 0.8), "aspect": (0.7, 1.1), "level": (0.02, 0.05), "irregularity": (0.02, 0.1),
    "rim": (1.0, 1.3), "rim_width": (3, 5), "posterior": (-1.2, -0.6), "texture": 0.2, "septa": (0, 3),
}
LIVER_BENIGN = {  # hemangioma-like: small, bright, homogeneous
    "size": (0.15, 0.28), "aspect": (0.8, 1.2), "level": (1.2, 1.5), "irregularity": (0.0, 0.05),
    "posterior": (-0.3, 0.0), "texture": 0.15, "rim": (1.5, 1.8), "rim_width": (2, 3),
}
LIVER_MALIGNANT = {  # larger, hypoechoic, heterogeneous, dark halo (target sign)
    "size": (0.25, 0.42), "aspect": (0.7, 1.3), "level": (0.15, 0.3), "irregularity": (0.08, 0.2),
    "rim": (0.03, 0.08), "rim_width": (5, 9), "texture": 0.45,
}
FIBROID = {  # whorled, hypoechoic, edge shadowing
    "size": (0.35, 0.6), "aspect": (0.8, 1.2), "level": (0.22, 0.35), "irregularity": (0.02, 0.08),
    "rim": (0.85, 1.0), "rim_width": (2, 4), "posterior": (0.8, 1.5), "texture": 0.5,
}
CORD_LESION = {  # hyperechoic, heterogeneous focus within the cord
    "size": (0.75, 1.0), "aspect": (0.35, 0.6), "level": (0.9, 1.3), "irregularity": (0.05, 0.2),
    "texture": 0.4, "spread": 0.6,
}


def _positions(anatomy: str, what: str) -> tuple[Variant, ...]:
    """Eight directions, 22.5 degrees off the axes so that a horizontal flip always
    changes the class (direction d becomes 180 - d)."""
    return tuple(Variant(anatomy, {"direction": 22.5 + 45.0 * k}, f"{what} at {22.5 + 45.0 * k:g} deg") for k in range(8))


_FIELDS = ("probe", "width", "aspect", "channels", "ext")
_LOOK = {  # task -> (probe, width range, height/width range, channels, image file type)
    "FUGC": ("sector", (400, 520), (0.72, 0.85), 1, "png"),
    "IUGC": ("convex", (420, 520), (0.75, 0.85), 3, "png"),
    "fetal_femur": ("convex", (380, 480), (0.7, 0.8), 3, "jpg"),
    "breast_2cls": ("linear", (340, 460), (0.7, 0.9), 3, "png"),
    "breast_3cls": ("linear", (360, 500), (0.65, 0.85), 3, "png"),
    "fetal_head_pos_cls": ("convex", (360, 440), (0.8, 0.95), 1, "png"),
    "fetal_plane_cls": ("convex", (480, 640), (0.7, 0.78), 3, "jpg"),
    "fetal_sacral_pos_cls": ("convex", (360, 440), (0.8, 0.95), 1, "png"),
    "liver_lesion_2cls": ("convex", (380, 480), (0.75, 0.85), 1, "jpg"),
    "lung_2cls": ("linear", (320, 420), (0.8, 1.0), 3, "png"),
    "lung_disease_3cls": ("convex", (340, 440), (0.8, 1.0), 3, "jpg"),
    "organ_cls": ("convex", (360, 480), (0.72, 0.85), 1, "png"),
    "spinal_cord_injury_loc": ("linear", (380, 480), (0.6, 0.75), 1, "png"),
    "thyroid_nodule_det": ("linear", (400, 520), (0.65, 0.8), 3, "jpg"),
    "uterine_fibroid_det": ("convex", (440, 560), (0.72, 0.8), 1, "png"),
    "breast_lesion": ("linear", (400, 500), (0.65, 0.8), 1, "png"),
    "cardiac_multi": ("sector", (360, 460), (0.8, 0.95), 1, "png"),
    "carotid_artery": ("linear", (400, 480), (0.6, 0.75), 3, "png"),
    "cervix": ("sector", (360, 460), (0.75, 0.85), 1, "png"),
    "cervix_multi": ("sector", (380, 460), (0.75, 0.85), 1, "png"),
    "fetal_abdomen_multi": ("convex", (420, 520), (0.72, 0.8), 3, "png"),
    "fetal_head": ("convex", (560, 800), (0.68, 0.75), 1, "png"),
    "fetal_heart": ("convex", (380, 480), (0.75, 0.85), 3, "png"),
    "head_symphysis_multi": ("convex", (400, 480), (0.8, 0.9), 1, "png"),
    "lung": ("linear", (320, 420), (0.8, 1.0), 1, "png"),
    "ovary_tumor": ("convex", (500, 700), (0.7, 0.78), 3, "jpg"),
    "thyroid_nodule": ("linear", (380, 480), (0.65, 0.8), 1, "png"),
}

_LABELS: dict[str, dict[str, Any]] = {
    # keypoints
    "FUGC": dict(anatomy="cervix", parts=("cervix",), points=("canal_end_1", "canal_end_2")),
    "IUGC": dict(anatomy="symphysis_head", parts=("symphysis", "head"),
                 points=("symphysis_superior", "symphysis_inferior", "head_tangent")),
    "fetal_femur": dict(anatomy="femur", parts=("femur",), points=("femur_end_1", "femur_end_2")),
    # classification
    "breast_2cls": dict(priors=(0.6, 0.4), variants=(
        Variant("lesion_in_tissue", {"host": "breast", "lesion": BREAST_BENIGN}, "oval, circumscribed"),
        Variant("lesion_in_tissue", {"host": "breast", "lesion": BREAST_MALIGNANT}, "spiculated, shadowing"))),
    "breast_3cls": dict(priors=(0.25, 0.45, 0.3), variants=(
        Variant("lesion_in_tissue", {"host": "breast", "lesion": None}, "no lesion"),
        Variant("lesion_in_tissue", {"host": "breast", "lesion": BREAST_BENIGN}, "oval, circumscribed"),
        Variant("lesion_in_tissue", {"host": "breast", "lesion": BREAST_MALIGNANT}, "spiculated, shadowing"))),
    "fetal_head_pos_cls": dict(priors=(0.22, 0.1, 0.08, 0.1, 0.12, 0.1, 0.08, 0.2),
                               variants=_positions("head_position", "face")),
    "fetal_plane_cls": dict(priors=(0.22, 0.2, 0.15, 0.15, 0.13, 0.15), variants=(
        Variant("fetal_abdomen", {}, "abdomen"), Variant("fetal_head", {}, "brain"),
        Variant("femur", {}, "femur"), Variant("fetal_heart", {}, "thorax"),
        Variant("cervix", {}, "maternal cervix"), Variant("spine_plane", {}, "spine"))),
    "fetal_sacral_pos_cls": dict(priors=(0.18, 0.12, 0.1, 0.1, 0.15, 0.1, 0.1, 0.15),
                                 variants=_positions("sacrum_position", "sacrum")),
    "liver_lesion_2cls": dict(priors=(0.55, 0.45), variants=(
        Variant("lesion_in_tissue", {"host": "liver", "lesion": LIVER_BENIGN}, "small, bright"),
        Variant("lesion_in_tissue", {"host": "liver", "lesion": LIVER_MALIGNANT}, "dark, halo"))),
    "lung_2cls": dict(priors=(0.45, 0.55), variants=(
        Variant("lung", {"a_lines": 3, "b_lines": (0, 0)}, "A-lines"),
        Variant("lung", {"a_lines": 0, "b_lines": (3, 6), "irregular": 1.0}, "B-lines"))),
    "lung_disease_3cls": dict(priors=(0.35, 0.35, 0.3), variants=(
        Variant("lung", {"a_lines": 3, "b_lines": (0, 0)}, "A-lines"),
        Variant("lung", {"a_lines": 0, "b_lines": (2, 5), "irregular": 1.0}, "B-lines"),
        Variant("lung", {"a_lines": 0, "b_lines": (0, 1), "consolidation": True, "irregular": 1.5}, "consolidation"))),
    "organ_cls": dict(priors=(0.25, 0.2, 0.15, 0.15, 0.15, 0.1), variants=(
        Variant("liver", {}, "liver"), Variant("kidney", {}, "kidney"), Variant("bladder", {}, "bladder"),
        Variant("gallbladder", {}, "gallbladder"), Variant("thyroid", {}, "thyroid"), Variant("cardiac", {}, "heart"))),
    # detection
    "spinal_cord_injury_loc": dict(anatomy="lesion_in_tissue", params={"host": "spinal_canal", "lesion": CORD_LESION}, parts=("lesion",)),
    "thyroid_nodule_det": dict(anatomy="lesion_in_tissue", params={"host": "thyroid", "lesion": THYROID_NODULE}, parts=("lesion",)),
    "uterine_fibroid_det": dict(anatomy="lesion_in_tissue", params={"host": "uterus", "lesion": FIBROID}, parts=("lesion",)),
    # segmentation
    "breast_lesion": dict(anatomy="lesion_in_tissue", params={"host": "breast", "lesion": BREAST_ANY}, parts=("lesion",), absent=0.08),
    "cardiac_multi": dict(anatomy="cardiac", parts=("lv", "myocardium", "la"), absent=0.05),
    "carotid_artery": dict(anatomy="carotid", parts=("artery",), absent=0.03),
    "cervix": dict(anatomy="cervix", parts=("cervix",)),
    "cervix_multi": dict(anatomy="cervix", parts=("anterior_lip", "posterior_lip"), absent=0.05),
    "fetal_abdomen_multi": dict(anatomy="fetal_abdomen", parts=("liver", "stomach", "spine", "vein"), absent=0.1),
    "fetal_head": dict(anatomy="fetal_head", parts=("head",)),
    "fetal_heart": dict(anatomy="fetal_heart", parts=("heart",), absent=0.05),
    "head_symphysis_multi": dict(anatomy="symphysis_head", parts=("symphysis", "head"), absent=0.05),
    "lung": dict(anatomy="lung", params={"a_lines": 2, "b_lines": (0, 2)}, parts=("pleura",)),
    "ovary_tumor": dict(anatomy="lesion_in_tissue", params={"host": "pelvis", "lesion": OVARIAN_CYST}, parts=("lesion",), absent=0.05),
    "thyroid_nodule": dict(anatomy="lesion_in_tissue", params={"host": "thyroid", "lesion": THYROID_NODULE}, parts=("lesion",), absent=0.08),
}

_TINTS = {3: (1.0, 0.97, 0.92)}  # colour images: a faint warm monitor tint

PROFILES: Mapping[str, Profile] = MappingProxyType({
    task_id: Profile(**dict(zip(_FIELDS, look)), tint=_TINTS.get(look[3], (1.0, 1.0, 1.0)), **_LABELS[task_id])
    for task_id, look in _LOOK.items()
})


def profile_of(task_id: str) -> Profile:
    try:
        return PROFILES[task_id]
    except KeyError:
        raise KeyError(f"no synthetic profile for task {task_id!r}; synthetic tasks: {', '.join(PROFILES)}") from None
