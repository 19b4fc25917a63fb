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

import multiprocessing
import os
from collections import deque
from typing import Callable, Iterator, Sequence, TypeVar

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
    pickled where they spawn). An exception raised by ``read`` is raised here; leaving
    the loop early (an exception, ``break``) stops the workers."""
    if workers <= 0:
        for rows in batches:
            yield [read(i) for i in rows]
        return
    pool = multiprocessing.get_context().Pool(workers, initializer=_start_worker, initargs=(read,))
    try:
        pending: deque = deque()
        queue = iter(batches)
        for rows in queue:
            pending.append(pool.apply_async(_read_batch, (list(rows),)))
            if len(pending) >= workers * ahead:
                break
        while pending:
            done = pending.popleft().get()
            for rows in queue:
                pending.append(pool.apply_async(_read_batch, (list(rows),)))
                break
            yield done
        pool.close()
    finally:
        pool.terminate()
        pool.join()
