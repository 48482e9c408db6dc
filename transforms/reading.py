"""Reading image bytes through Beam's FileSystems, a few files ahead of the decoder.

Only what the list may name is read: paths inside --image-root (unless the user opts out),
regular files (no FIFO, device or folder), at most MAX_FILE_BYTES.

A failed read is judged by what it says about the input (transforms/read_faults.py): a
missing file is rejected; a denied or misconfigured read stops the job (ReadFatal); anything
else may pass (throttling, 5xx, timeouts, resets) and is retried here with backoff, then
raised (ReadUnavailable) so the runner retries the bundle. Only the input itself can become
a rejection, never the state of the store at the moment it was read.
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import os
import random
import stat
import time
from collections.abc import Iterable, Iterator

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from imgshard.transforms import read_faults, records
from imgshard.transforms.index import canonical_path, resolve_image_path
from imgshard.transforms.read_faults import ReadFatal, ReadUnavailable

__all__ = [
    "MAX_FILE_BYTES",
    "ReadFailed",
    "ReadFatal",
    "ReadUnavailable",
    "is_inside_root",
    "is_network_mount",
    "prefetch_local",
    "read_ahead",
    "read_bytes",
    "read_image",
    "read_local_ahead",
]

# Enough requests in flight to hide GCS per-object latency (~20-50 ms) behind decoding.
READ_THREADS = 8
# Files on a local disk are read in the writer's own thread, with the kernel asked to fetch
# the next LOCAL_PREFETCH files meanwhile (posix_fadvise WILLNEED, read_local_ahead): a
# disk's seeks still overlap the decoding, without the thread hand-offs. Two read threads
# took 125-170 us of CPU per image here against ~20 us for a plain read, and write_shard over
# 4,000 photos 18.64 vs 18.23 CPU s (~2%; benchmarks/README.md, "Below Beam's floor").
LOCAL_PREFETCH = 4
# File systems behind a network round trip per open and read (NFS, SMB, gcsfuse and other FUSE
# mounts of object stores): a kernel hint does not hide that latency, read threads do.
_NETWORK_FILE_SYSTEMS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "lustre")
# No image of any real dataset comes near this; a bigger "image" (a disk image, a video, a
# device listed by mistake) is refused before it fills the worker's memory.
MAX_FILE_BYTES = 256 << 20
_READ_CHUNK = 4 << 20
# Waits before the 2nd, 3rd ... attempt of a read that may pass (each with up to 50% jitter,
# so throttled workers do not retry in step); GCS's client retries inside each attempt too.
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)


class ReadFailed(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def is_inside_root(image_root: str, path: str) -> bool:
    """Whether `path` stays inside `image_root`, after `..` and, on local disk, symlinks."""
    root = canonical_path(image_root)
    inside = root.rstrip("/") + "/"
    if not canonical_path(path).startswith(inside):
        return False
    if "://" in path:
        return True  # object stores have no symlinks
    return os.path.realpath(path).startswith(_real_folder(root))


@functools.lru_cache(maxsize=16)
def _real_folder(folder: str) -> str:
    return os.path.realpath(folder).rstrip("/") + "/"


def _check_regular_file(path: str, limit: int) -> None:
    """A local FIFO would block the reader forever and /dev/zero never ends: files only."""
    found = os.stat(path)  # its errors are judged like those of the read
    if stat.S_ISDIR(found.st_mode):
        raise ReadFailed(records.READ_ERROR, "is a directory, not a file")
    if not stat.S_ISREG(found.st_mode):
        raise ReadFailed(records.READ_ERROR, "not a regular file (a device, FIFO or socket)")
    if found.st_size > limit:
        raise _too_large(limit)


def _too_large(limit: int) -> ReadFailed:
    return ReadFailed(records.READ_ERROR, f"file is over the {limit >> 20} MiB limit")


def _read_at_most(f, limit: int) -> bytes:
    """Up to `limit` bytes, in chunks: read(limit) would allocate all of `limit` up front
    (+47 us per image at 256 MiB, measured), and most images fit one chunk."""
    chunks, total = [], 0
    while total < limit:
        chunk = f.read(min(_READ_CHUNK, limit - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def read_image(image_root: str, path: str, allow_outside_root: bool = False) -> bytes:
    """The bytes of a listed image; raises ReadFailed with a rejection reason."""
    resolved = resolve_image_path(image_root, path)
    if not allow_outside_root and not is_inside_root(image_root, resolved):
        raise ReadFailed(
            records.OUTSIDE_ROOT,
            f"resolves outside --image-root {image_root} (--allow-outside-root accepts it)",
        )
    return read_bytes(resolved)


def read_bytes(path: str, limit: int = MAX_FILE_BYTES) -> bytes:
    """The whole file, up to `limit` bytes.

    Raises:
      ReadFailed: the input cannot become a record (missing, not a file, too large).
      ReadFatal: no read can succeed as configured (permission, credentials).
      ReadUnavailable: the store kept failing after RETRY_DELAYS.
    """
    for attempt, delay in enumerate((*RETRY_DELAYS, None), start=1):
        try:
            data = _read_once(path, limit)
            break
        except ReadFailed:
            raise
        except Exception as e:
            kind = read_faults.failure_kind(e)
            if kind == read_faults.MISSING:
                raise ReadFailed(records.MISSING_FILE, "no such file or object") from None
            if kind == read_faults.NOT_A_FILE:
                raise ReadFailed(records.READ_ERROR, read_faults.describe(e)) from None
            if kind == read_faults.FATAL:
                raise ReadFatal(read_faults.fatal_message(path, e)) from e
            if delay is None:
                raise ReadUnavailable(read_faults.unavailable_message(path, attempt, e)) from e
            time.sleep(delay * (1 + random.random() / 2))  # not seeded: never reaches output
    if len(data) > limit:  # grew since the check, or an object store: no stat() there
        raise _too_large(limit)
    return data


def _read_once(path: str, limit: int) -> bytes:
    if "://" not in path:
        _check_regular_file(path, limit)
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return _read_at_most(f, limit + 1)


def read_ahead(
    items: Iterable, read_item, threads: int = READ_THREADS, window: int | None = None
) -> Iterator[tuple[object, bytes | ReadFailed]]:
    """Yields (item, bytes or ReadFailed) in the order of `items`, reading up to `window`
    items ahead (by default twice the threads).

    `read_item(item)` returns the bytes or raises ReadFailed; any other exception stops the
    iteration there, and the reads not yet started are dropped rather than waited for.
    """
    window = window or 2 * threads
    pool = concurrent.futures.ThreadPoolExecutor(threads)
    try:
        pending: collections.deque = collections.deque()

        def read(item):
            try:
                return read_item(item)
            except ReadFailed as failure:
                return failure

        for item in items:
            pending.append((item, pool.submit(read, item)))
            if len(pending) >= window:
                head, future = pending.popleft()
                yield head, future.result()
        while pending:
            head, future = pending.popleft()
            yield head, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def prefetch_local(path: str) -> None:
    """Asks the kernel to start reading a local regular file into the page cache, and
    returns at once (no thread waits on the disk). Anything amiss is left to the read."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return  # a FIFO or a device is never opened here: the read rejects it
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except (OSError, ValueError):
        return
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
    except (OSError, AttributeError):  # no fadvise on this system: only the hint is lost
        pass
    finally:
        os.close(fd)


