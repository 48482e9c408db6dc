"""The shard writer's read-ahead: in order, bounded, and sized by where the images are."""

import threading
import time

import pytest

from imgshard.transforms.reading import (
    LOCAL_READ_THREADS,
    READ_THREADS,
    ReadFailed,
    read_ahead,
    read_threads,
)


def test_remote_stores_get_more_reads_in_flight_than_local_files():
    assert read_threads("gs://bucket/train/n01440764/a.JPEG") == READ_THREADS
    assert read_threads("/data/ilsvrc/train/n01440764/a.JPEG") == LOCAL_READ_THREADS
    assert LOCAL_READ_THREADS < READ_THREADS


@pytest.mark.parametrize("threads", [1, 2, 8])
def test_reads_come_back_in_order_failures_in_place_and_never_too_far_ahead(threads):
    window = 2 * threads
    lock = threading.Lock()
    running = started = 0
    most_running = most_ahead = 0
    consumed = 0

    def read(item: int) -> bytes:
        nonlocal running, started, most_running, most_ahead
        with lock:
            running += 1
            started += 1
            most_running = max(most_running, running)
            most_ahead = max(most_ahead, started - consumed)
        time.sleep(0.002)
        with lock:
            running -= 1
        if item % 7 == 3:
            raise ReadFailed("missing_file", f"{item} is gone")
        return str(item).encode()

    results = []
    for item, data in read_ahead(range(60), read, threads=threads, window=window):
        results.append((item, data))
        with lock:
            consumed += 1
    assert [item for item, _ in results] == list(range(60))
    for item, data in results:
        if item % 7 == 3:
            assert isinstance(data, ReadFailed) and data.reason == "missing_file"
        else:
            assert data == str(item).encode()
    assert most_running <= threads
    assert most_ahead <= window + 1  # the window, plus the one being handed over
    if threads > 1:
        assert most_running > 1  # reads did overlap
