"""Progress of a running conversion, seen from the driver: shard files as they appear.

Watching the output (local or gs://) works the same on every runner, unlike worker logs.
"""

from __future__ import annotations

import logging
import re
import threading
import time

from apache_beam.io.filesystems import FileSystems

__all__ = ["ShardProgress"]

_LOG = logging.getLogger("imgshard")
_NAME = re.compile(r"-(\d{5})-of-(\d{5})\.(tfrecord|array_record)$")  # not index files


def _format_duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ShardProgress:
    """Logs 'shards k/N written, bytes and rate, elapsed, ~time left' while the job runs."""

    def __init__(self, output: str, split: str, interval: float = 2.0):
        self._pattern = FileSystems.join(output, f"{split}-*-of-*")
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="imgshard-progress", daemon=True)
        self._started = 0.0
        self._last_count = 0

    def __enter__(self) -> ShardProgress:
        self._started = time.time()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _count(self) -> tuple[int, int, int]:
        """(shards written by this run, shard count, their bytes)."""
        try:
            found = FileSystems.match([self._pattern])[0].metadata_list
        except Exception:  # the folder may not exist yet
            return 0, 0, 0
        done, total, size = 0, 0, 0
        for m in found:
            match = _NAME.search(m.path)
            # shards left by an earlier run (--overwrite) predate this one
            if match and m.last_updated_in_seconds >= self._started - 1:
                done += 1
                total = int(match.group(2))
                size += m.size_in_bytes
        return done, total, size

    def _watch(self) -> None:
        while not self._stop.wait(self._interval):
            done, total, size = self._count()
            if done == self._last_count or not total:
                continue
            self._last_count = done
            elapsed = time.time() - self._started
            left = elapsed / done * (total - done)
            _LOG.info(
                "shards %d/%d written (%d%%), %.1f MB at %.1f MB/s, elapsed %s, about %s left",
                done,
                total,
                100 * done // total,
                size / 1e6,
                size / 1e6 / max(elapsed, 1e-3),
                _format_duration(elapsed),
                _format_duration(left),
            )
