"""Bounding boxes (`--boxes`): read the ILSVRC release, follow the image through the converter.

Two sources, both matched to images by file name without its extension
(`n01440764_10026.JPEG` <- `n01440764_10026.xml` or the CSV row `n01440764_10026.JPEG,...`):

- a folder of Pascal-VOC XML files, the ILSVRC bbox release (`<dir>/nXXXXXXXX/*.xml` for
  train, `<dir>/*.xml` for validation): pixel corners relative to the `<size>` the annotator
  saw, which this module normalizes by that size, as tf/models' `process_bounding_boxes.py`
  does;
- the CSV that script writes: `file name,xmin,ymin,xmax,ymax`, already normalized.

Every box is clipped to [0, 1] with its corners ordered; a box with no area is dropped. Boxes
are in the frame of the stored pixels; `transform_boxes` carries them through what the
converter does to the image (EXIF orientation, the center crop of `fixed:`; a resize of the
whole image leaves normalized coordinates as they are).
"""

from __future__ import annotations

import csv
import hashlib
import io
import struct
import xml.etree.ElementTree as ET
from collections.abc import Iterator

from apache_beam.io.filesystems import FileSystems

__all__ = [
    "Box",
    "BoxesError",
    "box_files",
    "boxes_key",
    "boxes_source_sha256",
    "check_and_hash_csv",
    "merge_boxes",
    "read_box_file",
    "read_boxes",
    "transform_boxes",
]

Box = tuple[float, float, float, float]  # xmin, ymin, xmax, ymax, normalized


class BoxesError(ValueError):
    """The --boxes source cannot be read (its path and what is wrong are in the message)."""


_NO_XML = (
    "--boxes {uri} holds no *.xml files (nor */*.xml); give the folder of the ILSVRC bbox "
    "release or the CSV of process_bounding_boxes.py"
)


def boxes_key(path: str) -> str:
    """What an image and its boxes are matched by: the file name without its extension."""
    name = path.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[0] if "." in name else name


def _is_csv(uri: str) -> bool:
    return uri.lower().endswith(".csv")


def _xml_files(folder: str) -> list[str]:
    patterns = [FileSystems.join(folder, "*.xml"), FileSystems.join(folder, "*", "*.xml")]
    found = FileSystems.match(patterns)
    return sorted(m.path for result in found for m in result.metadata_list)


def _clip(x0: float, y0: float, x1: float, y1: float) -> Box | None:
    """Corners ordered, clipped to [0, 1] and rounded to float32 (what a record holds); None
    when nothing of the box is left."""
    xs = sorted(min(max(v, 0.0), 1.0) for v in (x0, x1))
    ys = sorted(min(max(v, 0.0), 1.0) for v in (y0, y1))
    box = struct.unpack("<4f", struct.pack("<4f", xs[0], ys[0], xs[1], ys[1]))
    return box if box[0] < box[2] and box[1] < box[3] else None


def _number(node: ET.Element, tag: str, where: str) -> float:
    text = node.findtext(tag)
    try:
        return float(text)
    except (TypeError, ValueError):
        raise BoxesError(f"{where}: <{tag}> is {text!r}, not a number") from None


