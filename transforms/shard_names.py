"""Shard file names, `{split}-{shard:05d}-of-{num_shards:05d}.{extension}`: made, matched and
parsed here only, so the writer, the progress watcher, the stale-file cleanup, the journal and
the driver agree on them.

    shard_name("train", 3, 1024) == "train-00003-of-01024.tfrecord"
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = [
    "EXTENSIONS",
    "MAX_SHARDS",
    "ShardName",
    "parse_shard_name",
    "shard_glob",
    "shard_name",
]

# Shard file formats (--format) and their file-name extensions.
EXTENSIONS = {"tfrecord": "tfrecord", "array_record": "array_record", "webdataset": "tar"}
# The numbers are written with five digits, and names must sort in shard order.
MAX_SHARDS = 99_999

_NAME = re.compile(
    r"(?P<split>.+)-(?P<shard>\d{5})-of-(?P<num_shards>\d{5})\.(?P<extension>"
    + "|".join(map(re.escape, EXTENSIONS.values()))
    + r")"
)


class ShardName(NamedTuple):
    split: str
    shard: int
    num_shards: int
    format: str


def shard_name(split: str, shard: int, num_shards: int, fmt: str = "tfrecord") -> str:
    if not 0 <= shard < num_shards <= MAX_SHARDS:
        raise ValueError(f"shard {shard} of {num_shards}: need 0 <= shard < count <= {MAX_SHARDS}")
    return f"{split}-{shard:05d}-of-{num_shards:05d}.{EXTENSIONS[fmt]}"


def shard_glob(split: str, fmt: str | None = None) -> str:
    """A FileSystems.match pattern for the shards of `split`: of one format, or with no
    extension (`fmt=None`: every format, and also their index and journal files)."""
    return f"{split}-*-of-*" + (f".{EXTENSIONS[fmt]}" if fmt else "")


def parse_shard_name(name: str) -> ShardName | None:
    """The parts of a shard's file name (no folder), or None for any other file (index files,
    temporary files, the rejected report)."""
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    fmt = {ext: fmt for fmt, ext in EXTENSIONS.items()}[match["extension"]]
    return ShardName(match["split"], int(match["shard"]), int(match["num_shards"]), fmt)
