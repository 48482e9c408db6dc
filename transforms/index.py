"""Reading the image index: a `path label` list, a CSV with a header, or a class-folder tree.

Every input becomes an `IndexEntry` or a `Rejection` (a line that cannot be parsed); the list
is read once, front to back, so line numbers are exact and a report can point at the line.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os.path
import posixpath
from collections.abc import Iterable, Iterator

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from imgshard.transforms import records
from imgshard.transforms.records import IndexEntry, Rejection, SourceInfo

__all__ = [
    "canonical_path",
    "class_folder_pattern",
    "detect_kind",
    "input_sha256",
    "parse_csv",
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


def parse_list(lines: Iterable[bytes]) -> Iterator[IndexEntry | Rejection]:
    """Parses `path label` lines (Caffe / ILSVRC train.txt).

    The label is the last whitespace-separated token, so paths may contain spaces. Blank
    lines and lines starting with '#' are not inputs and are skipped.
    """
    for number, raw in enumerate(lines, start=1):
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


def parse_csv(
    lines: Iterable[bytes], path_column: str | None = None, label_column: str | None = None
) -> Iterator[IndexEntry | Rejection]:
    """Parses a CSV whose header names a path column and a label column.

    Without explicit names, the first header matching a usual name is taken (path, filename,
    file, image ...; label, class, synset ...). Line numbers count the header as line 1.
    """
    text_lines = (raw.decode("utf-8-sig", errors="replace") for raw in lines)
    reader = csv.reader(text_lines)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return
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

    path_at = pick(path_column, _PATH_COLUMNS, "path")
    label_at = pick(label_column, _LABEL_COLUMNS, "label")
    for row in reader:
        number = reader.line_num
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


def _list_folder(root: str) -> list[tuple[str, str]]:
    """(relative path, class name) for every file at root/<class>/<file>, sorted."""
    pattern = class_folder_pattern(root)
    found = []
    for match in FileSystems.match([pattern])[0].metadata_list:
        relative = (
            match.path[len(root) :].lstrip("/") if match.path.startswith(root) else match.path
        )
        parts = relative.split("/")
        if len(parts) != 2 or any(p.startswith(".") for p in parts):
            continue  # hidden files (.DS_Store ...) and deeper levels are not inputs
        found.append((relative, parts[0]))
    return sorted(found)


def _folder_line(relative: str, class_name: str) -> bytes:
    return f"{relative}\t{class_name}\n".encode()


def input_sha256(input_uri: str, kind: str) -> str:
    """The SHA-256 that read_index records for this input, without parsing it."""
    digest = hashlib.sha256()
    if kind == "folder":
        for relative, class_name in _list_folder(input_uri.rstrip("/")):
            digest.update(_folder_line(relative, class_name))
    else:
        with FileSystems.open(input_uri, compression_type=CompressionTypes.AUTO) as f:
            while chunk := f.read(8 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def read_index(
    input_uri: str,
    kind: str,
    path_column: str | None = None,
    label_column: str | None = None,
) -> Iterator[IndexEntry | Rejection | SourceInfo]:
    """Reads the whole index; yields entries and rejections, then one `SourceInfo`."""
    digest = hashlib.sha256()
    count = 0
    if kind == "folder":
        root = input_uri.rstrip("/")
        for number, (relative, class_name) in enumerate(_list_folder(root), start=1):
            digest.update(_folder_line(relative, class_name))
            count += 1
            yield IndexEntry(number, canonical_path(relative), class_name)
    else:
        with FileSystems.open(input_uri, compression_type=CompressionTypes.AUTO) as f:
            data = f.read()
        digest.update(data)
        lines = io.BytesIO(data).readlines()
        parsed = parse_csv(lines, path_column, label_column) if kind == "csv" else parse_list(lines)
        for item in parsed:
            count += 1
            yield item
    yield SourceInfo(kind, input_uri, digest.hexdigest(), count)
