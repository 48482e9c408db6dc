"""The small values that flow between the stages of the conversion job.

Index entries are what crosses the shuffle, so they stay tiny: a line number, a path relative
to the image root and a raw label. Image bytes never appear here.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

__all__ = [
    "IndexEntry",
    "Rejection",
    "ShardResult",
    "SourceInfo",
    "REASONS",
    "REJECTED",
    "pack_shard_entry",
    "unpack_shard_entry",
]

# The tagged output that every stage of the job sends its Rejections to.
REJECTED = "rejected"

# Why an input did not become a record. Every input ends either as a record or as a
# Rejection carrying one of these reasons (the keys of `rejected_by_reason` in dataset.json).
MISSING_FILE = "missing_file"
EMPTY_FILE = "empty_file"
NOT_AN_IMAGE = "not_an_image"
CORRUPT_IMAGE = "corrupt_image"
TOO_MANY_PIXELS = "too_many_pixels"
READ_ERROR = "read_error"
OUTSIDE_ROOT = "outside_root"
DUPLICATE_PATH = "duplicate_path"
UNPARSEABLE_LINE = "unparseable_line"
UNKNOWN_LABEL = "unknown_label"

REASONS = (
    MISSING_FILE,
    EMPTY_FILE,
    NOT_AN_IMAGE,
    CORRUPT_IMAGE,
    TOO_MANY_PIXELS,
    READ_ERROR,
    OUTSIDE_ROOT,
    DUPLICATE_PATH,
    UNPARSEABLE_LINE,
    UNKNOWN_LABEL,
)


class IndexEntry(NamedTuple):
    """One input image as listed.

    Attributes:
      line: 1-based line number in the list (or rank in the sorted folder listing).
      path: canonical path, relative to the image root unless it was absolute.
      label: the label exactly as listed (an integer id or a class name), before resolution.
    """

    line: int
    path: str
    label: str


# What crosses GroupByShard for one input is `(shard, pack_shard_entry(...))`: one bytes
# value, not a tuple. Beam's local runner keeps every grouped value decoded in the driver until
# the groups are handed out, and a tuple of four objects (key, line, path, label id) costs
# ~240 bytes there; this costs len(path) + 53. Encoded it is 58 bytes vs 72 for the tuple.
_SHARD_ENTRY = struct.Struct(">QQI")  # sort key, line, label id; the UTF-8 path follows


def pack_shard_entry(key: int, line: int, path: str, label_id: int) -> bytes:
    """One input's place in its shard, for the shuffle: see unpack_shard_entry."""
    return _SHARD_ENTRY.pack(key, line, label_id) + path.encode("utf-8")


def unpack_shard_entry(packed: bytes) -> tuple[int, int, str, int]:
    """(sort key, line, path, label id) of a pack_shard_entry value."""
    key, line, label_id = _SHARD_ENTRY.unpack_from(packed)
    return key, line, packed[_SHARD_ENTRY.size :].decode("utf-8"), label_id


class Rejection(NamedTuple):
    """An input that did not become a record, and why."""

    line: int
    path: str
    label: str
    reason: str
    detail: str

    def to_json_dict(self) -> dict:
        return {
            "line": self.line,
            "path": self.path,
            "label": self.label,
            "reason": self.reason,
            "detail": self.detail,
        }


class SourceInfo(NamedTuple):
    """What the index reader saw of its source, for dataset.json."""

    kind: str  # "list", "csv" or "folder"
    uri: str
    sha256: str  # of the list file's bytes, or of the sorted folder listing
    inputs: int  # inputs seen (list lines holding an entry or rejected as unparseable, or files)


class ShardResult(NamedTuple):
    """What one shard writer reports once its file is in place."""

    shard: int
    name: str
    records: int
    bytes: int
    sha256: str
    label_counts: dict[int, int]
    bytes_in: int
    # The shard's random-access index file (--index-files), "" / 0 when there is none.
    index_name: str = ""
    index_bytes: int = 0
    index_sha256: str = ""