def read_local_ahead(
    items: Iterable, read_item, local_path, ahead: int = LOCAL_PREFETCH
) -> Iterator[tuple[object, bytes | ReadFailed]]:
    """read_ahead for local files: yields (item, bytes or ReadFailed) in order, reading in this
    thread while the kernel fetches the next `ahead` items' files (`local_path(item)`)."""
    items = list(items)
    for i in range(min(ahead, len(items))):
        prefetch_local(local_path(items[i]))
    for i, item in enumerate(items):
        if i + ahead < len(items):
            prefetch_local(local_path(items[i + ahead]))
        try:
            yield item, read_item(item)
        except ReadFailed as failure:
            yield item, failure


@functools.lru_cache(maxsize=64)
def is_network_mount(folder: str, mounts: str = "/proc/self/mounts") -> bool:
    """Whether `folder` is on a network or FUSE file system (its longest mount point's type in
    `mounts`); False where that cannot be told."""
    try:
        with open(mounts) as f:
            table = [line.split() for line in f]
    except OSError:
        return False
    real = os.path.realpath(folder).rstrip("/") + "/"
    best, kind = "", ""
    for fields in table:
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ").rstrip("/") + "/"
        if real.startswith(point) and len(point) > len(best):
            best, kind = point, fields[2]
    return kind in _NETWORK_FILE_SYSTEMS or (kind.startswith("fuse") and kind != "fuseblk")
