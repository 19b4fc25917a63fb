"""FM_UIA 2026 challenge entry point.

The container runs ``python model.py``: the data root is mounted read-only at
``/input/`` and the predictions go to ``/output/``. ``Model()`` loads the checkpoint
in ``checkpoint/`` beside this file; ``Model().predict(data_root, output_dir,
batch_size=8)`` writes the submission (segmentation PNGs and the three JSON files)
with the backend named in ``settings.json`` (torch, onnxruntime or openvino).

``fmuia export submission`` assembles a ready folder: this file, ``checkpoint/``, the
fmuia modules prediction needs (``fmuia/``), ``settings.json``, ``Dockerfile`` and
``requirements.txt`` (generated from what those modules import). The package copy
beside this file is used first, so the folder runs without installing fmuia; only the
third-party packages of ``requirements.txt`` are needed.

The output folder must be empty (the challenge gives an empty ``/output/``) or new;
``predict(..., overwrite=True)`` accepts a non-empty one and first removes the
prediction files of an earlier run from it (never anything else).
"""
from __future__ import annotations

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if os.path.isdir(os.path.join(HERE, "fmuia")):
    sys.path.insert(0, HERE)

# The container has no network: skip albumentations' update check on import.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import fmuia  # noqa: E402  (after the path set-up above)

SETTINGS = os.path.join(HERE, "settings.json")


def _settings() -> dict:
    if not os.path.isfile(SETTINGS):
        return {}
    with open(SETTINGS, encoding="utf-8") as fh:
        return json.load(fh)


class Model:
    def __init__(self) -> None:
        settings = _settings()
        checkpoint = os.path.join(HERE, settings.get("checkpoint", "checkpoint"))
        self.workers = settings.get("workers")
        self.predictor = fmuia.load(
            checkpoint, device=settings.get("device", "auto"), backend=settings.get("backend"),
            precision=settings.get("precision"),
            tta=settings.get("tta", False), box_voting=settings.get("box_voting"),
        )

    def predict(self, data_root: str, output_dir: str, batch_size: int = 8, overwrite: bool = False):
        summary = self.predictor.predict_dataset(
            data_root, output_dir, batch_size=batch_size, workers=self.workers, progress=False,
            overwrite=overwrite,
        )
        print(summary.format_table(), flush=True)
        return summary


if __name__ == "__main__":
    Model().predict("/input/", "/output/")
