"""Entries drawn from across a list, for what the driver checks and estimates before the job.

A class-sorted list's first thousand lines hold one or two classes (and one folder of
images), so a sample of its start says little about the rest. A small list is read whole; a
large one in CHUNKS evenly spaced reads of CHUNK_BYTES (2 MiB in all, whatever its size, so
the driver never reads the whole list); a compressed one cannot seek, so up to HEAD_LINES of
its start are read.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import NamedTuple

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from imgshard.transforms.index import parse_csv, parse_list
from imgshard.transforms.list_splits import file_metadata, is_compressed
from imgshard.transforms.records import IndexEntry

__all__ = ["CHUNKS", "CHUNK_BYTES", "HEAD_LINES", "ListSample", "read_sample", "spread"]

CHUNKS = 32
CHUNK_BYTES = 64 << 10
HEAD_LINES = 200_000


class ListSample(NamedTuple):
    """Attributes:
    entries: the parsed entries of the lines read, in file order (their line numbers count
      the lines read, not the file's).
    inputs: lines in the file: counted when it was read whole, else estimated from its size
      and the mean length of the lines read (a compressed list: at least this many).
    """

    entries: list[IndexEntry]
    inputs: int


def spread(items: Sequence, count: int) -> list:
    """`count` items evenly spaced over `items` (all of them when there are fewer)."""
    if len(items) <= count:
        return list(items)
    return [items[i * len(items) // count] for i in range(count)]


def _parsed(header: bytes | None, lines: list[bytes], path_column, label_column):
    if header is None:
        parsed = parse_list(lines)
    else:
        parsed = parse_csv([header, *lines], path_column, label_column)
    return [item for item in parsed if isinstance(item, IndexEntry)]


def _chunk_lines(data: bytes, starts_file: bool, ends_file: bool) -> list[bytes]:
    """The whole lines of a chunk read from the middle of a file: the cut first and last
    lines dropped."""
    parts = data.split(b"\n")
    if not starts_file:
        parts = parts[1:]
    tail = parts.pop() if parts else b""  # after the last newline: cut, or the file's end
    lines = [part + b"\n" for part in parts]
    return lines + [tail] if ends_file and tail else lines


def read_sample(
    uri: str, csv: bool, path_column: str | None = None, label_column: str | None = None
) -> ListSample:
    """The entries of lines drawn from across the list (see the module docstring)."""
    if is_compressed(uri):
        with FileSystems.open(uri, compression_type=CompressionTypes.AUTO) as f:
            lines = list(itertools.islice(iter(f.readline, b""), HEAD_LINES + csv))
        header, lines = (lines[0] if lines else b"", lines[1:]) if csv else (None, lines)
        return ListSample(_parsed(header, lines, path_column, label_column), len(lines))
    size = file_metadata(uri).size_in_bytes
    with FileSystems.open(uri, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        if size <= CHUNKS * CHUNK_BYTES:
            lines = f.read().splitlines(keepends=True)
            header, lines = (lines[0] if lines else b"", lines[1:]) if csv else (None, lines)
            return ListSample(_parsed(header, lines, path_column, label_column), len(lines))
        header = f.readline() if csv else None
        lines = []
        for i in range(CHUNKS):
            start = (size - CHUNK_BYTES) * i // (CHUNKS - 1)
            f.seek(start)
            data = f.read(CHUNK_BYTES)
            lines += _chunk_lines(data, start == 0, start + len(data) >= size)
    if header is not None:
        lines = lines[1:]  # the first chunk starts with the header
    mean = sum(map(len, lines)) / max(1, len(lines))
    inputs = round((size - len(header or b"")) / mean) if lines else 0
    return ListSample(_parsed(header, lines, path_column, label_column), inputs)
