"""Writing a submission folder: masks as they are predicted, JSON files at the end.

Every file is written to a temporary name in its own folder and moved into place
with ``os.replace``, so a reader never sees a partial file. Masks are encoded and
written on a small thread pool (``cv2.imencode`` and file writes release the GIL),
so the model never waits on the disk. The three JSON files are written only by
``finish()``; a run that fails leaves no JSON behind (stale ones from an earlier run
are removed when writing starts), so an incomplete folder is never mistaken for a
finished submission.
"""
from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

import cv2
import numpy as np

from fmuia.io.atomic import write_bytes as atomic_write_bytes
from fmuia.io.atomic import write_json as atomic_write_json
from fmuia.errors import DataError
from fmuia.evaluate.predictions import json_kinds
from fmuia.tasks import Kind


def json_files() -> dict[Kind, str]:
    """The submission's JSON file of each kind (the scorer reads the same names)."""
    return {k.kind: k.prediction_file for k in json_kinds()}


def encode_png(mask: np.ndarray) -> bytes:
    """A single-channel uint8 PNG of class ids."""
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise ValueError(f"a mask must be 2-D uint8, got {mask.dtype} {mask.shape}")
    ok, buf = cv2.imencode(".png", mask)
    if not ok:  # pragma: no cover - OpenCV fails only on invalid input, checked above
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def write_mask_png(path: str, mask: np.ndarray) -> None:
    atomic_write_bytes(path, encode_png(mask))


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
        """Create the folder and remove prediction JSONs of an earlier run."""
        try:
            os.makedirs(self.out_dir, exist_ok=True)
        except OSError as exc:
            raise DataError(f"{self.out_dir}: cannot create the output folder ({exc.strerror})") from None
        for name in json_files().values():
            path = os.path.join(self.out_dir, name)
            if os.path.isfile(path) and not os.path.islink(path):
                os.unlink(path)

    def add_mask(self, path: str, mask: np.ndarray) -> None:
        while len(self._pending) >= self._max_pending:
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
            atomic_write_json(path, self.records[kind])
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
