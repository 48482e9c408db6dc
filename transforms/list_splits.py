"""A list or CSV read in parallel byte-range splits, with exact line numbers.

The file is cut into splits of SPLIT_BYTES. A split owns every line that *starts* inside its
byte range (split 0 from byte 0, the others after the first newline at or after their start),
so each line is read by exactly one split, the last one of a split to its end even past the
range. An entry's identity stays its exact 1-based line number, which no single split knows:

  pass 1  count_split   per split: the lines starting in it, the SHA-256 of its bytes, and for
                        a CSV whether a line opens a quoted field (a newline inside quotes)
  layout  build_layout  a prefix sum of those counts: each split's first line number (one int
                        per split), and the input's content hash combined from the splits'
  pass 2  owned_lines   per split: its lines, parsed from its first line number on

Counting is bytes.count over raw bytes (C speed), so pass 1 costs a fraction of pass 2.

A compressed input (.gz, .bz2 ...) cannot seek: it is read as one split, by one worker.
A CSV whose quoted field holds a newline cannot be cut safely at line starts (a record spans
lines): such a CSV is read as one split too, as before, with the same line numbers (the
record's last line), and the job logs a warning. Any line that csv would leave inside an open
quoted field triggers that, so a stray quote costs parallelism, never correctness.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

__all__ = [
    "SPLIT_BYTES",
    "ListLayout",
    "ListSplit",
    "SplitCount",
    "build_layout",
    "combined_sha256",
    "count_split",
    "file_metadata",
    "is_compressed",
    "owned_lines",
    "plan_splits",
]

# Bytes per split (~1.4M ILSVRC-style lines). A module value, not a flag: tests lower it so a
# small list gets several splits.
SPLIT_BYTES = 64 << 20
_CHUNK = 1 << 20


class ListSplit(NamedTuple):
    """Bytes [start, end) of the input; end None: the whole (compressed) file."""

    index: int
    start: int
    end: int | None


class SplitCount(NamedTuple):
    """Pass 1's result for one split."""

    index: int
    lines: int  # lines starting in the split (blank and comment lines included)
    sha256: str  # of the split's bytes [start, end) (of the whole decompressed file for end None)
    opens_quote: bool  # a CSV line that leaves a quoted field open (a newline inside quotes)


class ListLayout(NamedTuple):
    """The splits' first line numbers, and the input's content hash."""

    first_lines: tuple[int, ...]  # first_lines[i]: 1-based number of split i's first line
    sha256: str  # combined_sha256 of the splits' hashes
    whole: bool  # read as one split: split 0 reads everything, the others nothing


def is_compressed(uri: str) -> bool:
    return CompressionTypes.detect_compression_type(uri) != CompressionTypes.UNCOMPRESSED


def file_metadata(uri: str):
    """Beam's FileMetadata of one file (size_in_bytes, last_updated_in_seconds): a stat, or an
    object's metadata on GCS. Not FileSystems.match, which would read `[` in a name as a glob."""
    return FileSystems.get_filesystem(uri).metadata(uri)


def plan_splits(uri: str, split_bytes: int | None = None) -> list[ListSplit]:
    """The input's splits, from its size (object metadata; nothing is read)."""
    if is_compressed(uri):
        return [ListSplit(0, 0, None)]  # a compressed stream cannot seek
    size = file_metadata(uri).size_in_bytes
    step = split_bytes or SPLIT_BYTES
    count = max(1, -(-size // step))
    return [ListSplit(i, i * step, min(size, (i + 1) * step)) for i in range(count)]


def _chunks(f) -> Iterator[bytes]:
    while chunk := f.read(_CHUNK):
        yield chunk


def _lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Lines ending in b"\\n" (the last one may not), as readlines() cuts them: only a newline
    ends a line, so a CRLF line keeps its b"\\r"."""
    rest = b""
    for chunk in chunks:
        data = rest + chunk
        cut = data.rfind(b"\n") + 1
        if cut:
            yield from io.BytesIO(data[:cut]).readlines()
        rest = data[cut:]
    if rest:
        yield rest


def owned_lines(uri: str, split: ListSplit) -> Iterator[bytes]:
    """The lines that start inside the split, in order."""
    if split.end is None:
        with FileSystems.open(uri, compression_type=CompressionTypes.AUTO) as f:
            yield from _lines(_chunks(f))
        return
    begin = max(split.start - 1, 0)
    with FileSystems.open(uri, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        f.seek(begin)
        lines = _lines(_chunks(f))
        position = begin
        if split.start > 0:  # the rest of the line through byte start-1 is the previous split's
            skipped = next(lines, None)
            if skipped is None:
                return
            position += len(skipped)
        for line in lines:
            if position >= split.end:
                return
            yield line
            position += len(line)


def _opens_quoted_field(line: bytes) -> bool:
    """Whether csv, reading this line, would still be inside a quoted field at its newline:
    then the record goes on in the next line. (Inside quotes the newline is kept in the field,
    which is how it shows.)"""
    if not line.endswith(b"\n"):
        return False  # the file's last line: nothing follows it
    rows = list(csv.reader([line.decode("utf-8-sig", errors="replace")]))
    return bool(rows and rows[-1] and rows[-1][-1].endswith("\n"))


def count_split(uri: str, split: ListSplit, is_csv: bool = False) -> SplitCount:
    """Pass 1: the lines starting in the split, its bytes' SHA-256, and (CSV) quoted newlines."""
    digest = hashlib.sha256()
    newlines, last, before = 0, b"", b""
    if split.end is None:
        with FileSystems.open(uri, compression_type=CompressionTypes.AUTO) as f:
            for chunk in _chunks(f):
                digest.update(chunk)
                newlines += chunk.count(b"\n")
                last = chunk[-1:]
        lines = newlines + (1 if last not in (b"", b"\n") else 0)
    else:
        with FileSystems.open(uri, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            if split.start > 0:
                f.seek(split.start - 1)
                before = f.read(1)
            left = split.end - split.start
            while left > 0:
                chunk = f.read(min(_CHUNK, left))
                if not chunk:
                    raise OSError(f"{uri} ended at byte {split.end - left}, before {split.end}")
                digest.update(chunk)
                newlines += chunk.count(b"\n")
                last = chunk[-1:]
                left -= len(chunk)
        # A line starts at byte 0 and after every newline that is not the file's last byte.
        # Those of this split: after a newline in [start-1, end-1).
        starts_at_zero = 1 if split.start == 0 and split.end > 0 else 0
        lines = starts_at_zero + newlines + (before == b"\n") - (last == b"\n")
    opens_quote = is_csv and any(
        _opens_quoted_field(line) for line in owned_lines(uri, split) if b'"' in line
    )
    return SplitCount(split.index, lines, digest.hexdigest(), opens_quote)


def combined_sha256(digests: list[str]) -> str:
    """One part: that hash (a one-split list keeps the file's plain SHA-256, what `sha256sum`
    prints). Several: the SHA-256 of the parts' 32-byte digests, concatenated in order."""
    if len(digests) == 1:
        return digests[0]
    return hashlib.sha256(b"".join(bytes.fromhex(d) for d in digests)).hexdigest()


def build_layout(counts: Iterable[SplitCount]) -> ListLayout:
    """Prefix sums of the splits' line counts, and the combined hash."""
    ordered = sorted(counts)
    first, next_line = [], 1
    for count in ordered:
        first.append(next_line)
        next_line += count.lines
    return ListLayout(
        tuple(first),
        combined_sha256([c.sha256 for c in ordered]),
        any(c.opens_quote for c in ordered),
    )
