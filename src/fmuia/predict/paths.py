"""Where a segmentation prediction goes, and the guarantee that it stays inside the
output folder.

A submission writes each mask at the row's ``mask_path`` with every leading ``../``
(and ``./``) removed: the rule of ``fmuia.io.paths.submission_mask_path``, shared with
the scorer. CSVs are input we do not control, so every target is checked before the
first byte is written: an absolute path, a ``..`` left after the leading ones are
stripped, a path through a symlink that leaves the output folder, a JSON file of the
submission, or two rows aiming at the same file are refused with the CSV file and line.
"""
from __future__ import annotations

import os
from typing import Iterable

from fmuia.data.records import Entry
from fmuia.errors import DataError
from fmuia.io.paths import relative_output_path, resolve_output_file

__all__ = ["RESERVED_NAMES", "output_file", "plan_mask_files", "relative_output_path"]

# Files the writer itself owns at the top of the output folder.
RESERVED_NAMES = ("classification_predictions.json", "detection_predictions.json", "regression_predictions.json")


def output_file(out_dir: str, mask_path: str) -> str:
    """The absolute file a mask is written to, checked to be inside ``out_dir``
    (symlinks already present under ``out_dir`` resolved) and not to be one of the
    submission's JSON files. Raises ``ValueError``."""
    rel = relative_output_path(mask_path)
    if os.path.dirname(rel) == "" and rel in RESERVED_NAMES:
        raise ValueError("collides with a prediction JSON file of the submission")
    return resolve_output_file(out_dir, rel)


def plan_mask_files(entries: Iterable[Entry], out_dir: str) -> dict[int, str]:
    """Check every segmentation row's target before anything is written.

    Returns ``{position in entries: absolute output file}``. All problems are
    collected and raised together as one ``DataError`` naming CSV file, line and path.
    """
    planned: dict[int, str] = {}
    owners: dict[str, Entry] = {}
    problems: list[str] = []
    for i, entry in enumerate(entries):
        if entry.mask_path is None:
            continue
        try:
            target = output_file(out_dir, entry.mask_path)
        except ValueError as exc:
            problems.append(f"{entry.where}: mask_path {entry.mask_path!r} {exc}")
            continue
        first = owners.get(target)
        if first is not None:
            problems.append(f"{entry.where}: mask_path {entry.mask_path!r} writes the same file as {first.where}")
            continue
        owners[target] = entry
        planned[i] = target
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise DataError(
            f"refusing to write predictions into {out_dir}: {len(problems)} unsafe mask path(s) "
            f"(nothing was written):\n  {shown}{more}"
        )
    return planned
