"""A scene under construction: echogenicity and attenuation maps plus drawing tools.

Structures are drawn as masks (exact, in image pixels) and painted with an
interior echo level, texture, a bright rim and a posterior effect; the same
masks are the labels, so labels and pixels agree by construction.
"""
from __future__ import annotations

import cv2
import numpy as np

from fmuia.synthetic.scanner import Look, Probe, draw_annotations, random_look, render

_SHIFT = 4  # sub-pixel bits for OpenCV polygon drawing
_ONE = 1 << _SHIFT


def blob_outline(
    center: tuple[float, float],
    radii: tuple[float, float],
    angle: float,
    rng: np.random.Generator,
    irregularity: float = 0.0,
    spicules: int = 0,
    points: int = 96,
) -> np.ndarray:
    """Closed outline (points x 2) of an ellipse-like blob.

    ``irregularity`` adds random low/mid-frequency lobulation (0 = smooth ellipse);
    ``spicules`` adds that many sharp outward spikes (an angular, spiculated margin)."""
    phi = np.linspace(0, 2 * np.pi, points, endpoint=False)
    r = np.ones_like(phi)
    if irregularity > 0:
        for k in range(2, 9):
            r += irregularity * rng.normal(0, 1.0 / k) * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
        r += irregularity * 0.25 * rng.normal(0, 1, points) * (rng.random(points) < 0.3)
    for _ in range(spicules):
        at = rng.uniform(0, 2 * np.pi)
        width = rng.uniform(0.05, 0.12)
        d = np.angle(np.exp(1j * (phi - at)))
        r += rng.uniform(0.25, 0.6) * np.clip(1 - np.abs(d) / width, 0, None)
    r = np.clip(r, 0.35, None)
    x, y = radii[0] * r * np.cos(phi), radii[1] * r * np.sin(phi)
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([center[0] + c * x - s * y, center[1] + s * x + c * y], axis=1)


def fill(shape: tuple[int, int], outline: np.ndarray) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(outline * _ONE).astype(np.int32)], 1, cv2.LINE_8, _SHIFT)
    return mask.astype(bool)


def stroke(shape: tuple[int, int], points: np.ndarray, width: float, closed: bool = False) -> np.ndarray:
    """Mask of a polyline drawn ``width`` pixels thick."""
    mask = np.zeros(shape, np.uint8)
    pts = np.round(np.asarray(points) * _ONE).astype(np.int32)
    cv2.polylines(mask, [pts], closed, 1, max(1, int(round(width))), cv2.LINE_8, _SHIFT)
    return mask.astype(bool)


def capsule(shape: tuple[int, int], p0, p1, width: float) -> np.ndarray:
    """A bar with rounded ends from ``p0`` to ``p1`` (centres of the end caps)."""
    return stroke(shape, np.array([p0, p1], np.float64), width) | disc(shape, p0, width / 2) | disc(shape, p1, width / 2)


def disc(shape: tuple[int, int], center, radius: float) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    c = (int(round(center[0] * _ONE)), int(round(center[1] * _ONE)))
    cv2.circle(mask, c, max(1, int(round(radius * _ONE))), 1, -1, cv2.LINE_8, _SHIFT)
    return mask.astype(bool)


def band(mask: np.ndarray, width: float) -> np.ndarray:
    """A band ``width`` pixels wide straddling the boundary of ``mask``."""
    k = max(3, int(round(width)) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    return cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_GRADIENT, kernel).astype(bool)


