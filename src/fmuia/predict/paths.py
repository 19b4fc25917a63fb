"""Where a segmentation prediction goes, and the guarantee that it stays inside the
output folder.

A submission writes each mask at the row's ``mask_path`` with every leading ``../``
removed. CSVs are input we do not control, so every target is checked before the
first byte is written: an absolute path, a ``..`` left after the leading ones are
stripped, a path through a symlink that leaves the output folder, or two rows
aiming at the same file are refused with the CSV file and line.
"""
from __future__ import annotations

import ntpath
import os
import re
from typing import Iterable

from fmuia.data.records import Entry
from fmuia.errors import DataError

# Files the writer itself owns at the top of the output folder.
RESERVED_NAMES = ("classification_predictions.json", "detection_predictions.json", "regression_predictions.json")

_LEADING_PARENT = re.compile(r"^(?:\.\.[\\/])+")
_SEPARATORS = re.compile(r"[\\/]+")


def strip_leading_parents(mask_path: str) -> str:
    """``../Segmentation/Two/x.png`` -> ``Segmentation/Two/x.png`` (every leading ``../``)."""
    return _LEADING_PARENT.sub("", mask_path.strip())


def relative_output_path(mask_path: str) -> str:
    """The submission-relative path of a mask, or ``ValueError`` saying why it is unsafe."""
    rel = strip_leading_parents(mask_path)
    if not rel:
        raise ValueError("is empty after removing the leading '../'")
    if os.path.isabs(rel) or ntpath.isabs(rel) or ntpath.splitdrive(rel)[0] or rel.startswith(("/", "\\")):
        raise ValueError("is an absolute path")
    parts = [p for p in _SEPARATORS.split(rel) if p not in ("", ".")]
    if ".." in parts:
        raise ValueError("still contains '..' after removing the leading '../' (it would leave the output folder)")
    if not parts:
        raise ValueError("names no file")
    return os.path.join(*parts)


def _inside(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


def output_file(out_dir: str, mask_path: str) -> str:
    """The absolute file a mask is written to, checked to be inside ``out_dir``
    (symlinks already present under ``out_dir`` resolved). Raises ``ValueError``."""
    rel = relative_output_path(mask_path)
    base = os.path.realpath(out_dir)
    target = os.path.join(base, rel)
    # realpath resolves the existing part of the path (and any symlink in it);
    # the final component itself is replaced by os.replace, never followed.
    resolved_dir = os.path.realpath(os.path.dirname(target))
    if not _inside(resolved_dir, base):
        raise ValueError(f"goes through a symlink that leaves the output folder (resolves to {resolved_dir})")
    if os.path.islink(target):
        raise ValueError("is an existing symlink in the output folder; refusing to replace it")
    if os.path.isdir(target):
        raise ValueError("is an existing folder in the output folder")
    if os.path.dirname(rel) == "" and rel in RESERVED_NAMES:
        raise ValueError("collides with a prediction JSON file of the submission")
    return os.path.join(resolved_dir, os.path.basename(target))


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
