"""Writing files and folders so that nobody ever reads half of one.

Every output of fmuia (predictions, scores, reports, configs, checkpoints, caches)
goes through this module.

Files: written under a temporary name in the target's folder, then moved over the
target with ``os.replace``; a crash leaves the previous file or the complete new one,
never a torn one. The temporary file is created with mode 0o666, so the process
umask gives the final permissions exactly as a plain ``open`` would (a scorer or a
container running as another user can read the outputs), without changing the
process-wide umask, which would race with writer threads.

Folders (``publish_folder``): built under a temporary sibling name
``.<name>.<id>.new``, every file and folder in it fsynced, then renamed into place.
An existing folder is first renamed aside to ``.<name>.<id>.old``, the new one
renamed in, and only then the old one deleted. Whatever instant a crash hits, the
target or its aside copy is a complete folder:

- before the first rename: the target is the old folder; ``.new`` is debris;
- between the two renames: the target is missing and ``.old`` is the complete old
  folder (``.new`` is complete as well, but nothing proves it, so it is dropped);
- after the second rename: the target is the new folder; ``.old`` is debris.

``find_folder`` (used by readers) returns the target, or the aside copy while the
target is missing, without changing anything on disk; ``recover_folder`` (run by
every publish before it starts) renames the aside copy back when the target is
missing and deletes the debris.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from fmuia.errors import OutputError
from fmuia.io.outputs import output_error, writing

__all__ = [
    "find_folder",
    "publish_folder",
    "recover_folder",
    "write_bytes",
    "write_file",
    "write_json",
    "write_text",
    "write_with",
]

_NEW, _OLD = ".new", ".old"


def _temporary_file(path: str) -> str:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    return tmp


def write_with(path: "str | os.PathLike[str]", write: Callable[[str], None], action: str = "write") -> None:
    """Call ``write(tmp_path)`` to produce the file (for writers that want a path:
    ``torch.save``, ``savefig``, PIL, safetensors), then move it over ``path``.

    The temporary file already exists (empty, with the umask's mode) when ``write``
    runs; writers that open it for writing keep that mode. An ``OSError`` becomes
    ``OutputError("PATH: cannot ACTION (why)")``; every writer below takes ``action``."""
    path = os.fspath(path)
    with writing(path, action):
        tmp = _temporary_file(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise output_error(path, action, exc) from None
        raise


def write_file(path: "str | os.PathLike[str]", write: Callable[[IO[bytes]], None], action: str = "write") -> None:
    """Call ``write(fh)`` with a binary file object open for writing (for writers that
    want a file object: ``np.savez``, ``csv`` via a wrapper), then move it over ``path``."""

    def put(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            write(fh)

    write_with(path, put, action)


def write_bytes(path: "str | os.PathLike[str]", data: bytes, action: str = "write") -> None:
    write_file(path, lambda fh: fh.write(data), action)


def write_text(path: "str | os.PathLike[str]", text: str, action: str = "write") -> None:
    write_bytes(path, text.encode("utf-8"), action)


def write_json(path: "str | os.PathLike[str]", value: Any, indent: int | None = 2, action: str = "write",
               **dumps: Any) -> None:
    """``value`` as JSON plus a final newline; ``dumps`` go to ``json.dumps`` (e.g. ``default=str``)."""
    write_text(path, json.dumps(value, indent=indent, **dumps) + "\n", action)


# -- folders -------------------------------------------------------------------------

def _siblings(target: Path, suffix: str) -> list[Path]:
    """Leftover staging (``.new``) or aside (``.old``) folders of ``target``, newest first."""
    parent = target.parent
    if not parent.is_dir():
        return []
    prefix = f".{target.name}."
    found = [p for p in parent.iterdir()
             if p.name.startswith(prefix) and p.name.endswith(suffix) and len(p.name) == len(prefix) + 32 + len(suffix)
             and p.is_dir() and not p.is_symlink()]
    return sorted(found, key=lambda p: p.stat().st_mtime_ns, reverse=True)


def find_folder(target: "str | os.PathLike[str]") -> Path:
    """``target`` if it exists; else the complete old folder a publish interrupted
    between its two renames left aside; else ``target`` (missing). Changes nothing."""
    target = Path(target)
    if target.exists() or target.is_symlink():
        return target
    aside = _siblings(target, _OLD)
    return aside[0] if aside else target


def recover_folder(target: "str | os.PathLike[str]") -> None:
    """Undo what an interrupted ``publish_folder`` left behind: put the aside copy back
    when ``target`` is missing, then delete staging folders and stale aside copies."""
    target = Path(target)
    if not (target.exists() or target.is_symlink()):
        aside = _siblings(target, _OLD)
        if aside:
            os.rename(aside[0], target)
            _fsync_dir(target.parent)
    for debris in _siblings(target, _OLD) + _siblings(target, _NEW):
        shutil.rmtree(debris, ignore_errors=True)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    """Flush every file and folder under ``folder`` (itself included) to the disk, so a
    rename that makes it visible never exposes data still in the page cache."""
    for here, dirs, files in os.walk(folder):
        for name in files:
            fd = os.open(os.path.join(here, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(here))


@contextlib.contextmanager
def publish_folder(target: "str | os.PathLike[str]") -> Iterator[Path]:
    """``with publish_folder(target) as staging:`` fill ``staging``; on a normal exit it
    replaces ``target`` as one unit (see the module notes); on an exception it is
    deleted and ``target`` is left as it was.

    ``staging`` is created with mode 0o777 less the umask, like ``os.mkdir``."""
    target = Path(target)
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise OutputError(f"{target}: exists and is not a folder; refusing to replace it")
    token = uuid.uuid4().hex
    staging = target.parent / f".{target.name}.{token}{_NEW}"
    with writing(target, "write the folder"):
        target.parent.mkdir(parents=True, exist_ok=True)
        recover_folder(target)
        os.mkdir(staging, 0o777)
    try:
        yield staging
        with writing(target, "write the folder"):
            _fsync_tree(staging)
    except OutputError as exc:  # a file of the staging folder: named as it would be in the target
        shutil.rmtree(staging, ignore_errors=True)
        raise OutputError(str(exc).replace(str(staging), str(target)), exc.errno) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    aside = target.parent / f".{target.name}.{token}{_OLD}"
    try:
        if target.exists():
            os.rename(target, aside)
        os.rename(staging, target)
    except BaseException as exc:
        if aside.exists() and not target.exists():
            os.rename(aside, target)  # put the old folder back
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError):
            raise output_error(target, "write the folder", exc) from None
        raise
    _fsync_dir(target.parent)
    shutil.rmtree(aside, ignore_errors=True)
