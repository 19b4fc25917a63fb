"""Where a segmentation prediction lives in a submission folder, and the guarantee that
writing it stays inside that folder.

The rule (docs/format.md, "Submission files": the CSV ``mask_path`` with every leading ``../`` removed) is defined
here once, for the writer and the scorer alike. CSV files come from many hands, so it
also accepts Windows separators and leading ``./``: backslashes become ``/``, then
every leading ``../`` and ``./`` is removed.
"""
from __future__ import annotations

import ntpath
import os
import posixpath

__all__ = ["relative_output_path", "resolve_output_file", "submission_mask_path"]


def submission_mask_path(mask_path: str) -> str:
    """The submission-relative path of a segmentation row's mask, with ``/`` separators:
    ``../Seg/x.png``, ``../../Seg/x.png``, ``./Seg/x.png`` and ``..\\Seg\\x.png`` all give
    ``Seg/x.png``. Nothing else is changed: whether the result is safe to write to is
    ``relative_output_path``'s question."""
    path = mask_path.strip().replace("\\", "/")
    while path.startswith(("../", "./")):
        path = path[3:] if path.startswith("../") else path[2:]
    return path


def relative_output_path(mask_path: str) -> str:
    """``submission_mask_path`` checked to name a file inside the submission folder, as
    an OS path with ``.`` parts and repeated separators dropped. Raises ``ValueError``
    saying why it is unsafe: empty, absolute (``/x``, ``C:\\x``, ``\\\\host\\x``) or
    still holding ``..`` once the leading ones are gone."""
    rel = submission_mask_path(mask_path)
    if not rel:
        raise ValueError("is empty after removing the leading '../'")
    if posixpath.isabs(rel) or ntpath.isabs(rel) or ntpath.splitdrive(rel)[0]:
        raise ValueError("is an absolute path")
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError("still contains '..' after removing the leading '../' (it would leave the output folder)")
    if not parts:
        raise ValueError("names no file")
    return os.path.join(*parts)


def _inside(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


def resolve_output_file(out_dir: str, rel: str) -> str:
    """The absolute file ``out_dir/rel`` (``rel`` from ``relative_output_path``), with any
    symlink already present under ``out_dir`` resolved, checked to stay inside
    ``out_dir``. Raises ``ValueError`` for a path through a symlink that leaves the
    folder, an existing symlink or folder at the target."""
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
    return os.path.join(resolved_dir, os.path.basename(target))
