"""File-system failures of outputs, as one error naming the path the user gave.

Every file fmuia writes goes through ``fmuia.io.atomic``, which turns an ``OSError``
(permission denied, read-only file system, name too long, disk full, a parent that is
a file or cannot be created) into ``fmuia.errors.OutputError`` with ``output_error``;
the CLI prints it as one ``error:`` line and exits 2. The few writes outside it
(creating a run folder) use ``writing``. ``check_writable`` runs the same checks
before a command starts its long work, so a training run or a scoring pass does not
end in a failed write; its probe file is removed at once and nothing else is created.
"""
from __future__ import annotations

import contextlib
import errno
import os
import uuid
from typing import Iterator

from fmuia.errors import OutputError

__all__ = ["check_writable", "output_error", "writing"]


def _name_max(folder: str) -> int:
    """The longest file name ``folder``'s file system takes (255 where unknown)."""
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return 255


def _nearest_existing(path: str) -> str:
    """``path`` or its closest ancestor that exists (``path`` absolute)."""
    here = path
    while not os.path.lexists(here) and os.path.dirname(here) != here:
        here = os.path.dirname(here)
    return here


def _blocking_file(path: str) -> str | None:
    """The first existing ancestor of ``path`` that is not a folder, if any."""
    here = _nearest_existing(os.path.dirname(os.path.abspath(path)))
    return here if not os.path.isdir(here) else None


def _longest_name(path: str) -> tuple[str, int]:
    name = max(os.path.abspath(path).split(os.sep), key=lambda p: len(os.fsencode(p)))
    return name, len(os.fsencode(name))


def _reason(path: str, exc: OSError) -> str:
    """Why ``exc`` happened, in words that point at the fix."""
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        blocker = _blocking_file(path)
        if blocker:
            return f"{blocker} is a file, not a folder"
    if exc.errno == errno.ENAMETOOLONG:
        name, size = _longest_name(path)
        limit = _name_max(_nearest_existing(os.path.abspath(path)))
        if size > limit:
            return f"File name too long: a name of {size} bytes, at most {limit} here"
    return exc.strerror or str(exc)


def output_error(path: "str | os.PathLike[str]", action: str, exc: OSError) -> OutputError:
    """``exc`` as the error the CLI prints: ``PATH: cannot ACTION (why)``."""
    path = os.fspath(path)
    return OutputError(f"{path}: cannot {action} ({_reason(path, exc)})", exc.errno)


@contextlib.contextmanager
def writing(path: "str | os.PathLike[str]", action: str = "write") -> Iterator[None]:
    """``with writing(path, "create the run folder"): ...`` raises ``output_error`` for
    any ``OSError`` inside."""
    try:
        yield
    except OSError as exc:
        raise output_error(path, action, exc) from None


def check_writable(path: "str | os.PathLike[str]", what: str = "the output folder", folder: bool = True) -> None:
    """Raise ``OutputError`` (naming ``path``) unless ``path`` can be written: every
    name to be created fits the file system, the nearest existing ancestor is a folder,
    ``path`` itself is a folder (``folder``) or a file when it exists, and a probe file
    can be created where the output's first file or folder will go. Missing folders are
    not created and the probe is removed: nothing is left behind."""
    path = os.fspath(path)
    absolute = os.path.abspath(path)
    existing = _nearest_existing(absolute)
    missing = os.path.relpath(absolute, existing).split(os.sep) if existing != absolute else []
    limit = _name_max(existing if os.path.isdir(existing) else os.path.dirname(existing))
    for name in missing:
        if len(os.fsencode(name)) > limit:
            raise OutputError(f"{path}: cannot write {what} (File name too long: a name of "
                              f"{len(os.fsencode(name))} bytes, at most {limit} here)", errno.ENAMETOOLONG)
    if existing == absolute and os.path.isdir(absolute) != folder:
        kind = "is a folder" if os.path.isdir(absolute) else "is not a folder"
        raise OutputError(f"{path}: cannot write {what} (it exists and {kind})",
                          errno.EISDIR if not folder else errno.ENOTDIR)
    if existing != absolute and not os.path.isdir(existing):
        raise OutputError(f"{path}: cannot write {what} ({existing} is a file, not a folder)", errno.ENOTDIR)
    into = existing if os.path.isdir(existing) else os.path.dirname(existing)
    probe = os.path.join(into, f".fmuia-probe-{uuid.uuid4().hex}")
    action = f"write {what}" if existing == absolute else f"create {what}" + (
        "" if into == os.path.dirname(absolute) else f" in {into}")
    with writing(path, action):
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.unlink(probe)