class Scene:
    """Echogenicity (``echo``) and beam attenuation (``atten``) maps of one image."""

    def __init__(self, probe: Probe, rng: np.random.Generator, look: Look | None = None) -> None:
        self.probe = probe
        self.rng = rng
        self.look = look or random_look(rng)
        self.shape = (probe.h, probe.w)
        self.echo = np.full(self.shape, 0.5, np.float32)
        self.atten = np.zeros(self.shape, np.float32)
        self._inner: dict[int, np.ndarray] = {}  # field of view eroded by a margin, by margin

    # -- placement -------------------------------------------------------
    @property
    def scale(self) -> float:
        """Pixels per unit of field-of-view depth; sizes are given as fractions of it."""
        return self.probe.depth_px

    def at(self, depth: float, lateral: float) -> tuple[float, float]:
        x, y = self.probe.point(depth, lateral)
        return float(x), float(y)

    def inside(self, points: np.ndarray, margin: float = 2.0) -> bool:
        """Whether every point lies in the field of view, ``margin`` pixels from its edge."""
        pts = np.atleast_2d(points)
        xs, ys = np.round(pts[:, 0]).astype(int), np.round(pts[:, 1]).astype(int)
        h, w = self.shape
        if (xs < margin).any() or (ys < margin).any() or (xs >= w - margin).any() or (ys >= h - margin).any():
            return False
        m = int(np.ceil(margin))
        if m not in self._inner:
            self._inner[m] = cv2.erode(self.probe.valid.astype(np.uint8), np.ones((2 * m + 1, 2 * m + 1), np.uint8))
        return bool(self._inner[m][ys, xs].all())

    # -- textures --------------------------------------------------------
    def noise(self, cell: float, stretch: float = 1.0) -> np.ndarray:
        """Smooth random field (zero mean, unit std) with features ~``cell`` pixels;
        ``stretch`` > 1 elongates them horizontally (fibrous tissue)."""
        h, w = self.shape
        gh = max(2, int(h / cell) + 2)
        gw = max(2, int(w / (cell * stretch)) + 2)
        grid = self.rng.standard_normal((gh, gw)).astype(np.float32)
        field = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        return (field - field.mean()) / (field.std() + 1e-6)

    # -- background --------------------------------------------------------
    def layers(self, levels: list[float], texture: float = 0.25, skin: float = 1.1) -> None:
        """Tissue layers that follow the probe face (depth bands), with wavy
        boundaries, a bright skin line and fibrous texture."""
        rng = self.rng
        n = len(levels)
        cuts = np.sort(rng.uniform(0.05, 0.95, n - 1)) if n > 1 else np.array([])
        depth = self.probe.depth + 0.03 * self.noise(self.shape[1] / 3.0, stretch=3.0)
        echo = np.full(self.shape, levels[-1], np.float32)
        for level, cut in zip(levels[:-1][::-1], cuts[::-1]):
            echo[depth < cut] = level
        fibres = self.noise(4.0, stretch=rng.uniform(3, 8))
        echo *= 1 + texture * (0.6 * fibres + 0.4 * self.noise(20.0))
        echo[self.probe.depth < rng.uniform(0.01, 0.03)] = skin
        self.echo = np.clip(echo, 0.02, None).astype(np.float32)

    def fluid_pool(self, top: float, level: float = 0.03) -> None:
        """Fluid (amniotic, bladder) from depth ``top`` down: nearly echo-free, enhancing."""
        region = self.probe.depth > top + 0.04 * self.noise(self.shape[1] / 2.0)
        self.echo[region] = level * (1 + 0.5 * np.abs(self.noise(10.0)[region]))
        self.atten[region] -= 0.3 / self.scale

    # -- structures --------------------------------------------------------
    def paint(
        self,
        mask: np.ndarray,
        level: float,
        texture: float = 0.15,
        grain: float = 6.0,
        rim: float | None = None,
        rim_width: float = 3.0,
        posterior: float = 0.0,
    ) -> np.ndarray:
        """Paint a structure: interior ``level`` with ``texture``, optional rim (a bright
        capsule, or a dark halo when ``rim`` is below the surroundings),
        and ``posterior`` (total log-amplitude loss across it: > 0 shadow, < 0 enhancement).
        Returns the mask."""
        if not mask.any():
            return mask
        field = self.noise(grain)
        self.echo[mask] = np.clip(level * (1 + texture * field[mask]), 0.005, None)
        if rim is not None:
            ring = band(mask, rim_width)
            self.echo[ring] = rim * (1 + 0.15 * field[ring])
        if posterior:
            cols = max(1, int(mask.any(axis=0).sum()))
            thickness = max(1.0, mask.sum() / cols)
            self.atten[mask] += posterior / thickness
        return mask

    def polygon(self, outline: np.ndarray, **paint) -> np.ndarray:
        return self.paint(fill(self.shape, outline), **paint)

    def line(self, points, width: float, level: float, posterior: float = 0.0, closed: bool = False) -> np.ndarray:
        mask = stroke(self.shape, points, width, closed)
        return self.paint(mask, level, texture=0.1, posterior=posterior)

    # -- output --------------------------------------------------------------
    def render(self, annotate: bool = True) -> np.ndarray:
        img = render(self.probe, self.echo, self.atten, self.rng, self.look)
        if annotate:
            draw_annotations(img, self.probe, self.rng)
        return img
