"""Synthetic B-mode ultrasound data with exact labels for every FM_UIA 2026 task,
written in the challenge layout so that everything downstream runs on it unchanged.

``generate(out_dir, per_task=..., seed=...)`` writes ``train``/``val``/``test`` data
roots; ``synthesize(task, seed, split, index)`` draws one sample in memory;
``render_gallery(path)`` draws one labelled sample per task into one image.
"""
from fmuia.synthetic.gallery import render_gallery
from fmuia.synthetic.profiles import PROFILES, Profile, Variant
from fmuia.synthetic.sampler import SyntheticSample, synthesize
from fmuia.synthetic.writer import GenerationSummary, default_splits, generate

__all__ = [
    "PROFILES", "Profile", "Variant", "SyntheticSample", "synthesize",
    "GenerationSummary", "default_splits", "generate", "render_gallery",
]