def parse_voc_xml(data: bytes, where: str) -> list[Box]:
    """The boxes of one Pascal-VOC annotation, normalized by its <size>."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise BoxesError(f"{where}: not well-formed XML ({e})") from None
    size = root.find("size")
    if size is None:
        raise BoxesError(f"{where}: no <size> to normalize the boxes by")
    width, height = _number(size, "width", where), _number(size, "height", where)
    if width <= 0 or height <= 0:
        raise BoxesError(f"{where}: <size> is {width:g}x{height:g}")
    boxes = []
    for bndbox in root.iter("bndbox"):
        corners = [_number(bndbox, tag, where) for tag in ("xmin", "ymin", "xmax", "ymax")]
        box = _clip(
            corners[0] / width, corners[1] / height, corners[2] / width, corners[3] / height
        )
        if box:
            boxes.append(box)
    return boxes


# process_bounding_boxes.py writes corners divided by the image size; allow float rounding.
_NORMALIZED_SLACK = 1e-3


def _csv_rows(uri: str, data: bytes) -> Iterator[tuple[str, Box | None]]:
    text = data.decode("utf-8-sig")
    for number, row in enumerate(csv.reader(io.StringIO(text)), 1):
        if not row or not "".join(row).strip():
            continue
        if len(row) != 5:
            raise BoxesError(
                f"{uri} line {number}: expected 'file name,xmin,ymin,xmax,ymax', got {row!r}"
            )
        try:
            corners = [float(v) for v in row[1:]]
        except ValueError:
            if number == 1:  # a header
                continue
            raise BoxesError(f"{uri} line {number}: the corners are not numbers: {row!r}") from None
        if not all(-_NORMALIZED_SLACK <= v <= 1 + _NORMALIZED_SLACK for v in corners):
            # pixel corners would be clipped to nothing and dropped without a word
            raise BoxesError(
                f"{uri} line {number}: the corners {row[1:]} are not within [0, 1]; the CSV "
                "holds corners divided by the image size (as process_bounding_boxes.py writes "
                "them), not pixels"
            )
        yield boxes_key(row[0].strip()), _clip(*corners)


def box_files(uri: str) -> list[str]:
    """The files to read: the CSV itself, or every XML file of the folder (sorted)."""
    if _is_csv(uri):
        return [uri]
    files = _xml_files(uri)
    if not files:
        raise BoxesError(_NO_XML.format(uri=uri))
    return files


def read_box_file(path: str) -> Iterator[tuple[str, tuple[Box, ...]]]:
    """(file name without extension, its boxes) for each image one box file annotates."""
    try:
        with FileSystems.open(path) as f:
            data = f.read()
    except Exception as e:
        raise BoxesError(f"--boxes {path} cannot be read: {e}") from None
    if not _is_csv(path):
        yield boxes_key(path), tuple(parse_voc_xml(data, path))
        return
    by_key: dict[str, list[Box]] = {}
    for key, box in _csv_rows(path, data):
        by_key.setdefault(key, [])
        if box:
            by_key[key].append(box)
    for key, boxes in by_key.items():
        yield key, tuple(boxes)


def merge_boxes(groups) -> tuple[Box, ...]:
    """The boxes of one image from all the files that annotate it (e.g. the same file name in
    two class folders), in sorted order: the same result whatever order the files are read in
    (a Beam combiner may see them in any order, and partially merged)."""
    return tuple(sorted(box for group in groups for box in group))


def read_boxes(uri: str) -> Iterator[tuple[str, tuple[Box, ...]]]:
    """(file name without extension, its boxes) for every annotated image of `uri`, a CSV file
    or a folder of VOC XML files, sorted by name. Raises BoxesError on an unreadable source
    or entry. (The conversion job reads the files in parallel with the same functions.)"""
    by_key: dict[str, list[tuple[Box, ...]]] = {}
    for path in box_files(uri):
        for key, boxes in read_box_file(path):
            by_key.setdefault(key, []).append(boxes)
    for key in sorted(by_key):
        yield key, merge_boxes(by_key[key])


def check_and_hash_csv(uri: str) -> str:
    """The sha256 of the CSV's bytes, after checking every row (a BoxesError names the file
    and line): one read of one file, before the job starts, so a bad row never fails the job
    half-way nor leaves a journal behind."""
    try:
        with FileSystems.open(uri) as f:
            data = f.read()
    except Exception as e:
        raise BoxesError(f"--boxes {uri} cannot be read: {e}") from None
    for _ in _csv_rows(uri, data):
        pass
    return hashlib.sha256(data).hexdigest()


def boxes_source_sha256(uri: str) -> str:
    """Identifies the boxes a run used, for --resume.

    A CSV: its bytes (and every row is checked, see check_and_hash_csv). An XML folder: the
    sorted names, sizes and last-modified times of its files, from one listing. Reading the
    files' contents would cost minutes for the ~545k files of the ILSVRC release (hours on
    gs://, one request each), while an edit in place, even one keeping the size
    (`<xmin>20</xmin>` -> `<xmin>30</xmin>`), changes the modification time (on gs:// the
    object's update time). Not noticed: a file replaced by one of the same size and time
    (e.g. `cp -p` of an edited copy).
    """
    if _is_csv(uri):
        return check_and_hash_csv(uri)
    patterns = [FileSystems.join(uri, "*.xml"), FileSystems.join(uri, "*", "*.xml")]
    found = sorted(
        (m.path[len(uri) :], m.size_in_bytes, m.last_updated_in_seconds)
        for result in FileSystems.match(patterns)
        for m in result.metadata_list
    )
    if not found:
        raise BoxesError(_NO_XML.format(uri=uri))
    digest = hashlib.sha256()
    for name, size, modified in found:
        digest.update(f"{name}\0{size}\0{modified!r}\n".encode())
    return digest.hexdigest()


def _orient(x: float, y: float, orientation: int) -> tuple[float, float]:
    """A normalized point of the stored pixels -> where EXIF `orientation` shows it."""
    return {
        1: (x, y),
        2: (1 - x, y),  # mirrored left-right
        3: (1 - x, 1 - y),  # rotated 180
        4: (x, 1 - y),  # mirrored top-bottom
        5: (y, x),  # transposed
        6: (1 - y, x),  # shown rotated 90 clockwise
        7: (1 - y, 1 - x),  # transversed
        8: (y, 1 - x),  # shown rotated 90 counter-clockwise
    }[orientation]


def transform_boxes(
    boxes: tuple[Box, ...],
    orientation: int = 1,
    crop: Box | None = None,
) -> list[Box]:
    """Boxes of the stored pixels -> boxes of the record's image.

    Args:
      orientation: the EXIF orientation the converter applied (1: none).
      crop: the part of the oriented image that was kept, normalized (fixed: sizes), or None.

    Returns:
      The boxes that still cover some of the output, clipped to it; in input order.
    """
    out = []
    for x0, y0, x1, y1 in boxes:
        (ax, ay), (bx, by) = _orient(x0, y0, orientation), _orient(x1, y1, orientation)
        if crop is not None:
            left, top, right, bottom = crop
            w, h = right - left, bottom - top
            ax, bx = (ax - left) / w, (bx - left) / w
            ay, by = (ay - top) / h, (by - top) / h
        box = _clip(ax, ay, bx, by)
        if box:
            out.append(box)
    return out
