"""Where a submission may be written: never among the inputs, never over an earlier
run by accident, never with a name the file system refuses.

The output folder may not be, contain or lie inside the data root, its CSV folder or
any folder holding the images or masks the run reads. It must be new or empty unless
``overwrite``, with which the writer first removes the prediction files an earlier
run left there (``fmuia.predict.writer.stale_prediction_files``: the three JSON files
and PNGs under ``Segmentation/``, nothing else), so that none of them is mistaken for
part of this run. Every check runs before the first byte is written.
"""
from __future__ import annotations

import os

from fmuia.data.layout import Layout, csv_dir
from fmuia.data.records import Entry
from fmuia.errors import DataError
from fmuia.io.lock import INNER_LOCK_NAME
from fmuia.io.outputs import output_error


def _input_folders(layout: Layout) -> dict[str, str]:
    """Every folder the run reads from (real path -> what it is, for messages)."""
    named = {layout.root: "the data root", csv_dir(layout.root): "the CSV folder"}
    for e in layout.entries:  # thousands of rows share a few folders: resolve each folder once
        named.setdefault(os.path.dirname(e.image_file), f"the image folder of {e.where}")
        if e.mask_file and e.has_mask_label:
            named.setdefault(os.path.dirname(e.mask_file), f"the mask folder of {e.where}")
    folders: dict[str, str] = {}
    for folder, what in named.items():
        folders.setdefault(os.path.realpath(folder), what)
    return folders


def _inside(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


def check_output_folder(layout: Layout, out_dir: str, overwrite: bool = False) -> None:
    """Refuse an output folder that is, contains or lies inside an input folder, that
    is not a folder, or that is not empty (unless ``overwrite``)."""
    out = os.path.realpath(out_dir)
    inputs = _input_folders(layout)
    # The most telling relation first: being a folder, then lying in one, then holding one.
    for relation, applies in (("is", lambda f: out == f), ("is inside", lambda f: _inside(out, f)),
                              ("contains", lambda f: _inside(f, out))):
        for folder, what in inputs.items():
            if applies(folder):
                raise DataError(f"{out_dir}: the output folder {relation} {what} ({folder}); predictions must not "
                                "be written among the input files (choose an output folder outside the data)")
    if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        raise DataError(f"{out_dir}: the output path exists and is not a folder")
    if not os.path.isdir(out_dir) or overwrite:
        return
    try:
        present = sorted(name for name in os.listdir(out_dir) if name != INNER_LOCK_NAME)
    except OSError as exc:
        raise output_error(out_dir, "list the output folder", exc) from None
    if present:
        shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
        raise DataError(f"{out_dir}: the output folder is not empty ({shown}); choose a new or empty folder, or pass "
                        "--overwrite (overwrite=True) to replace the prediction files in it (other files are kept)")


# The atomic writer writes "<name>" through ".<name>.<32 hex digits>.tmp".
_TEMPORARY_NAME_EXTRA = len("." + "." + "0" * 32 + ".tmp")


def _name_max(out_dir: str) -> int:
    """The longest file name the output folder's file system takes (255 where unknown)."""
    probe = os.path.abspath(out_dir)
    while not os.path.isdir(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    try:
        return int(os.pathconf(probe, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return 255


def refuse_unwritable_names(entries: list[Entry], planned: dict[int, str], out_dir: str) -> None:
    """A mask path with a file or folder name longer than the file system takes would
    fail halfway through the run: refuse it first, naming the row."""
    limit = _name_max(out_dir)
    base = os.path.realpath(out_dir)
    problems = []
    for i, target in planned.items():
        parts = os.path.relpath(target, base).split(os.sep)
        names = [(p, limit) for p in parts[:-1]] + [(parts[-1], limit - _TEMPORARY_NAME_EXTRA)]
        too_long = [(p, most) for p, most in names if len(os.fsencode(p)) > most]
        if too_long:
            name, most = too_long[0]
            e = entries[i]
            problems.append(f"{e.where}: mask_path {e.mask_path!r} has a name of {len(os.fsencode(name))} bytes "
                            f"(at most {most} can be written here)")
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise DataError(f"refusing to write predictions into {out_dir}: {len(problems)} mask path(s) with names "
                        f"too long (nothing was written):\n  {shown}{more}")


def refuse_overwriting_inputs(entries: list[Entry], planned: dict[int, str]) -> None:
    """A mask target that is one of the data root's own files would destroy input
    data (a backstop behind ``check_output_folder``, for symlinked inputs)."""
    inputs = {os.path.realpath(p) for e in entries for p in (e.image_file, e.mask_file) if p}
    for i, target in planned.items():
        if os.path.realpath(target) in inputs:
            e = entries[i]
            raise DataError(f"{e.where}: mask_path {e.mask_path!r} would overwrite the input file {target} "
                            "(choose an output folder outside the data root)")
