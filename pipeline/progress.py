"""Progress of a running conversion, seen from the driver: shard files as they appear.

Watching the output (local or gs://) works the same on every runner, unlike worker logs.
With --resume, the shards an earlier run journaled (and that are still in place with their
journaled size) count as done from the start; the rate and time left come from this run's.
"""

from __future__ import annotations

import logging
import threading
import time

from apache_beam.io.filesystems import FileSystems

from imgshard.pipeline import journal
from imgshard.transforms.shard_names import parse_shard_name, shard_glob

__all__ = ["ShardProgress"]

_LOG = logging.getLogger("imgshard")


def _format_duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ShardProgress:
    """Logs 'shards k/N written, bytes and rate, elapsed, ~time left' while the job runs."""

    def __init__(
        self, output: str, split: str, interval: float = 2.0, resumed_fingerprint: str = ""
    ):
        """`resumed_fingerprint`: with --resume, the run's fingerprint (its journal's key)."""
        self._output, self._split = output, split
        self._resumed_fingerprint = resumed_fingerprint
        self._kept: dict[str, int] = {}  # name -> journaled size, of the earlier run's shards
        # both shard formats; parse_shard_name leaves the index files out
        self._pattern = FileSystems.join(output, shard_glob(split))
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

    def _count(self) -> tuple[int, int, int, int]:
        """(shards written by this run, shards kept from an earlier run, shard count, bytes
        written by this run)."""
        try:
            found = FileSystems.match([self._pattern])[0].metadata_list
        except Exception:  # the folder may not exist yet
            return 0, 0, 0, 0
        written, kept, total, size = 0, 0, 0, 0
        for m in found:
            name = m.path.rsplit("/", 1)[-1]
            parsed = parse_shard_name(name)
            if parsed is None or parsed.split != self._split:
                continue
            # shards left by an earlier run (--overwrite) predate this one
            if m.last_updated_in_seconds >= self._started - 1:
                written += 1
                size += m.size_in_bytes
            elif self._kept.get(name) == m.size_in_bytes:
                kept += 1
            else:
                continue
            total = parsed.num_shards
        return written, kept, total, size

    def _watch(self) -> None:
        if self._resumed_fingerprint:
            results = journal.journaled_results(
                self._output, self._split, self._resumed_fingerprint
            )
            self._kept = {name: result.bytes for name, result in results.items()}
        while not self._stop.wait(self._interval):
            written, kept, total, size = self._count()
            done = written + kept
            if done == self._last_count or not total:
                continue
            self._last_count = done
            elapsed = time.time() - self._started
            left = elapsed / written * (total - done) if written else None
            _LOG.info(
                "shards %d/%d written (%d%%%s), %.1f MB at %.1f MB/s, elapsed %s, %s",
                done,
                total,
                100 * done // total,
                f", {kept} kept by --resume" if kept else "",
                size / 1e6,
                size / 1e6 / max(elapsed, 1e-3),
                _format_duration(elapsed),
                f"about {_format_duration(left)} left" if left is not None else "time left: -",
            )
