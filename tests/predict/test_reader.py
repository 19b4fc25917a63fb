"""``fmuia.predict.reader``: batches in order, bounded reading ahead, errors raised, workers stopped."""
import os
import time

import pytest

from fmuia.predict.reader import prediction_workers, read_batches


def test_prediction_workers():
    assert prediction_workers() == min(2, os.cpu_count() or 1)


def _slow_square(i: int) -> int:
    time.sleep(0.002 * (i % 3))  # finish out of order
    return i * i


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_batches_come_back_in_order(workers):
    batches = [[0, 1, 2], [3], [4, 5, 6, 7], [8, 9]]
    got = list(read_batches(_slow_square, batches, workers, ahead=1))
    assert got == [[i * i for i in rows] for rows in batches]


def test_no_batches():
    assert list(read_batches(_slow_square, [], 2)) == []


def _fails_on_five(i: int) -> int:
    if i == 5:
        raise ValueError("row 5 is broken")
    return i


@pytest.mark.parametrize("workers", [0, 2])
def test_an_error_in_a_worker_is_raised_to_the_reader(workers):
    with pytest.raises(ValueError, match="row 5 is broken"):
        list(read_batches(_fails_on_five, [[i] for i in range(10)], workers))


def _record_pid(i: int) -> tuple[int, int]:
    return i, os.getpid()


def test_reads_ahead_at_most_ahead_batches_per_worker_and_stops_its_workers(tmp_path):
    batches = [[i] for i in range(200)]
    reader = read_batches(_record_pid, batches, workers=2, ahead=2)
    first = next(reader)
    assert first[0][0] == 0
    pids = {first[0][1]}
    pending = reader.gi_frame.f_locals["pending"]
    assert len(pending) <= 2 * 2  # a bounded window, not the whole list
    reader.close()  # the consumer stops: the workers are terminated
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.02)


def _dies_on_three(i: int) -> int:
    if i == 3:
        os._exit(9)  # as if killed (out of memory)
    return i


def test_a_reader_that_dies_is_an_error_not_a_wait_without_end():
    from fmuia.errors import DataError

    with pytest.raises(DataError, match="image-reading process stopped unexpectedly"):
        list(read_batches(_dies_on_three, [[i] for i in range(8)], workers=2, ahead=1))
