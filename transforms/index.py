"""Parsing the image index: a `path label` list, a CSV with a header, or a class-folder tree.

Every input becomes an `IndexEntry` or a `Rejection` (a line that cannot be parsed), numbered
by its exact line, so a report can point at it. The conversion parses a list in parallel
splits (transforms/list_splits.py), each from its first line number on, and lists a folder one
class per worker (transforms/class_folders.py); `read_index` reads an input whole, in order,
for the audit.
"""

from __future__ import annotations

import csv
import hashlib
import os.path
import posixpath
from collections.abc import Iterable, Iterator

from apache_beam.io.filesystems import FileSystems

from imgshard.transforms import records
from imgshard.transforms.class_folders import class_folders, folder_layout, list_class
from imgshard.transforms.list_splits import ListSplit, owned_lines
from imgshard.transforms.records import IndexEntry, Rejection, SourceInfo

__all__ = [
    "canonical_path",
    "class_folder_pattern",
    "csv_columns",
    "csv_header",
    "detect_kind",
    "parse_csv",
    "parse_csv_rows",
    "parse_list",
    "read_index",
    "resolve_image_path",
]

# Longer than any file system allows (Linux PATH_MAX; GCS object names stop at 1,024 bytes):
# such a "path" is a mangled line, and would only bloat the shuffle.
MAX_PATH_BYTES = 4096

_PATH_COLUMNS = ("path", "filename", "file", "image", "image_path", "filepath")
_LABEL_COLUMNS = ("label", "class", "synset", "class_name", "category", "label_id")


def detect_kind(input_uri: str) -> str:
    """'folder' for a directory (a gs:// prefix that is no object), 'csv' for *.csv, else 'list'."""
    if FileSystems.get_scheme(input_uri) is None:
        is_folder = os.path.isdir(input_uri)
    else:
        is_folder = input_uri.endswith("/") or not FileSystems.exists(input_uri)
    if is_folder:
        return "folder"
    return "csv" if input_uri.lower().endswith(".csv") else "list"


def canonical_path(path: str) -> str:
    """The path as keyed and deduplicated: normalized, relative paths kept relative.

    `./a/b.jpg`, `a//b.jpg` and `a/c/../b.jpg` are the same image. Relative paths stay
    relative so the same list over a local copy and a gs:// copy shuffles identically.
    """
    if "://" in path:
        scheme, rest = path.split("://", 1)
        return f"{scheme}://{posixpath.normpath(rest)}"
    normalized = posixpath.normpath(path.replace("\\", "/"))
    return normalized


def resolve_image_path(image_root: str, path: str) -> str:
    if "://" in path or path.startswith("/"):
        return path
    return FileSystems.join(image_root, path)


