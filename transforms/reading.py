"""Reading image bytes through Beam's FileSystems, a few files ahead of the decoder."""

from __future__ import annotations

import collections
import concurrent.futures
from collections.abc import Iterable, Iterator

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from imgshard.transforms import records

__all__ = ["ReadFailed", "read_ahead", "read_bytes"]

# Enough requests in flight to hide GCS per-object latency (~20-50 ms) behind decoding;
# on local disk the threads only overlap page-cache copies.
READ_THREADS = 8
READ_WINDOW = 16


class ReadFailed(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def read_bytes(path: str) -> bytes:
    """The whole file; raises ReadFailed with a rejection reason."""
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            return f.read()
    except FileNotFoundError:
        raise ReadFailed(records.MISSING_FILE, "no such file") from None
    except IsADirectoryError:
        raise ReadFailed(records.READ_ERROR, "is a directory, not a file") from None
    except Exception as e:  # GCS raises google.api_core's NotFound (HTTP 404)
        if type(e).__name__ == "NotFound" or getattr(e, "code", None) == 404:
            raise ReadFailed(records.MISSING_FILE, "no such object") from None
        raise ReadFailed(records.READ_ERROR, f"{type(e).__name__}: {str(e)[:300]}") from None


def read_ahead(
    items: Iterable, path_of, threads: int = READ_THREADS, window: int = READ_WINDOW
) -> Iterator[tuple[object, bytes | ReadFailed]]:
    """Yields (item, bytes or ReadFailed) in the order of `items`, reading ahead."""
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        pending: collections.deque = collections.deque()

        def read(path):
            try:
                return read_bytes(path)
            except ReadFailed as failure:
                return failure

        for item in items:
            pending.append((item, pool.submit(read, path_of(item))))
            if len(pending) >= window:
                head, future = pending.popleft()
                yield head, future.result()
        while pending:
            head, future = pending.popleft()
            yield head, future.result()
