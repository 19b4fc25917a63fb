"""Reading a prediction folder (docs/format.md, "Submission files") strictly.

Each kind names its JSON file and parses its entries (``TaskKind.prediction_file``,
``TaskKind.parse_record``); kinds whose predictions are a file per sample (masks) say
where that file lies (``TaskKind.prediction_path``). A malformed file is a ``DataError``
naming the file and the entry index; entries that match no ground-truth row are kept
aside as extras, never silently dropped.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from fmuia import kinds
from fmuia.errors import DataError
from fmuia.io.paths import submission_mask_path
from fmuia.kinds.base import LabelError, TaskKind
from fmuia.kinds.classification import ClassPrediction
from fmuia.kinds.segmentation import read_prediction_mask
from fmuia.tasks import Kind, TaskRegistry

__all__ = [
    "ClassPrediction",
    "Extra",
    "PredictionFile",
    "json_kinds",
    "read_prediction_file",
    "read_prediction_mask",
    "submission_mask_path",
]


def json_kinds() -> list[TaskKind]:
    """The kinds whose predictions are a JSON file, in registration order."""
    return [k for k in kinds.all_kinds() if k.prediction_file]


@dataclass(frozen=True)
class Extra:
    """A prediction that matches no ground-truth row."""

    source: str  # file, relative to the prediction folder
    index: int | None  # entry index in a JSON file; None for a mask file
    task_id: str
    image_path: str
    reason: str

    def to_dict(self) -> dict:
        return {"source": self.source, "index": self.index, "task_id": self.task_id, "image_path": self.image_path, "reason": self.reason}


@dataclass
class PredictionFile:
    """One JSON prediction file: ``values[(task_id, image_path)] = (index, value)``."""

    path: str
    kind: Kind
    values: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    extras: list[Extra] = field(default_factory=list)

    def get(self, task_id: str, image_path: str):
        found = self.values.get((task_id, image_path))
        return None if found is None else found[1]


def read_prediction_file(pred_dir: str, kind: "Kind | str", registry: TaskRegistry, labelled: set[tuple[str, str]]) -> PredictionFile | None:
    """Read and check the JSON file of ``kind`` in ``pred_dir``; None when it is absent.

    ``labelled`` holds the (task_id, image_path) keys of the ground truth. An entry
    whose key is not among them is an extra; a repeated key keeps the last entry (as
    the challenge's scorer does) and the earlier one is listed as an extra.
    """
    owner = kinds.kind_of(kind)
    name = owner.prediction_file
    if not name:
        raise ValueError(f"{owner.name} predictions are files, not a JSON file")
    path = os.path.join(pred_dir, name)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of predictions, got {type(data).__name__}")
    out = PredictionFile(path=path, kind=owner.kind)
    for index, item in enumerate(data):
        try:
            if not isinstance(item, dict):
                raise LabelError(f"expected an object, got {type(item).__name__}")
            for key in ("image_path", "task_id"):
                if not isinstance(item.get(key), str) or not item.get(key):
                    raise LabelError(f"missing or non-string {key!r}")
            task_id, image_path = item["task_id"], item["image_path"]
            task = registry.get(task_id)
            if task is not None and task.kind is not owner.kind:
                raise LabelError(f"task {task_id!r} is a {task.kind.value} task, not {owner.name}")
            value = owner.parse_record(item, task)
        except LabelError as exc:
            raise DataError(f"{path}: entry {index}: {exc}") from None
        key = (task_id, image_path)
        if key not in labelled:
            reason = "task not in the ground truth" if task is None else "no labelled ground-truth row with this image_path"
            out.extras.append(Extra(name, index, task_id, image_path, reason))
            continue
        if key in out.values:
            earlier = out.values[key][0]
            out.extras.append(Extra(name, earlier, task_id, image_path, f"duplicate: superseded by entry {index}"))
        out.values[key] = (index, value)
    return out


def extra_masks(pred_dir: str, expected: set[str]) -> list[Extra]:
    """Per-sample prediction files (masks under ``<pred_dir>/Segmentation``) that no
    ground-truth row asks for (``expected`` holds submission-relative paths with '/'
    separators)."""
    extras = []
    for owner in kinds.all_kinds():
        if not owner.prediction_dir:
            continue
        reason = f"no {owner.name} row has this {owner.label_columns[0]}"
        for folder, _, files in os.walk(os.path.join(pred_dir, owner.prediction_dir)):
            for name in sorted(files):
                rel = os.path.relpath(os.path.join(folder, name), pred_dir).replace(os.sep, "/")
                if rel not in expected:
                    extras.append(Extra(rel, None, "", rel, reason))
    return sorted(extras, key=lambda e: e.source)