def _decode_line(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def parse_list(lines: Iterable[bytes], first_line: int = 1) -> Iterator[IndexEntry | Rejection]:
    """Parses `path label` lines (Caffe / ILSVRC train.txt), the first being `first_line`.

    The label is the last whitespace-separated token, so paths may contain spaces. Blank
    lines and lines starting with '#' are not inputs and are skipped.
    """
    for number, raw in enumerate(lines, start=first_line):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        text = _decode_line(raw)
        if text is None:
            yield Rejection(
                number,
                repr(raw[:200])[2:-1],
                "",
                records.UNPARSEABLE_LINE,
                "line is not valid UTF-8",
            )
            continue
        text = text.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.rsplit(None, 1)
        if len(parts) != 2:
            yield Rejection(
                number,
                text[:500],
                "",
                records.UNPARSEABLE_LINE,
                "expected 'path label' separated by whitespace",
            )
            continue
        path, label = parts[0].strip(), parts[1]
        yield _entry_or_rejection(number, path, label)


def _entry_or_rejection(number: int, path: str, label: str) -> IndexEntry | Rejection:
    """The entry, or why a parsed path and label cannot name an image."""
    size = len(path.encode("utf-8"))
    if "\x00" in path or "\x00" in label:
        problem = "line contains a NUL byte"
    elif size > MAX_PATH_BYTES:
        problem = f"the path is {size:,} bytes long, over {MAX_PATH_BYTES:,}"
    else:
        return IndexEntry(number, canonical_path(path), label)
    return Rejection(number, path[:500], label[:200], records.UNPARSEABLE_LINE, problem)


def _decode_csv_line(raw: bytes) -> str:
    return raw.decode("utf-8-sig", errors="replace")


def csv_columns(
    header: list[str], path_column: str | None = None, label_column: str | None = None
) -> tuple[int, int]:
    """(path column, label column) of a CSV header.

    Without explicit names, the first header matching a usual name is taken (path, filename,
    file, image ...; label, class, synset ...).
    """
    header = [h.strip() for h in header]
    lowered = [h.lower() for h in header]

    def pick(explicit: str | None, usual: tuple[str, ...], what: str) -> int:
        if explicit is not None:
            if explicit not in header:
                raise ValueError(f"CSV has no column {explicit!r} for the {what}; header: {header}")
            return header.index(explicit)
        for name in usual:
            if name in lowered:
                return lowered.index(name)
        raise ValueError(
            f"CSV header {header} names no {what} column; expected one of {list(usual)} "
            f"or pass --{what}-column"
        )

    return pick(path_column, _PATH_COLUMNS, "path"), pick(label_column, _LABEL_COLUMNS, "label")


def csv_header(first_line: bytes) -> list[str] | None:
    """The header row of a CSV from its first line; None for an empty file."""
    rows = list(csv.reader([_decode_csv_line(first_line)]))
    return rows[0] if rows else None


def parse_csv(
    lines: Iterable[bytes], path_column: str | None = None, label_column: str | None = None
) -> Iterator[IndexEntry | Rejection]:
    """Parses a CSV whose header names a path column and a label column (csv_columns).

    Line numbers count the header as line 1.
    """
    reader = csv.reader(_decode_csv_line(raw) for raw in lines)
    try:
        header = next(reader)
    except StopIteration:
        return
    columns = csv_columns(header, path_column, label_column)
    yield from _csv_rows(reader, 0, columns)


def parse_csv_rows(
    lines: Iterable[bytes], first_line: int, columns: tuple[int, int]
) -> Iterator[IndexEntry | Rejection]:
    """Parses CSV data lines, the first being `first_line`, with the header's `columns`.

    Exact only if no record spans lines (list_splits checks that first)."""
    reader = csv.reader(_decode_csv_line(raw) for raw in lines)
    yield from _csv_rows(reader, first_line - 1, columns)


def _csv_rows(reader, before: int, columns: tuple[int, int]) -> Iterator[IndexEntry | Rejection]:
    """Rows of `reader`, numbered `before` + the reader's line number (a record's last line)."""
    path_at, label_at = columns
    for row in reader:
        number = before + reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) <= max(path_at, label_at):
            yield Rejection(
                number,
                ",".join(row)[:500],
                "",
                records.UNPARSEABLE_LINE,
                f"expected at least {max(path_at, label_at) + 1} columns, got {len(row)}",
            )
            continue
        path, label = row[path_at].strip(), row[label_at].strip()
        if not path or not label:
            yield Rejection(
                number, path, label, records.UNPARSEABLE_LINE, "empty path or label cell"
            )
            continue
        yield _entry_or_rejection(number, path, label)


def class_folder_pattern(root: str) -> str:
    """The glob of a folder input's images: root/<class>/<file>."""
    return FileSystems.join(root, "*", "*")


def read_index(
    input_uri: str,
    kind: str,
    path_column: str | None = None,
    label_column: str | None = None,
) -> Iterator[IndexEntry | Rejection | SourceInfo]:
    """Reads the whole index in order, in this process (the audit's view; the conversion
    reads it in parallel); yields entries and rejections, then one `SourceInfo` whose hash is
    the conversion's."""
    count = 0
    if kind == "folder":
        root = input_uri.rstrip("/")
        listings = [list_class(root, name) for name in class_folders(root)]
        sha256 = folder_layout((c.name, len(c.relatives), c.sha256) for c in listings).sha256
        for listing in listings:
            for relative in listing.relatives:
                count += 1
                yield IndexEntry(count, canonical_path(relative), listing.name)
    else:
        digest = hashlib.sha256()

        def hashed(lines: Iterable[bytes]) -> Iterator[bytes]:
            for line in lines:
                digest.update(line)
                yield line

        lines = hashed(owned_lines(input_uri, ListSplit(0, 0, None)))
        parsed = parse_csv(lines, path_column, label_column) if kind == "csv" else parse_list(lines)
        for item in parsed:
            count += 1
            yield item
        for _ in lines:  # blank lines after the last row
            pass
        sha256 = digest.hexdigest()
    yield SourceInfo(kind, input_uri, sha256, count)
