"""The keyed global shuffle: which shard an image goes to, and its place inside it.

key   = first 8 bytes of BLAKE2b(seed, canonical path)   (stable across processes and runs,
                                                          unlike Python's salted hash())
shard = key mod N; records are written in key order inside each shard.

Because the key is a hash, "key order" is a uniform random permutation of the dataset
and "key mod N" a uniform random partition, so every shard is an i.i.d. sample of the whole
and its records come in random order. Everything derives from (seed, path), so a retried or
re-run shard is byte-identical, whatever the runner and the number of workers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from imgshard.transforms.image import ResizeSpec
from imgshard.transforms.records import DUPLICATE_PATH, Rejection
from imgshard.transforms.shard_names import MAX_SHARDS

__all__ = [
    "auto_num_shards",
    "contiguous_shard",
    "drop_duplicates",
    "shard_key",
    "split_duplicates",
]

# Auto shard count: ~150 MB files (the TF guidance is 100-200 MB), at least enough files
# for a parallel interleave to read from, never fewer than ~64 records a file.
TARGET_SHARD_BYTES = 150 * 2**20
MIN_SHARDS = 32
MIN_RECORDS_PER_SHARD = 64


def shard_key(seed: int, path: str) -> int:
    """A 64-bit key that depends only on the seed and the canonical path."""
    digest = hashlib.blake2b(path.encode("utf-8"), digest_size=8, key=str(seed).encode("ascii"))
    return int.from_bytes(digest.digest(), "big")


def contiguous_shard(line: int, total_lines: int, num_shards: int) -> int:
    """List-order sharding (--shuffle none): contiguous chunks of the list, the bug to avoid."""
    return min(num_shards - 1, (line - 1) * num_shards // max(1, total_lines))


def estimated_record_bytes(resize: ResizeSpec) -> int:
    """A rough JPEG size (quality ~90) of one record, for choosing the shard count."""
    if resize.mode == "none":
        return 110_000  # ILSVRC2012's mean original JPEG
    if resize.mode == "fixed":
        pixels = resize.width * resize.height
    elif resize.mode == "shorter":
        pixels = resize.side * resize.side * 4 // 3  # a 4:3 photo
    else:
        pixels = resize.side * resize.side * 3 // 4
    return max(2_000, int(pixels * 0.4))  # ~3.2 bits per pixel


def auto_num_shards(num_records: int, record_bytes: int) -> int:
    by_size = -(-num_records * record_bytes // TARGET_SHARD_BYTES)
    by_readers = min(MIN_SHARDS, num_records // MIN_RECORDS_PER_SHARD)
    return min(MAX_SHARDS, max(1, by_size, by_readers))  # past ~15 TB, larger shards


def split_duplicates(entries: Iterable[tuple]) -> tuple[list[tuple], list[tuple[tuple, int]]]:
    """Keeps the first listing (lowest line) of every path.

    Args:
      entries: `(key, line, path, label_id)` tuples, in any order.

    Returns:
      (kept entries sorted by (key, line), [(duplicate entry, line of the first listing)]).
    """
    first_line: dict[str, int] = {}
    kept, duplicates = [], []
    for entry in sorted(entries, key=lambda e: e[1]):
        _, line, path, _ = entry
        if path in first_line:
            duplicates.append((entry, first_line[path]))
        else:
            first_line[path] = line
            kept.append(entry)
    kept.sort(key=lambda e: (e[0], e[1]))
    return kept, duplicates


def drop_duplicates(
    entries: Iterable[tuple], class_names: Sequence[str]
) -> tuple[list[tuple], list[Rejection]]:
    """`split_duplicates`, with each later listing turned into its rejection."""
    kept, duplicates = split_duplicates(entries)
    rejections = [
        Rejection(
            line,
            path,
            class_names[label],
            DUPLICATE_PATH,
            f"the same path is listed first on line {first_line}",
        )
        for (_, line, path, label), first_line in duplicates
    ]
    return kept, rejections
