"""Reading prediction's images in worker processes: batches in order, a bounded number
ahead, without torch.

``torch.utils.data.DataLoader`` did this before; prediction from a graph backend
(OpenVINO) would import torch for it alone (1.5 s of start-up, more than the rest of
the imports together). What prediction needs of it is small: ``read(i)`` for each row
of each batch in worker processes, the batches back in order, at most ``ahead``
batches in flight (a test set never sits in memory whole), and the workers stopped
when the consumer stops.
"""
from __future__ import annotations

import itertools
import os
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Iterator, Sequence, TypeVar

from fmuia.errors import DataError

T = TypeVar("T")


def prediction_workers() -> int:
    """Image-reading processes of prediction: decoding overlaps the forward pass, and two
    are enough to keep it fed at the batch sizes prediction uses."""
    return min(2, os.cpu_count() or 1)


_read: Callable | None = None  # in a worker process: the reading function it was started with


def _start_worker(read: Callable) -> None:
    global _read
    _read = read


def _read_batch(rows: Sequence[int]) -> list:
    assert _read is not None
    return [_read(i) for i in rows]


def read_batches(read: Callable[[int], T], batches: Sequence[Sequence[int]], workers: int,
                 ahead: int = 4) -> Iterator[list[T]]:
    """``[read(i) for i in batch]`` for each of ``batches``, in order.

    ``workers`` processes read (0: the calling process does, one batch at a time);
    at most ``ahead`` batches per worker are read before the consumer takes them.
    ``read`` goes to each worker once, when it starts (inherited where processes fork,
    pickled where they spawn). An exception raised by ``read`` is raised here, and a
    worker that dies (killed, out of memory) is a ``DataError``, never a wait without
    end; leaving the loop early (an exception, ``break``) stops the workers."""
    if workers <= 0:
        for rows in batches:
            yield [read(i) for i in rows]
        return
    pool = ProcessPoolExecutor(workers, initializer=_start_worker, initargs=(read,))
    try:
        queue = iter(batches)
        pending = deque(pool.submit(_read_batch, list(rows)) for rows in itertools.islice(queue, workers * ahead))
        while pending:
            try:
                done = pending.popleft().result()
            except BrokenProcessPool:
                raise DataError("an image-reading process stopped unexpectedly (killed, or out of memory?); "
                                "--workers 0 reads in the main process") from None
            rows = next(queue, None)
            if rows is not None:
                pending.append(pool.submit(_read_batch, list(rows)))
            yield done
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
