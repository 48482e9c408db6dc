"""Is every line of the input list accounted for, exactly once, by the shards + rejected report?

Neither the list nor the record paths are held in memory whole: both are spilled to bucket
files on local disk by a hash of the file's base name (so a list path and the record that
stores it, whole or as a base name, always share a bucket), and the buckets are compared one
at a time. Memory is one bucket's share of the paths plus the rejected line numbers (8 bytes
each) and the first KEPT findings of each kind; the counts stay exact.
"""

from __future__ import annotations

import collections
import json
import os
import posixpath
import tempfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from imgshard.transforms.records import IndexEntry, Rejection

__all__ = ["DEFAULT_BUCKETS", "KEPT", "ListAccounting", "RecordPaths", "account_for_list"]

DEFAULT_BUCKETS = 128  # 100M list lines: ~0.8M paths in memory at a time
KEPT = 100  # findings listed per kind (all are counted)


@dataclass
class ListAccounting:
    """Attributes:
    inputs: list lines that are inputs (entries and unparseable lines).
    missing: (line, path) of inputs found neither as a record nor as a rejected line; the
      first KEPT by line (num_missing counts them all, like the other num_ fields).
    duplicated: (path, records found, records expected) for paths written too often.
    unexpected: record paths that the list does not hold at all.
    unknown_rejected: rejected-report lines that are not inputs of the list.
    matched_by: "path", or "basename" for shards that store only file names.
    largest_bucket: the most list entries plus record paths held in memory at once.
    """

    inputs: int = 0
    missing: list[tuple[int, str]] = field(default_factory=list)
    num_missing: int = 0
    duplicated: list[tuple[str, int, int]] = field(default_factory=list)
    num_duplicated: int = 0
    unexpected: list[str] = field(default_factory=list)
    num_unexpected: int = 0
    unknown_rejected: list[int] = field(default_factory=list)
    num_unknown_rejected: int = 0
    matched_by: str = "path"
    largest_bucket: int = 0

    @property
    def ok(self) -> bool:
        return not (
            self.num_missing or self.num_duplicated or self.num_unexpected
            or self.num_unknown_rejected
        )  # fmt: skip


def _bucket_of(path: str, buckets: int) -> int:
    return zlib.crc32(posixpath.basename(path).encode("utf-8", "surrogatepass")) % buckets


class _Spill:
    """JSON lines appended to one of `buckets` files by the base name of their path."""

    def __init__(self, folder: str, name: str, buckets: int):
        self._names = [os.path.join(folder, f"{name}-{b:04d}.jsonl") for b in range(buckets)]
        self._files = [open(n, "w", encoding="utf-8") for n in self._names]  # noqa: SIM115

    def add(self, path: str, item) -> None:
        self._files[_bucket_of(path, len(self._files))].write(json.dumps(item) + "\n")

    def close(self) -> None:
        for f in self._files:
            f.close()

    def read(self, bucket: int):
        with open(self._names[bucket], encoding="utf-8") as f:
            for line in f:
                yield json.loads(line)


class RecordPaths:
    """The image/filename of every record read, spilled to a temporary folder by bucket.

    Attributes:
      count: records added.
    """

    def __init__(self, buckets: int = DEFAULT_BUCKETS):
        if buckets < 1:
            raise ValueError(f"buckets must be >= 1, got {buckets}")
        self.buckets = buckets
        self._tmp = tempfile.TemporaryDirectory(prefix="imgshard-audit-")
        self.folder = self._tmp.name
        self._spill = _Spill(self.folder, "records", buckets)
        self.count = 0
        self.only_basenames = True  # no record path holds a "/"

    def add(self, path: str) -> None:
        self.count += 1
        self.only_basenames = self.only_basenames and "/" not in path
        self._spill.add(path, path)

    def counts(self, bucket: int) -> collections.Counter:
        return collections.Counter(self._spill.read(bucket))

    def close(self) -> None:
        self._spill.close()

    def cleanup(self) -> None:
        self._spill.close()
        self._tmp.cleanup()


def _first(findings: list, new: Iterable) -> list:
    return sorted([*findings, *new])[:KEPT]


def _chunks(items: Iterable, size: int):
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def account_for_list(
    listed: Iterable[IndexEntry | Rejection],
    record_paths: RecordPaths,
    rejected_lines: Iterable[int],
) -> ListAccounting:
    """Compares the re-parsed list (a stream) with the record paths and the rejected lines."""
    result = ListAccounting()
    record_paths.close()
    rejected = np.unique(np.fromiter(rejected_lines, dtype=np.int64))
    rejected_seen = np.zeros(len(rejected), dtype=bool)
    entries = _Spill(record_paths.folder, "list", record_paths.buckets)
    unparseable = _Spill(record_paths.folder, "unparseable", 1)
    any_listed_folder = False
    for item in listed:
        if isinstance(item, IndexEntry):
            result.inputs += 1
            any_listed_folder = any_listed_folder or "/" in item.path
            entries.add(item.path, [item.line, item.path])
        elif isinstance(item, Rejection):
            result.inputs += 1
            unparseable.add("", [item.line, item.path])
    entries.close()
    unparseable.close()
    by_basename = record_paths.count > 0 and record_paths.only_basenames and any_listed_folder
    result.matched_by = "basename" if by_basename else "path"

    def is_rejected(lines: list[int]) -> set[int]:
        """The rejected ones among `lines`, marking them as inputs on the way."""
        if not len(rejected) or not lines:
            return set()
        at = np.searchsorted(rejected, lines)
        hit = at < len(rejected)
        hit[hit] = rejected[at[hit]] == np.asarray(lines)[hit]
        rejected_seen[at[hit]] = True
        return set(np.asarray(lines)[hit].tolist())

    for bucket in range(record_paths.buckets):
        lines_of: dict[str, list[int]] = collections.defaultdict(list)
        for line, path in entries.read(bucket):
            lines_of[posixpath.basename(path) if by_basename else path].append(line)
        found = record_paths.counts(bucket)
        result.largest_bucket = max(
            result.largest_bucket, sum(map(len, lines_of.values())) + len(found)
        )
        closed = is_rejected([line for lines in lines_of.values() for line in lines])
        missing, duplicated = [], []
        for path, lines in lines_of.items():
            open_lines = sorted(line for line in lines if line not in closed)
            n = found.get(path, 0)
            if n < len(open_lines):
                missing.extend((line, path) for line in open_lines[n:])
            elif n > len(open_lines):
                duplicated.append((path, n, len(open_lines)))
        unexpected = [p for p in found if p not in lines_of]
        result.num_missing += len(missing)
        result.num_duplicated += len(duplicated)
        result.num_unexpected += len(unexpected)
        result.missing = _first(result.missing, missing)
        result.duplicated = _first(result.duplicated, duplicated)
        result.unexpected = _first(result.unexpected, unexpected)

    for bad_lines in _chunks(unparseable.read(0), 100_000):
        closed = is_rejected([line for line, _ in bad_lines])
        missing = [(line, text) for line, text in bad_lines if line not in closed]
        result.num_missing += len(missing)
        result.missing = _first(result.missing, missing)
    unknown = rejected[~rejected_seen]
    result.num_unknown_rejected = len(unknown)
    result.unknown_rejected = unknown[:KEPT].tolist()
    return result
