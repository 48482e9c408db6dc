"""A folder input listed one class per worker: root/<class>/<file>.

The driver lists only the class folders (~1,000 for ILSVRC); each worker lists one class
(FileSystems.match on root/<class>/*). An entry's identity stays its rank in the sorted
listing of every image, which the classes' own sorted listings give once the classes are
ordered by `name + "/"` (every path of class c starts with it, so no path of a later class
sorts before one of c: "a-b/..." < "a/..." although "a" < "a-b") and their counts are summed
in that order.

The listing's hash is combined from the classes' (list_splits.combined_sha256 over each class's
SHA-256 of its `relative<TAB>class<LF>` lines, in class order; one class: that hash).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from typing import NamedTuple

from apache_beam.io.filesystems import FileSystems

from imgshard.transforms.list_splits import combined_sha256

__all__ = [
    "ClassListing",
    "FolderLayout",
    "class_folders",
    "class_order",
    "folder_layout",
    "list_class",
]


class ClassListing(NamedTuple):
    name: str
    relatives: tuple[str, ...]  # "class/file", sorted
    sha256: str


class FolderLayout(NamedTuple):
    first_ranks: dict[str, int]  # class -> 1-based rank of its first image
    sha256: str


def class_order(name: str) -> str:
    return name + "/"


def class_folders(root: str) -> list[str]:
    """The class folder names under root (hidden ones excluded), in listing order.

    Local: the directories. gs://: the prefixes one level down (one delimiter listing). Other
    file systems: taken from a full listing (the driver then lists everything once).
    """
    root = root.rstrip("/")
    scheme = FileSystems.get_scheme(root)
    if scheme is None:
        names = [e.name for e in os.scandir(root) if e.is_dir()]
    elif scheme == "gs":
        names = _gcs_prefixes(root)
    else:
        pattern = FileSystems.join(root, "*", "*")
        names = {
            _relative(root, m.path).split("/", 1)[0]
            for m in FileSystems.match([pattern])[0].metadata_list
        }
    return sorted((n for n in names if n and not n.startswith(".")), key=class_order)


def _gcs_prefixes(root: str) -> list[str]:
    from apache_beam.io.gcp import gcsio

    bucket, prefix = gcsio.parse_gcs_path(root + "/", object_optional=True)
    listing = gcsio.GcsIO().client.list_blobs(bucket, prefix=prefix, delimiter="/")
    names = []
    for page in listing.pages:
        names += [p[len(prefix) :].rstrip("/") for p in page.prefixes]
    return names


def _relative(root: str, path: str) -> str:
    return path[len(root) :].lstrip("/") if path.startswith(root) else path


def _listing_line(relative: str, class_name: str) -> bytes:
    return f"{relative}\t{class_name}\n".encode()


def list_class(root: str, name: str) -> ClassListing:
    """The images at root/<name>/<file> (hidden files and deeper levels are not inputs)."""
    root = root.rstrip("/")
    pattern = FileSystems.join(root, name, "*")
    found = []
    for match in FileSystems.match([pattern])[0].metadata_list:
        parts = _relative(root, match.path).split("/")
        if len(parts) != 2 or parts[0] != name or any(p.startswith(".") for p in parts):
            continue
        found.append("/".join(parts))
    found.sort()
    digest = hashlib.sha256()
    for relative in found:
        digest.update(_listing_line(relative, name))
    return ClassListing(name, tuple(found), digest.hexdigest())


def folder_layout(counts: Iterable[tuple[str, int, str]]) -> FolderLayout:
    """(class, images, sha256) per class -> each class's first rank, the combined hash."""
    ordered = sorted(counts, key=lambda c: class_order(c[0]))
    first, next_rank = {}, 1
    for name, images, _ in ordered:
        first[name] = next_rank
        next_rank += images
    return FolderLayout(first, combined_sha256([sha for _, _, sha in ordered]))
