"""Writing files so that nobody ever reads half of one.

Every output of fmuia (predictions, scores, reports, configs, checkpoints) goes
through a temporary file in the target's folder and an ``os.replace`` over the
target: a crash leaves the previous file or the complete new one, never a torn one.
"""
from __future__ import annotations

import json
import os
import uuid
from typing import Any, Callable


def write_with(path: str, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` to produce the file, then move it over ``path``.

    The temporary file is created with mode 0o666 so the process umask gives the
    final permissions, as a plain ``open`` would (a scorer running as another user
    can read the outputs), without changing the process-wide umask, which would
    race with writer threads."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_bytes(path: str, data: bytes) -> None:
    def put(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)

    write_with(path, put)


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str, value: Any, indent: int | None = 2) -> None:
    write_text(path, json.dumps(value, indent=indent) + "\n")
