"""Anatomies: functions that draw a whole scene and return its labelled parts.

Every anatomy has the signature ``fn(scene, omit=frozenset(), **params) -> Anatomy``;
``parts`` are boolean masks of the structures as drawn (restricted to the field of
view), ``points`` named landmarks in pixels. Tasks pick what they need from these
by name (see ``profiles``), so one anatomy serves segmentation, classification,
detection and keypoint tasks alike. Sizes are fractions of the field-of-view depth.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from fmuia.synthetic.scene import Scene, band, blob_outline, capsule, disc, fill, stroke


@dataclass
class Anatomy:
    parts: dict[str, np.ndarray] = field(default_factory=dict)
    points: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Host:
    """An elliptical region where a lesion may sit."""

    center: tuple[float, float]
    radii: tuple[float, float]
    angle: float = 0.0


def _u(rng: np.random.Generator, spec) -> float:
    """A value from a ``(lo, hi)`` range (or a plain number)."""
    if isinstance(spec, (tuple, list)):
        return float(rng.uniform(spec[0], spec[1]))
    return float(spec)


def _direction(deg: float) -> np.ndarray:
    """Unit vector of an angle in degrees, counter-clockwise from +x with y pointing up."""
    a = np.deg2rad(deg)
    return np.array([np.cos(a), -np.sin(a)])


# -- lesions -------------------------------------------------------------------

def draw_lesion(scene: Scene, host: Host, ph: dict) -> np.ndarray:
    """A focal lesion inside ``host`` with a phenotype ``ph`` (ranges of: size (of the
    host's smaller radius), aspect (height/width), level, irregularity, spicules,
    rim, rim_width, posterior; optional septa, calcifications, texture)."""
    rng = scene.rng
    t, rho = rng.uniform(0, 2 * np.pi), np.sqrt(rng.uniform(0, 1)) * ph.get("spread", 0.35)
    c, s = np.cos(host.angle), np.sin(host.angle)
    dx, dy = rho * host.radii[0] * np.cos(t), rho * host.radii[1] * np.sin(t)
    center = (host.center[0] + c * dx - s * dy, host.center[1] + s * dx + c * dy)
    size = _u(rng, ph["size"]) * min(host.radii)
    aspect = _u(rng, ph["aspect"])
    radii = (size / np.sqrt(aspect), size * np.sqrt(aspect))
    spicules = int(round(_u(rng, ph.get("spicules", 0))))
    outline = blob_outline(center, radii, rng.normal(0, 0.15), rng, _u(rng, ph.get("irregularity", 0.0)), spicules)
    mask = fill(scene.shape, outline) & scene.probe.valid
    rim = ph.get("rim")
    scene.paint(
        mask,
        level=_u(rng, ph["level"]),
        texture=ph.get("texture", 0.2),
        rim=None if rim is None else _u(rng, rim),
        rim_width=_u(rng, ph.get("rim_width", (2, 4))),
        posterior=_u(rng, ph.get("posterior", 0.0)),
    )
    for _ in range(int(round(_u(rng, ph.get("septa", 0))))):
        a = rng.uniform(0, np.pi)
        d = np.array([np.cos(a), np.sin(a)]) * max(radii) * 1.2
        off = rng.normal(0, 0.3, 2) * radii
        line = stroke(scene.shape, np.array([center + off - d, center + off + d]), 2) & mask
        scene.echo[line] = 0.9
    for _ in range(int(round(_u(rng, ph.get("calcifications", 0))))):
        p = np.array(center) + rng.normal(0, 0.35, 2) * radii
        dot = disc(scene.shape, p, rng.uniform(1.0, 2.0)) & mask
        scene.echo[dot] = 1.8
    return mask


# -- backgrounds with a host region ----------------------------------------------

def _breast_host(scene: Scene) -> Host:
    rng = scene.rng
    scene.layers([0.35, _u(rng, (0.65, 0.9)), 0.4, 0.6], texture=0.35)
    for _ in range(int(rng.integers(2, 6))):  # Cooper's ligaments
        x0, y0 = scene.at(rng.uniform(0.1, 0.5), rng.uniform(-1, 1))
        pts = np.array([[x0, y0], [x0 + rng.normal(0, 40), y0 + rng.uniform(20, 60)]])
        scene.line(pts, 1.5, 1.0)
    return Host(scene.at(0.45, rng.uniform(-0.2, 0.2)), (0.55 * scene.scale, 0.32 * scene.scale))


def _thyroid_host(scene: Scene) -> Host:
    rng = scene.rng
    s = scene.scale
    scene.layers([0.35, 0.45, 0.55], texture=0.3)
    side = rng.choice([-1.0, 1.0])
    center = scene.at(0.45, 0.25 * side * rng.uniform(0.2, 0.6))
    radii = (rng.uniform(0.38, 0.5) * s, rng.uniform(0.22, 0.3) * s)
    scene.polygon(blob_outline(center, radii, rng.normal(0, 0.1), rng, 0.04), level=0.85, texture=0.12, grain=4.0, rim=1.0, rim_width=2)
    # Carotid to one side, trachea (air: bright arc, dark shadow) to the other.
    cx = center[0] + side * (radii[0] + 0.12 * s)
    scene.polygon(blob_outline((cx, center[1] + 0.05 * s), (0.09 * s, 0.09 * s), 0, rng), level=0.02, rim=0.9, rim_width=3, posterior=-0.6)
    tx = center[0] - side * (radii[0] + 0.05 * s)
    arc = np.array([[tx + 0.12 * s * np.cos(a), center[1] - 0.1 * s - 0.08 * s * np.sin(a)] for a in np.linspace(0.3, 2.8, 12)])
    scene.line(arc, 3, 1.4, posterior=3.0)
    return Host(center, radii)


def _liver_host(scene: Scene, vessels: int = 4) -> Host:
    rng = scene.rng
    s = scene.scale
    scene.layers([0.5, 0.35, _u(rng, (0.55, 0.7))], texture=0.2)
    for _ in range(vessels):  # portal and hepatic veins: dark tubes, some with bright walls
        p0 = np.array(scene.at(rng.uniform(0.3, 0.9), rng.uniform(-0.9, 0.9)))
        d = _direction(rng.uniform(0, 360)) * rng.uniform(0.1, 0.3) * s
        pts = np.array([p0, p0 + d * 0.5 + rng.normal(0, 0.03 * s, 2), p0 + d])
        width = rng.uniform(0.015, 0.04) * s
        mask = stroke(scene.shape, pts, width)
        scene.paint(mask, 0.05, rim=0.9 if rng.random() < 0.5 else None, rim_width=2, posterior=-0.2)
    # Diaphragm: a bright curved line deep in the image.
    y = rng.uniform(0.82, 0.92)
    curve = np.array([scene.at(y + 0.05 * np.sin(3 * t + 1), t) for t in np.linspace(-1, 1, 24)])
    scene.line(curve, 0.02 * s, 1.3)
    return Host(scene.at(0.5, rng.uniform(-0.2, 0.2)), (0.45 * s, 0.3 * s))


def _uterus_host(scene: Scene) -> Host:
    rng = scene.rng
    s = scene.scale
    scene.layers([0.45, 0.3], texture=0.25)
    center = scene.at(rng.uniform(0.45, 0.55), rng.uniform(-0.2, 0.2))
    radii = (rng.uniform(0.4, 0.5) * s, rng.uniform(0.25, 0.32) * s)
    angle = rng.normal(0, 0.2)
    uterus = scene.polygon(blob_outline(center, radii, angle, rng, 0.05), level=0.55, texture=0.25, rim=0.75, rim_width=3)
    d = np.array([np.cos(angle), np.sin(angle)]) * radii[0] * 0.7
    endo = stroke(scene.shape, np.array([center - d, center + d]), rng.uniform(0.03, 0.06) * s) & uterus
    scene.paint(endo, 1.0, texture=0.2)
    return Host(center, (radii[0] * 0.8, radii[1] * 0.8), angle)


def _pelvis_host(scene: Scene) -> Host:
    rng = scene.rng
    s = scene.scale
    scene.layers([0.5, 0.35, 0.45], texture=0.3)
    for _ in range(int(rng.integers(2, 5))):  # follicles and bowel echoes
        p = scene.at(rng.uniform(0.2, 0.9), rng.uniform(-0.9, 0.9))
        r = rng.uniform(0.02, 0.05) * s
        scene.polygon(blob_outline(p, (r, r * 0.8), rng.uniform(0, 3), rng, 0.1), level=rng.choice([0.05, 1.0]))
    return Host(scene.at(0.5, rng.uniform(-0.15, 0.15)), (0.5 * s, 0.38 * s))


def _spinal_canal_host(scene: Scene) -> Host:
    rng = scene.rng
    s = scene.scale
    scene.layers([0.4, 0.65, 0.5], texture=0.35)
    depth = rng.uniform(0.4, 0.5)
    half = rng.uniform(0.1, 0.14)
    tilt = rng.normal(0, 0.04)
    lats = np.linspace(-1, 1, 24)
    top = np.array([scene.at(depth - half + tilt * t + 0.01 * np.sin(4 * t), t) for t in lats])
    bottom = np.array([scene.at(depth + half + tilt * t + 0.01 * np.sin(4 * t), t) for t in lats])
    canal = fill(scene.shape, np.concatenate([top, bottom[::-1]])) & scene.probe.valid
    scene.paint(canal, 0.12, texture=0.2)
    cord = fill(scene.shape, np.concatenate([top + [0, 0.04 * s], bottom[::-1] - [0, 0.04 * s]])) & canal
    scene.paint(cord, 0.28, texture=0.25)
    scene.line((top + bottom) / 2, 2, 0.9)  # central echo complex
    scene.line(top, 0.015 * s, 1.3)  # dura
    scene.line(bottom, 0.015 * s, 1.3)
    for t in np.arange(-0.9, 1.0, rng.uniform(0.35, 0.5)):  # vertebral bodies beneath, shadowing
        x, y = scene.at(depth + half + 0.12 + tilt * t, t)
        scene.polygon(blob_outline((x, y), (0.12 * s, 0.05 * s), 0, rng, 0.05), level=1.2, rim=1.5, posterior=2.5)
    # The cord runs across the image: lesions spread along it, not across it.
    return Host(scene.at(depth, 0.0), (0.9 * s, half * s * 0.9))


HOSTS: dict[str, Callable[[Scene], Host]] = {
    "breast": _breast_host,
    "thyroid": _thyroid_host,
    "liver": _liver_host,
    "uterus": _uterus_host,
    "pelvis": _pelvis_host,
    "spinal_canal": _spinal_canal_host,
}


def lesion_in_tissue(scene: Scene, omit=frozenset(), host: str = "breast", lesion: dict | None = None) -> Anatomy:
    """A named tissue background with (optionally) one focal lesion."""
    region = HOSTS[host](scene)
    parts = {}
    if lesion is not None and "lesion" not in omit:
        parts["lesion"] = draw_lesion(scene, region, lesion)
    else:
        parts["lesion"] = np.zeros(scene.shape, bool)
    return Anatomy(parts)


# -- fetal and obstetric structures ------------------------------------------------

def _amniotic(scene: Scene) -> None:
    """Maternal abdominal wall above, amniotic fluid below."""
    scene.layers([0.55, 0.35, 0.6], texture=0.3)
    scene.fluid_pool(scene.rng.uniform(0.15, 0.25))


def draw_head(scene: Scene, center, a: float, b: float, angle: float, face: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A fetal head: bright skull ring (shadowing), brain, midline echo along the
    long (occipito-frontal) axis at ``angle`` radians; with ``face``, orbits at the
    front end (+angle) so the head has a direction. Returns (mask, outline)."""
    rng = scene.rng
    outline = blob_outline(center, (a, b), angle, rng, 0.015)
    mask = fill(scene.shape, outline) & scene.probe.valid
    skull = max(3.0, 0.08 * b)
    scene.paint(mask, 0.2, texture=0.35, grain=10.0, rim=1.5, rim_width=skull)
    ring = band(mask, skull)
    scene.atten[ring] += 0.5 / skull
    axis = np.array([np.cos(angle), np.sin(angle)])
    normal = np.array([-axis[1], axis[0]])
    c = np.asarray(center)
    scene.line(np.array([c - axis * a * 0.85, c + axis * a * 0.85]), max(2, 0.015 * b), 0.9)
    for side in (-1, 1):  # thalami
        p = c + normal * side * 0.14 * b - axis * 0.05 * a
        scene.polygon(blob_outline(p, (0.16 * a, 0.09 * b), angle, rng), level=0.07, texture=0.1)
    if face:
        for side in (-1, 1):  # orbits, with bright lenses
            p = c + axis * 0.72 * a + normal * side * 0.3 * b
            r = 0.14 * b
            scene.polygon(blob_outline(p, (r, r), 0, rng), level=0.03, rim=1.3, rim_width=max(2, 0.04 * b))
        nose = c + axis * (a + 0.1 * b)
        scene.polygon(blob_outline(nose, (0.12 * b, 0.1 * b), angle, rng, 0.05), level=1.3, posterior=1.0)
    return mask, outline


def fetal_head(scene: Scene, omit=frozenset()) -> Anatomy:
    rng = scene.rng
    s = scene.scale
    _amniotic(scene)
    a = rng.uniform(0.26, 0.36) * s
    b = a * rng.uniform(0.72, 0.88)
    center = scene.at(rng.uniform(0.5, 0.58), rng.uniform(-0.15, 0.15))
    mask, _ = draw_head(scene, center, a, b, rng.uniform(-0.6, 0.6))
    return Anatomy({"head": mask})


def head_position(scene: Scene, omit=frozenset(), direction: float = 22.5) -> Anatomy:
    """A fetal head facing ``direction`` degrees (the class of a position task)."""
    rng = scene.rng
    s = scene.scale
    _amniotic(scene)
    a = rng.uniform(0.24, 0.3) * s
    b = a * rng.uniform(0.78, 0.88)
    center = scene.at(rng.uniform(0.52, 0.58), rng.uniform(-0.1, 0.1))
    d = _direction(direction + rng.normal(0, 6))
    mask, _ = draw_head(scene, center, a, b, float(np.arctan2(d[1], d[0])), face=True)
    return Anatomy({"head": mask})


def sacrum_position(scene: Scene, omit=frozenset(), direction: float = 22.5) -> Anatomy:
    """A fetal trunk with its spine running to a bright sacrum that points ``direction`` degrees."""
    rng = scene.rng
    s = scene.scale
    _amniotic(scene)
    d = _direction(direction + rng.normal(0, 6))
    n = np.array([-d[1], d[0]])
    center = np.array(scene.at(rng.uniform(0.52, 0.58), rng.uniform(-0.1, 0.1)))
    a, b = rng.uniform(0.3, 0.36) * s, rng.uniform(0.17, 0.21) * s
    angle = float(np.arctan2(d[1], d[0]))
    trunk = scene.polygon(blob_outline(center, (a, b), angle, rng, 0.04), level=0.4, texture=0.3, rim=0.9, rim_width=3)
    bend = rng.uniform(-0.08, 0.08) * s
    for k, t in enumerate(np.linspace(-0.7, 0.75, 9)):  # vertebrae: pairs of ossification centres
        p = center + d * t * a + n * (bend * t * t + 0.25 * b)
        r = (0.025 - 0.01 * max(t, 0)) * s
        for side in (-1, 1):
            scene.paint(disc(scene.shape, p + n * side * 0.05 * s, r) & trunk, 1.5, texture=0.1, posterior=0.4)
    tip = center + d * 0.92 * a + n * (bend * 0.8 + 0.2 * b)
    wedge = np.array([tip + d * 0.05 * s, tip - d * 0.09 * s + n * 0.07 * s, tip - d * 0.09 * s - n * 0.07 * s])
    scene.polygon(wedge, level=1.7, texture=0.1, posterior=2.0)
    for side in (-1, 1):  # iliac wings flank the sacrum
        base = center + d * 0.6 * a + n * side * 0.55 * b
        scene.line(np.array([base - d * 0.1 * s, base + d * 0.08 * s + n * side * 0.03 * s]), 0.025 * s, 1.4, posterior=1.0)
    return Anatomy({"trunk": trunk})


def fetal_abdomen(scene: Scene, omit=frozenset()) -> Anatomy:
    """Transverse fetal abdomen: liver, stomach, spine, umbilical vein."""
    rng = scene.rng
    s = scene.scale
    _amniotic(scene)
    r = rng.uniform(0.3, 0.36) * s
    c = np.array(scene.at(rng.uniform(0.52, 0.57), rng.uniform(-0.1, 0.1)))
    rot = rng.uniform(-0.9, 0.9)
    d = np.array([np.cos(rot + np.pi / 2), np.sin(rot + np.pi / 2)])  # towards the spine
    n = np.array([-d[1], d[0]])  # towards the stomach (fetal left)
    body = scene.polygon(blob_outline(c, (r, r * rng.uniform(0.88, 0.98)), rot, rng, 0.03), level=0.4, texture=0.3, rim=1.1, rim_width=4)
    parts: dict[str, np.ndarray] = {}
    empty = np.zeros(scene.shape, bool)
    liver_c = c - n * 0.3 * r - d * 0.1 * r
    parts["liver"] = empty
    if "liver" not in omit:
        liver = fill(scene.shape, blob_outline(liver_c, (0.55 * r, 0.6 * r), rot, rng, 0.08)) & body
        parts["liver"] = scene.paint(liver, 0.75, texture=0.2, grain=4.0)
    parts["stomach"] = empty
    if "stomach" not in omit:
        st = blob_outline(c + n * 0.45 * r - d * 0.05 * r, (0.2 * r, 0.28 * r), rot + rng.normal(0, 0.3), rng, 0.06)
        parts["stomach"] = scene.paint(fill(scene.shape, st) & body, 0.03, texture=0.1, posterior=-0.4)
    parts["spine"] = empty
    if "spine" not in omit:
        p = c + d * 0.72 * r
        dots = disc(scene.shape, p + d * 0.08 * r, 0.07 * r)
        for side in (-1, 1):
            dots |= disc(scene.shape, p - d * 0.06 * r + n * side * 0.1 * r, 0.06 * r)
        parts["spine"] = scene.paint(dots & body, 1.6, texture=0.1, posterior=1.5)
    parts["vein"] = empty
    if "vein" not in omit:
        p0 = c - d * 0.8 * r - n * 0.1 * r
        pts = np.array([p0, p0 + d * 0.35 * r + n * 0.05 * r, c - d * 0.1 * r - n * 0.15 * r])
        vein = stroke(scene.shape, pts, max(3, 0.07 * r)) & body
        parts["vein"] = scene.paint(vein, 0.03, texture=0.1)
    # Later paint covers earlier paint: each part keeps only what stayed visible.
    order = ["liver", "stomach", "spine", "vein"]
    for i, name in enumerate(order):
        for later in order[i + 1 :]:
            parts[name] = parts[name] & ~parts[later]
    return Anatomy(parts)


def fetal_heart(scene: Scene, omit=frozenset()) -> Anatomy:
    """Fetal thorax with a four-chamber heart."""
    rng = scene.rng
    s = scene.scale
    _amniotic(scene)
    r = rng.uniform(0.3, 0.36) * s
    c = np.array(scene.at(rng.uniform(0.52, 0.57), rng.uniform(-0.1, 0.1)))
    chest = scene.polygon(blob_outline(c, (r, r * 0.92), rng.uniform(0, 3), rng, 0.03), level=0.5, texture=0.3, rim=1.2, rim_width=4)
    for a in np.linspace(0, 2 * np.pi, 7, endpoint=False) + rng.uniform(0, 1):  # rib echoes
        p = c + 0.93 * r * np.array([np.cos(a), np.sin(a)])
        scene.paint(disc(scene.shape, p, 0.04 * r), 1.5, posterior=1.0)
    heart_c = c + rng.normal(0, 0.08, 2) * r
    hr = rng.uniform(0.42, 0.52) * r
    rot = rng.uniform(0, 2 * np.pi)
    heart = np.zeros(scene.shape, bool)
    if "heart" not in omit:
        heart = fill(scene.shape, blob_outline(heart_c, (hr, hr * 0.85), rot, rng, 0.05)) & chest
        scene.paint(heart, 0.95, texture=0.2, grain=4.0)
        ax = np.array([np.cos(rot), np.sin(rot)])
        nx = np.array([-ax[1], ax[0]])
        for i in (-1, 1):
            for j in (-1, 1):
                p = heart_c + ax * i * 0.4 * hr + nx * j * 0.38 * hr
                scene.paint(fill(scene.shape, blob_outline(p, (0.3 * hr, 0.26 * hr), rot, rng, 0.05)) & heart, 0.04, texture=0.1)
    return Anatomy({"heart": heart})


def femur(scene: Scene, omit=frozenset()) -> Anatomy:
    """A femur diaphysis: bright bar with a strong acoustic shadow; its end points."""
    rng = scene.rng
    s = scene.scale
    _amniotic(scene)
    for _ in range(20):
        c = np.array(scene.at(rng.uniform(0.42, 0.6), rng.uniform(-0.2, 0.2)))
        half = rng.uniform(0.22, 0.34) * s
        tilt = np.deg2rad(rng.uniform(-30, 30))
        d = np.array([np.cos(tilt), np.sin(tilt)]) * half
        ends = np.array([c - d, c + d])
        if scene.inside(ends, margin=0.08 * s):
            break
    scene.polygon(blob_outline(c, (half * 1.25, 0.3 * half), tilt, rng, 0.1), level=0.5, texture=0.3)  # thigh
    width = rng.uniform(0.03, 0.045) * s
    bar = capsule(scene.shape, ends[0], ends[1], width) & scene.probe.valid
    scene.paint(bar, 1.8, texture=0.1, posterior=3.0)
    ends = ends[np.argsort(ends[:, 0])]
    return Anatomy({"femur": bar}, {"femur_end_1": ends[0], "femur_end_2": ends[1]})


def cervix(scene: Scene, omit=frozenset()) -> Anatomy:
    """Transvaginal cervix: anterior and posterior lips around the canal."""
    rng = scene.rng
    s = scene.scale
    scene.layers([0.2, 0.25, 0.2], texture=0.3)
    for _ in range(20):
        c = np.array(scene.at(rng.uniform(0.4, 0.5), rng.uniform(-0.1, 0.1)))
        a, b = rng.uniform(0.32, 0.4) * s, rng.uniform(0.13, 0.18) * s
        angle = np.deg2rad(rng.uniform(-25, 25))
        ax = np.array([np.cos(angle), np.sin(angle)])
        nx = np.array([-ax[1], ax[0]])
        bend = rng.uniform(-0.25, 0.25) * b
        us = np.linspace(-0.7, 0.7, 25)
        canal = np.array([c + ax * u * a + nx * bend * (u * u - 0.3) for u in us])
        if scene.inside(canal[[0, -1]], margin=0.05 * s):
            break
    outline = blob_outline(c, (a, b), angle, rng, 0.04)
    whole = fill(scene.shape, outline) & scene.probe.valid
    ys, xs = np.nonzero(whole)
    u = ((xs - c[0]) * ax[0] + (ys - c[1]) * ax[1]) / a
    v = (xs - c[0]) * nx[0] + (ys - c[1]) * nx[1]
    anterior = np.zeros(scene.shape, bool)
    anterior[ys, xs] = v < bend * (u * u - 0.3)
    posterior = whole & ~anterior
    parts = {"cervix": whole, "anterior_lip": anterior, "posterior_lip": posterior}
    scene.paint(whole, 0.55, texture=0.25, rim=0.8, rim_width=3)
    if "anterior_lip" not in omit:
        scene.paint(anterior, _u(rng, (0.5, 0.6)), texture=0.25, grain=5.0)
    if "posterior_lip" not in omit:
        scene.paint(posterior, _u(rng, (0.95, 1.15)), texture=0.25, grain=5.0)
    for name in omit:
        parts[name] = np.zeros(scene.shape, bool)
    scene.paint(stroke(scene.shape, canal, 0.04 * s) & whole, 0.12, texture=0.1)  # mucosa
    scene.paint(stroke(scene.shape, canal, 2) & whole, 1.2, texture=0.05)  # canal line
    return Anatomy(parts, {"canal_end_1": canal[0], "canal_end_2": canal[-1]})


def symphysis_head(scene: Scene, omit=frozenset()) -> Anatomy:
    """Transperineal view: pubic symphysis and fetal head, with the landmarks of the
    angle of progression (symphysis ends, tangent point on the skull)."""
    rng = scene.rng
    s = scene.scale
    scene.layers([0.45, 0.35, 0.5], texture=0.3)
    for _ in range(30):
        sc = np.array(scene.at(rng.uniform(0.3, 0.38), rng.uniform(-0.45, -0.25)))
        half = rng.uniform(0.13, 0.18) * s
        tilt = np.deg2rad(rng.uniform(40, 70))
        axis = np.array([np.cos(tilt), np.sin(tilt)])
        ends = np.array([sc - axis * half, sc + axis * half])  # superior, inferior
        hc = np.array(scene.at(rng.uniform(0.6, 0.68), rng.uniform(0.1, 0.3)))
        ha = rng.uniform(0.25, 0.3) * s
        hb = ha * rng.uniform(0.8, 0.9)
        if np.linalg.norm(hc - sc) > ha + half * 1.2 and scene.inside(ends, margin=0.05 * s):
            break
    head = np.zeros(scene.shape, bool)
    outline = blob_outline(hc, (ha, hb), rng.uniform(-0.4, 0.4), rng)
    if "head" not in omit:
        head, outline = draw_head(scene, hc, ha, hb, rng.uniform(-0.4, 0.4))
    sym = np.zeros(scene.shape, bool)
    if "symphysis" not in omit:
        sym = fill(scene.shape, blob_outline(sc, (half * 1.05, 0.28 * half), tilt, rng, 0.04)) & scene.probe.valid
        scene.paint(sym, 0.9, texture=0.2, rim=1.3, rim_width=3, posterior=0.5)
        scene.paint(stroke(scene.shape, ends, 2) & sym, 0.2, texture=0.05)  # fibrocartilage
    # Tangent from the inferior end to the skull: the contour point seen at the widest angle.
    rel = outline - ends[1]
    ang = np.arctan2(rel[:, 0] * axis[1] - rel[:, 1] * axis[0], rel @ axis)
    visible = [scene.inside(p, margin=3.0) for p in outline]
    ang = np.where(visible, np.abs(ang), -np.inf)
    tangent = outline[int(np.argmax(ang))]
    return Anatomy({"symphysis": sym, "head": head}, {"symphysis_superior": ends[0], "symphysis_inferior": ends[1], "head_tangent": tangent})


def carotid(scene: Scene, omit=frozenset()) -> Anatomy:
    """Carotid artery, transverse (round) or longitudinal (a tube across the image),
    with its bright intima-media wall and posterior enhancement."""
    rng = scene.rng
    s = scene.scale
    scene.layers([0.4, 0.6, 0.5], texture=0.35)
    depth = rng.uniform(0.42, 0.55)
    if rng.random() < 0.5:
        c = np.array(scene.at(depth, rng.uniform(-0.2, 0.2)))
        r = rng.uniform(0.12, 0.17) * s
        outline = blob_outline(c, (r, r * rng.uniform(0.9, 1.0)), 0, rng, 0.01)
        vein_c = c + np.array([rng.choice([-1, 1]) * 1.3 * r, -0.9 * r])  # jugular vein, flattened
        scene.polygon(blob_outline(vein_c, (0.9 * r, 0.45 * r), rng.normal(0, 0.2), rng, 0.08), level=0.04, texture=0.2)
    else:
        half = rng.uniform(0.08, 0.11)
        tilt = rng.normal(0, 0.05)
        lats = np.linspace(-1.05, 1.05, 24)
        top = [scene.at(depth - half + tilt * t, t) for t in lats]
        bottom = [scene.at(depth + half + tilt * t + 0.01 * np.sin(3 * t), t) for t in lats[::-1]]
        outline = np.array(top + bottom)
    artery = np.zeros(scene.shape, bool)
    if "artery" not in omit:
        artery = fill(scene.shape, outline) & scene.probe.valid
        scene.paint(artery, 0.02, texture=0.2, rim=1.3, rim_width=rng.uniform(3, 5), posterior=-0.7)
    return Anatomy({"artery": artery})


# -- cardiac and thoracic ------------------------------------------------------------

def cardiac(scene: Scene, omit=frozenset()) -> Anatomy:
    """Apical four-chamber view: left ventricle, its myocardium, left atrium (labelled),
    right heart chambers (not labelled)."""
    rng = scene.rng
    s = scene.scale
    scene.layers([0.35, 0.3], texture=0.4)
    tilt = rng.normal(0, 0.12)
    lv_c = np.array(scene.at(rng.uniform(0.4, 0.46), rng.uniform(0.12, 0.22)))
    lv_r = (rng.uniform(0.1, 0.13) * s, rng.uniform(0.26, 0.32) * s)
    wall = rng.uniform(0.04, 0.06) * s
    outer = fill(scene.shape, blob_outline(lv_c, (lv_r[0] + wall, lv_r[1] + wall), tilt, rng, 0.03))
    lv = fill(scene.shape, blob_outline(lv_c, lv_r, tilt, rng, 0.03))
    rv_c = np.array(scene.at(rng.uniform(0.4, 0.45), rng.uniform(-0.3, -0.2)))
    scene.polygon(blob_outline(rv_c, (lv_r[0] * 1.15 + wall, lv_r[1] * 0.85 + wall), tilt, rng, 0.05), level=0.7, texture=0.3)
    scene.polygon(blob_outline(rv_c, (lv_r[0] * 1.15, lv_r[1] * 0.85), tilt, rng, 0.05), level=0.04, texture=0.2)
    ra_c = np.array(scene.at(rng.uniform(0.8, 0.86), rng.uniform(-0.3, -0.2)))
    scene.polygon(blob_outline(ra_c, (0.1 * s, 0.09 * s), 0, rng, 0.05), level=0.04, rim=0.7, rim_width=4)
    empty = np.zeros(scene.shape, bool)
    parts = {"lv": empty, "myocardium": empty, "la": empty}
    if "myocardium" not in omit:
        parts["myocardium"] = scene.paint(outer & ~lv & scene.probe.valid, 0.8, texture=0.3, grain=4.0)
    if "lv" not in omit:
        parts["lv"] = scene.paint(lv & scene.probe.valid, 0.04, texture=0.3)
    if "la" not in omit:
        la_c = np.array(scene.at(rng.uniform(0.82, 0.88), rng.uniform(0.14, 0.24)))
        la = fill(scene.shape, blob_outline(la_c, (0.11 * s, 0.09 * s), tilt, rng, 0.05)) & scene.probe.valid
        la &= ~outer
        parts["la"] = scene.paint(la, 0.04, texture=0.2, rim=0.75, rim_width=3)
        parts["myocardium"] = parts["myocardium"] & ~band(la, 3)
    return Anatomy(parts)


def lung(scene: Scene, omit=frozenset(), a_lines: int = 2, b_lines=(0, 0), consolidation: bool = False, irregular: float = 0.0) -> Anatomy:
    """Intercostal lung view: ribs with shadows, the pleural line, and the artefacts
    that tell the lung's state (A-lines, B-lines, consolidation)."""
    rng = scene.rng
    s = scene.scale
    p = rng.uniform(0.22, 0.32)
    scene.layers([0.5, 0.65], texture=0.35)
    below = scene.probe.depth > p
    scene.echo[below] = 0.15 * (1 + 0.3 * scene.noise(8.0, stretch=4.0)[below])
    rib_at = [rng.uniform(-0.95, -0.75), rng.uniform(0.75, 0.95)]
    lats = np.linspace(rib_at[0] + 0.2, rib_at[1] - 0.2, 40)
    wobble = irregular * 0.02 * rng.standard_normal(lats.size).cumsum() / np.sqrt(np.arange(1, lats.size + 1))
    line = np.array([scene.at(p + w, t) for w, t in zip(wobble, lats)])
    thick = rng.uniform(0.015, 0.025) * s
    for k in range(1, a_lines + 1):  # reverberations of the pleura at multiples of its depth
        if p * (k + 1) < 0.95:
            rep = np.array([scene.at(p * (k + 1), t) for t in lats])
            scene.line(rep, thick, 0.9 / k)
    if consolidation:
        lo, hi = lats[5], lats[-5]
        top = np.array([scene.at(p + 0.01, t) for t in np.linspace(lo, hi, 20)])
        deep = np.array([scene.at(p + rng.uniform(0.25, 0.5), t) for t in np.linspace(hi, lo, 20)])
        region = fill(scene.shape, np.concatenate([top, deep]))
        scene.paint(region, 0.55, texture=0.4, grain=5.0)
        for _ in range(int(rng.integers(6, 14))):  # air bronchograms
            q = np.array(scene.at(rng.uniform(p + 0.05, p + 0.3), rng.uniform(lo, hi)))
            scene.paint(disc(scene.shape, q, rng.uniform(1.5, 3)) & region, 1.6)
    for _ in range(int(rng.integers(b_lines[0], b_lines[1] + 1))):  # B-lines: comet tails to the bottom
        t = rng.uniform(lats[2], lats[-3])
        ray = np.array([scene.at(d, t) for d in np.linspace(p, 1.0, 12)])
        scene.line(ray, rng.uniform(0.02, 0.04) * s, rng.uniform(0.8, 1.1))
    pleura = np.zeros(scene.shape, bool)
    if "pleura" not in omit:
        pleura = stroke(scene.shape, line, thick) & scene.probe.valid
        scene.paint(pleura, 1.5, texture=0.15)
    for t in rib_at:  # ribs: bright arcs with full shadow, shaped along the beams
        phi = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        rib = np.array([scene.at(p - 0.045 + 0.02 * np.sin(f), t + 0.14 * np.cos(f)) for f in phi])
        scene.polygon(rib, level=1.4, rim=1.6, posterior=6.0)
    return Anatomy({"pleura": pleura})


# -- abdominal organs (organ classification) ----------------------------------------

def kidney(scene: Scene, omit=frozenset()) -> Anatomy:
    rng = scene.rng
    s = scene.scale
    scene.layers([0.5, 0.4, 0.6], texture=0.3)
    c = scene.at(rng.uniform(0.45, 0.55), rng.uniform(-0.15, 0.15))
    r = (rng.uniform(0.35, 0.42) * s, rng.uniform(0.17, 0.22) * s)
    ang = rng.normal(0, 0.3)
    organ = scene.polygon(blob_outline(c, r, ang, rng, 0.03), level=0.22, texture=0.2, rim=1.2, rim_width=3)
    sinus = fill(scene.shape, blob_outline(c, (r[0] * 0.6, r[1] * 0.4), ang, rng, 0.25)) & organ
    scene.paint(sinus, 1.1, texture=0.3, grain=3.0)
    return Anatomy({"organ": organ})


def bladder(scene: Scene, omit=frozenset()) -> Anatomy:
    rng = scene.rng
    s = scene.scale
    scene.layers([0.5, 0.45], texture=0.3)
    c = scene.at(rng.uniform(0.42, 0.5), rng.uniform(-0.1, 0.1))
    r = (rng.uniform(0.35, 0.45) * s, rng.uniform(0.22, 0.3) * s)
    organ = scene.polygon(blob_outline(c, r, rng.normal(0, 0.1), rng, 0.05), level=0.02, texture=0.1, rim=1.0, rim_width=4, posterior=-1.0)
    return Anatomy({"organ": organ})


def gallbladder(scene: Scene, omit=frozenset()) -> Anatomy:
    rng = scene.rng
    s = scene.scale
    _liver_host(scene, vessels=2)
    c = np.array(scene.at(rng.uniform(0.4, 0.5), rng.uniform(-0.2, 0.2)))
    ang = rng.uniform(-0.6, 0.6)
    r = (rng.uniform(0.2, 0.28) * s, rng.uniform(0.07, 0.1) * s)
    organ = scene.polygon(blob_outline(c, r, ang, rng, 0.06), level=0.02, texture=0.1, rim=1.2, rim_width=3, posterior=-0.8)
    if rng.random() < 0.5:  # a stone: bright, shadowing
        stone = np.array(c) + np.array([np.cos(ang), np.sin(ang)]) * r[0] * 0.5 + [0, r[1] * 0.4]
        scene.paint(disc(scene.shape, stone, 0.03 * s) & organ, 1.8, posterior=4.0)
    return Anatomy({"organ": organ})


def liver(scene: Scene, omit=frozenset()) -> Anatomy:
    _liver_host(scene, vessels=6)
    return Anatomy({"organ": scene.probe.valid & (scene.probe.depth > 0.15)})


def thyroid(scene: Scene, omit=frozenset()) -> Anatomy:
    host = _thyroid_host(scene)
    return Anatomy({"organ": fill(scene.shape, blob_outline(host.center, host.radii, host.angle, scene.rng))})


def spine_plane(scene: Scene, omit=frozenset()) -> Anatomy:
    """A fetal spine in a random direction (one of the planes of plane classification)."""
    return sacrum_position(scene, omit, direction=float(scene.rng.uniform(0, 360)))


ANATOMIES: dict[str, Callable[..., Anatomy]] = {
    "lesion_in_tissue": lesion_in_tissue,
    "fetal_head": fetal_head,
    "head_position": head_position,
    "sacrum_position": sacrum_position,
    "fetal_abdomen": fetal_abdomen,
    "fetal_heart": fetal_heart,
    "femur": femur,
    "cervix": cervix,
    "symphysis_head": symphysis_head,
    "cardiac": cardiac,
    "carotid": carotid,
    "lung": lung,
    "kidney": kidney,
    "bladder": bladder,
    "gallbladder": gallbladder,
    "liver": liver,
    "thyroid": thyroid,
    "spine_plane": spine_plane,
}
