"""Probe geometry and B-mode image formation.

A ``Probe`` is the field of view of a transducer: a fan (phased or convex array)
or a rectangle (linear array) with black outside. It maps between the image and
a *beam grid* (rows = depth along a scan line, columns = scan lines), which is
where effects that act along the beam live: speckle (elongated across the beam),
posterior shadowing and enhancement (accumulated with depth).

``render`` turns an echogenicity map (mean backscatter per pixel, ~0..1.5) into a
displayed 8-bit image: transmission losses, multiplicative Rayleigh speckle,
depth attenuation with imperfect time-gain compensation, log compression.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class Probe:
    """Field of view of one image. Coordinates: x right, y down, in pixels."""

    h: int
    w: int
    kind: str  # "sector" | "convex" | "linear"
    origin: tuple[float, float]  # fan apex (sector/convex) or top-centre (linear)
    near: float  # sector: radius of the skin line; linear: y of the skin line
    far: float  # sector: radius of the deepest row; linear: y of the deepest row
    spread: float  # sector: half opening angle in radians; linear: half width in pixels

    def __post_init__(self) -> None:
        ys, xs = np.mgrid[0 : self.h, 0 : self.w].astype(np.float32)
        ox, oy = self.origin
        if self.kind == "linear":
            depth = (ys - self.near) / (self.far - self.near)
            lateral = (xs - ox) / self.spread
        else:
            r = np.hypot(xs - ox, ys - oy)
            depth = (r - self.near) / (self.far - self.near)
            lateral = np.arctan2(xs - ox, ys - oy) / self.spread
        self.valid = (depth >= 0) & (depth <= 1) & (np.abs(lateral) <= 1)
        self.depth = np.clip(depth, 0, 1).astype(np.float32)
        self.lateral = np.clip(lateral, -1, 1).astype(np.float32)
        # Beam grid: about one row per pixel of depth, one column per pixel of width.
        self.n_depth = max(8, int(round(self.far - self.near)))
        self.n_lines = max(8, int(round(self.w * 0.9)))
        d = np.linspace(0, 1, self.n_depth, dtype=np.float32)[:, None]
        lat = np.linspace(-1, 1, self.n_lines, dtype=np.float32)[None, :]
        bx, by = self.point(d, lat)
        self.beam_x = np.ascontiguousarray(np.broadcast_to(bx, (self.n_depth, self.n_lines)), dtype=np.float32)
        self.beam_y = np.ascontiguousarray(np.broadcast_to(by, (self.n_depth, self.n_lines)), dtype=np.float32)
        self.img_row = (self.depth * (self.n_depth - 1)).astype(np.float32)
        self.img_col = ((self.lateral + 1) * 0.5 * (self.n_lines - 1)).astype(np.float32)

    @property
    def depth_px(self) -> float:
        """Length of the field of view along the beam, in pixels."""
        return float(self.far - self.near)

    def point(self, depth, lateral):
        """Image (x, y) of a position given as depth 0..1 and lateral -1..1."""
        ox, oy = self.origin
        if self.kind == "linear":
            return ox + np.asarray(lateral) * self.spread, self.near + np.asarray(depth) * (self.far - self.near)
        r = self.near + np.asarray(depth) * (self.far - self.near)
        theta = np.asarray(lateral) * self.spread
        return ox + r * np.sin(theta), oy + r * np.cos(theta)

    def to_beam(self, img: np.ndarray) -> np.ndarray:
        return cv2.remap(img, self.beam_x, self.beam_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def from_beam(self, beam: np.ndarray) -> np.ndarray:
        return cv2.remap(beam, self.img_col, self.img_row, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def make_probe(h: int, w: int, kind: str, rng: np.random.Generator) -> Probe:
    """A field of view of the given kind that fits an ``h`` x ``w`` image."""
    top = h * rng.uniform(0.03, 0.07)
    bottom = h * rng.uniform(0.95, 0.985)
    if kind == "linear":
        half = w * rng.uniform(0.36, 0.45)
        return Probe(h, w, kind, (w / 2.0, 0.0), top, bottom, half)
    if kind == "sector":  # phased array: apex at the top edge, small skin radius
        apex_y = top - h * rng.uniform(0.0, 0.02)
        near = top - apex_y + 1.0
        angle = np.deg2rad(rng.uniform(34, 45))
    elif kind == "convex":  # curved array: virtual apex above the image
        apex_y = -h * rng.uniform(0.15, 0.45)
        near = top - apex_y
        angle = np.deg2rad(rng.uniform(26, 36))
    else:
        raise ValueError(f"unknown probe kind {kind!r} (expected sector, convex or linear)")
    far = bottom - apex_y
    # Narrow the fan if it would leave the image sideways.
    angle = min(angle, float(np.arcsin(min(0.99, (w * 0.48) / far))))
    return Probe(h, w, kind, (w / 2.0, apex_y), near, far, angle)


@dataclass(frozen=True)
class Look:
    """Machine settings of one image (drawn per sample)."""

    gain: float = 1.0
    attenuation: float = 1.2  # log-amplitude loss over the full depth before compensation
    compensation: float = 0.8  # fraction of it the time-gain compensation gives back
    dynamic_range_db: float = 48.0
    gamma: float = 1.0
    speckle_axial: float = 0.8  # speckle correlation length (pixels) along the beam
    speckle_lateral: float = 1.8  # and across it
    blur: float = 0.6


def random_look(rng: np.random.Generator) -> Look:
    return Look(
        gain=float(rng.uniform(0.8, 1.25)),
        attenuation=float(rng.uniform(0.8, 2.0)),
        compensation=float(rng.uniform(0.6, 0.95)),
        dynamic_range_db=float(rng.uniform(40, 55)),
        gamma=float(rng.uniform(0.85, 1.2)),
        speckle_axial=float(rng.uniform(0.6, 1.0)),
        speckle_lateral=float(rng.uniform(1.3, 2.4)),
        blur=float(rng.uniform(0.4, 0.8)),
    )


def render(probe: Probe, echo: np.ndarray, atten: np.ndarray, rng: np.random.Generator, look: Look) -> np.ndarray:
    """Form the displayed 8-bit B-mode image from echogenicity and attenuation maps.

    ``atten`` is extra log-amplitude loss per pixel of beam path (bone, calcium and
    gas > 0 cast shadows; fluid < 0 enhances what lies behind it)."""
    # Transmission: what has been lost (or gained) above each point along its beam.
    a_beam = probe.to_beam(atten.astype(np.float32))
    lost = np.cumsum(a_beam, axis=0) - a_beam
    transmission = probe.from_beam(np.exp(-np.clip(lost, -1.2, 8.0)).astype(np.float32))

    # Fully developed speckle: the magnitude of a correlated complex Gaussian field.
    field = rng.standard_normal((probe.n_depth, probe.n_lines, 2)).astype(np.float32)
    field = cv2.GaussianBlur(field, (0, 0), sigmaX=look.speckle_lateral, sigmaY=look.speckle_axial)
    amp = np.sqrt(field[..., 0] ** 2 + field[..., 1] ** 2)
    amp /= np.sqrt(np.mean(amp * amp)) + 1e-8
    speckle = probe.from_beam(amp)

    tgc = np.exp(-look.attenuation * (1.0 - look.compensation) * probe.depth) * look.gain
    mean_echo = cv2.GaussianBlur(np.maximum(echo, 0.0).astype(np.float32), (0, 0), look.blur)
    intensity = mean_echo * transmission * speckle * tgc + 0.01 * np.abs(rng.standard_normal(echo.shape, dtype=np.float32))

    db = 20.0 * np.log10(intensity + 1e-5)
    # Tissue of echogenicity ~0.5 shows mid-gray; fluid is near black, bone and gas saturate.
    shown = np.clip((db + look.dynamic_range_db - 12.0) / look.dynamic_range_db, 0.0, 1.0) ** look.gamma
    out = cv2.GaussianBlur(shown.astype(np.float32), (0, 0), 0.5) * 255.0
    out[~probe.valid] = 0
    return (out + 0.5).astype(np.uint8)


def draw_annotations(img: np.ndarray, probe: Probe, rng: np.random.Generator) -> None:
    """Depth-scale ticks and a little header text in the black margins, like a scanner screen."""
    h, w = img.shape[:2]
    canvas = np.zeros_like(img)
    xs = np.nonzero(probe.valid.any(axis=0))[0]
    right = int(xs.max()) + 6 if xs.size else w - 8
    if right < w - 3:
        steps = int(rng.integers(5, 11))
        for k in range(steps + 1):
            y = int(round(probe.point(k / steps, 0.0)[1]))
            cv2.line(canvas, (right, y), (min(w - 1, right + (4 if k % 5 else 7)), y), 190, 1)
    scale = max(0.3, h / 1400.0)
    label = f"{rng.choice(['C5-1', 'L12-5', 'P4-2', 'C9-2', 'L7'])}  {rng.uniform(2.0, 12.0):.1f}MHz"
    cv2.putText(canvas, label, (4, max(10, int(h * 0.03))), cv2.FONT_HERSHEY_SIMPLEX, scale, 170, 1, cv2.LINE_AA)
    # Never over the image itself: labels are defined on the field of view.
    outside = ~probe.valid
    img[outside] = np.maximum(img[outside], canvas[outside])
