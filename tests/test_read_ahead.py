"""The shard writer's read-ahead: in order, bounded; threads for object stores, kernel hints
for local files."""

import os
import threading
import time

import pytest

from imgshard.transforms.reading import (
    LOCAL_PREFETCH,
    ReadFailed,
    is_network_mount,
    prefetch_local,
    read_ahead,
    read_local_ahead,
)


def test_local_reads_come_in_order_each_file_hinted_a_few_reads_before_it_is_read():
    events = []

    def read(item: int) -> bytes:
        events.append(("read", item))
        if item == 5:
            raise ReadFailed("missing_file", "5 is gone")
        return str(item).encode()

    def path(item: int) -> str:
        events.append(("hint", item))
        return f"/nonexistent/{item}"  # the hint of a missing file is dropped quietly

    results = list(read_local_ahead(range(12), read, path, ahead=3))
    assert [item for item, _ in results] == list(range(12))
    assert isinstance(results[5][1], ReadFailed) and results[5][1].reason == "missing_file"
    assert results[4][1] == b"4"
    hinted, read_at = {}, {}
    for position, (kind, item) in enumerate(events):
        (hinted if kind == "hint" else read_at).setdefault(item, position)
    assert all(hinted[i] < read_at[i] for i in range(12))  # every file hinted before its read
    # ... and never more than `ahead` reads before it: the window stays bounded
    reads_before = [sum(1 for k, _ in events[: hinted[i]] if k == "read") for i in range(12)]
    assert all(i - before <= 3 for i, before in enumerate(reads_before))
    assert LOCAL_PREFETCH >= 1


def test_a_hint_never_opens_or_blocks_on_a_fifo(tmp_path):
    fifo = tmp_path / "image.jpg"
    os.mkfifo(fifo)
    done = threading.Event()
    threading.Thread(target=lambda: (prefetch_local(str(fifo)), done.set()), daemon=True).start()
    assert done.wait(5), "prefetch_local blocked on a FIFO"


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


def test_network_and_fuse_mounts_are_told_from_local_disks(tmp_path):
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "/dev/sda1 / ext4 rw 0 0\n"
        "server:/export /mnt/nfs nfs4 rw 0 0\n"
        "bucket /mnt/gcs fuse.gcsfuse rw 0 0\n"
        "/dev/sdb1 /mnt/ntfs fuseblk rw 0 0\n"
        "/dev/sdc1 /mnt/nfs/local ext4 rw 0 0\n"
        "//host/share /mnt/my\\040share cifs rw 0 0\n"
    )
    table = str(mounts)
    assert is_network_mount("/mnt/nfs/train", table)
    assert is_network_mount("/mnt/gcs/ilsvrc/n01440764", table)
    assert is_network_mount("/mnt/my share/x", table)
    assert not is_network_mount("/mnt/nfs/local/train", table)  # the longest mount point wins
    assert not is_network_mount("/mnt/ntfs/train", table)  # FUSE over a local disk
    assert not is_network_mount("/data/train", table)
    assert not is_network_mount("/data", str(tmp_path / "no-such-table"))
