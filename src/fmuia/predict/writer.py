"""Writing a submission folder: masks as they are predicted, JSON files at the end.

Every file is written to a temporary name in its own folder and moved into place
with ``os.replace``, so a reader never sees a partial file. Masks are encoded and
written on a small thread pool (``cv2.imencode`` and file writes release the GIL),
so the model never waits on the disk. The three JSON files are written only by
``finish()``; a run that fails leaves no JSON behind (stale ones from an earlier run
are removed when writing starts), so an incomplete folder is never mistaken for a
finished submission. Any OS error (read-only folder, name too long, disk full)
becomes an ``OutputError`` naming the file (``fmuia.io.outputs``).
"""
from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

import cv2
import numpy as np

from fmuia import kinds
from fmuia.io.atomic import write_bytes as atomic_write_bytes
from fmuia.io.atomic import write_json as atomic_write_json
from fmuia.io.outputs import output_error, writing
from fmuia.tasks import Kind

def json_files() -> dict[Kind, str]:
    """The submission's JSON file of each kind that writes one (the scorer reads the
    same names: both ask the kind)."""
    return {k.kind: k.prediction_file for k in kinds.all_kinds() if k.prediction_file}


def file_folders() -> list[str]:
    """The submission folders of the kinds that write one file per sample (masks)."""
    return [k.prediction_dir for k in kinds.all_kinds() if k.prediction_dir]


def encode_png(mask: np.ndarray) -> bytes:
    """A single-channel uint8 PNG of class ids."""
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise ValueError(f"a mask must be 2-D uint8, got {mask.dtype} {mask.shape}")
    ok, buf = cv2.imencode(".png", mask)
    if not ok:  # pragma: no cover - OpenCV fails only on invalid input, checked above
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def write_mask_png(path: str, mask: np.ndarray) -> None:
    atomic_write_bytes(path, encode_png(mask), action="write the mask")


def stale_prediction_files(out_dir: str) -> list[str]:
    """What an earlier run may have left in ``out_dir``: the three JSON files and the
    PNG files under ``Segmentation/`` (symlinks are listed, never followed). Nothing
    else is ever listed."""
    found = []
    for name in json_files().values():
        path = os.path.join(out_dir, name)
        if os.path.isfile(path) or os.path.islink(path):
            found.append(path)
    for top in file_folders():
        seg = os.path.join(out_dir, top)
        if os.path.isdir(seg) and not os.path.islink(seg):
            for folder, _dirs, files in os.walk(seg):  # os.walk does not descend into symlinked folders
                found.extend(os.path.join(folder, f) for f in sorted(files) if f.lower().endswith(".png"))
    return found


def remove_stale_predictions(out_dir: str) -> int:
    """Remove ``stale_prediction_files(out_dir)`` and the folders under
    ``Segmentation/`` that this leaves empty; returns the number of files removed."""
    stale = stale_prediction_files(out_dir)
    for path in stale:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise output_error(path, "remove the stale prediction", exc) from None
    for top in file_folders() if stale else ():
        seg = os.path.join(out_dir, top)
        if not os.path.isdir(seg) or os.path.islink(seg):
            continue
        for folder, _dirs, _files in os.walk(seg, topdown=False):
            try:
                os.rmdir(folder)
            except OSError:
                pass  # not empty: holds something that is not ours
    return len(stale)


class SubmissionWriter:
    """Collects predictions of one run and writes them into ``out_dir``.

    ``max_pending`` bounds the masks queued for writing (memory stays flat on large
    test sets); ``threads`` is the size of the write pool.
    """

    def __init__(self, out_dir: str, threads: int = 2, max_pending: int = 64) -> None:
        self.out_dir = out_dir
        self.records: dict[Kind, list[dict]] = {kind: [] for kind in json_files()}
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="fmuia-write")
        self._pending: deque[Future] = deque()
        self._max_pending = max_pending
        self._closed = False

    def start(self) -> None:
        """Create the folder and remove the prediction files of an earlier run (the
        caller has checked that removing them is wanted)."""
        with writing(self.out_dir, "create the output folder"):
            os.makedirs(self.out_dir, exist_ok=True)
        remove_stale_predictions(self.out_dir)

    def add_mask(self, path: str, mask: np.ndarray) -> None:
        # Written masks are collected as they finish, so a failed write (a full disk)
        # stops the run at the next mask rather than after the last prediction.
        while self._pending and (len(self._pending) >= self._max_pending or self._pending[0].done()):
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(write_mask_png, path, mask))

    def add_record(self, kind: Kind, record: dict) -> None:
        self.records[kind].append(record)

    def _drain(self) -> None:
        while self._pending:
            self._pending.popleft().result()

    def finish(self) -> dict[Kind, str]:
        """Wait for every mask, then write the JSON files (all three, an empty list for a
        kind without rows). Returns the written paths."""
        try:
            self._drain()
        finally:
            self.close()
        written = {}
        for kind, name in json_files().items():
            path = os.path.join(self.out_dir, name)
            atomic_write_json(path, self.records[kind], action="write the predictions")
            written[kind] = path
        return written

    def close(self) -> None:
        """Stop the write pool (after an error: queued masks are cancelled)."""
        if self._closed:
            return
        self._closed = True
        for fut in self._pending:
            fut.cancel()
        self._pool.shutdown(wait=True)
        self._pending.clear()
