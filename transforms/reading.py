"""Reading image bytes through Beam's FileSystems, a few files ahead of the decoder.

Only what the list may name is read: paths inside --image-root (unless the user opts out),
regular files (no FIFO, device or folder), at most MAX_FILE_BYTES.
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import os
import stat
from collections.abc import Iterable, Iterator

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from imgshard.transforms import records
from imgshard.transforms.index import canonical_path, resolve_image_path

__all__ = [
    "MAX_FILE_BYTES",
    "ReadFailed",
    "is_inside_root",
    "read_ahead",
    "read_bytes",
    "read_image",
]

# Enough requests in flight to hide GCS per-object latency (~20-50 ms) behind decoding;
# on local disk the threads only overlap page-cache copies.
READ_THREADS = 8
READ_WINDOW = 16
# No image of any real dataset comes near this; a bigger "image" (a disk image, a video, a
# device listed by mistake) is refused before it fills the worker's memory.
MAX_FILE_BYTES = 256 << 20
_READ_CHUNK = 4 << 20


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
    try:
        found = os.stat(path)
    except FileNotFoundError:
        raise ReadFailed(records.MISSING_FILE, "no such file") from None
    except OSError as e:
        raise ReadFailed(records.READ_ERROR, f"{type(e).__name__}: {e}") from None
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
    """The whole file, up to `limit` bytes; raises ReadFailed with a rejection reason."""
    if "://" not in path:
        _check_regular_file(path, limit)
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            data = _read_at_most(f, limit + 1)
    except FileNotFoundError:
        raise ReadFailed(records.MISSING_FILE, "no such file") from None
    except IsADirectoryError:
        raise ReadFailed(records.READ_ERROR, "is a directory, not a file") from None
    except Exception as e:  # GCS raises google.api_core's NotFound (HTTP 404)
        if type(e).__name__ == "NotFound" or getattr(e, "code", None) == 404:
            raise ReadFailed(records.MISSING_FILE, "no such object") from None
        raise ReadFailed(records.READ_ERROR, f"{type(e).__name__}: {str(e)[:300]}") from None
    if len(data) > limit:  # grew since the check, or an object store: no stat() there
        raise _too_large(limit)
    return data


def read_ahead(
    items: Iterable, read_item, threads: int = READ_THREADS, window: int = READ_WINDOW
) -> Iterator[tuple[object, bytes | ReadFailed]]:
    """Yields (item, bytes or ReadFailed) in the order of `items`, reading ahead.

    `read_item(item)` returns the bytes or raises ReadFailed.
    """
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
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
