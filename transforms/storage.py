"""File helpers every writer shares: files that appear whole or not at all, and removal that
works the same on local disk and gs://. All go through Beam's FileSystems."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

__all__ = ["TMP_MARKER", "atomic_output", "remove_files", "remove_tree"]

TMP_MARKER = ".tmp-"


@contextlib.contextmanager
def atomic_output(path: str) -> Iterator[BinaryIO]:
    """Opens `path` for writing so that it appears complete or not at all.

    Writes go to a hidden temporary file beside `path` (glob patterns such as
    `train-*.tfrecord` never match it), renamed over `path` once closed. On local disk the
    rename is atomic; on GCS an object is only visible once its upload completes, so the
    rename (copy) publishes a whole object too. A retried writer simply replaces the file.
    """
    directory, name = FileSystems.split(path)
    tmp = FileSystems.join(directory, f".{name}{TMP_MARKER}{uuid.uuid4().hex}")
    stream = FileSystems.create(tmp, compression_type=CompressionTypes.UNCOMPRESSED)
    try:
        yield stream
        stream.close()
        FileSystems.rename([tmp], [path])
    except BaseException:
        stream.close()
        with contextlib.suppress(Exception):
            FileSystems.delete([tmp])
        raise


def remove_files(paths: Iterable[str]) -> None:
    """Deletes those of `paths` that exist."""
    present = [p for p in paths if FileSystems.exists(p)]
    if present:
        FileSystems.delete(present)


def remove_tree(path: str) -> None:
    """Deletes a folder (local) or every object under a prefix (gs://), if it exists."""
    if "://" in path:  # a prefix is no object: exists() is False and delete() needs the objects
        found = FileSystems.match([FileSystems.join(path, "**")])[0].metadata_list
        if found:
            FileSystems.delete([m.path for m in found])
    elif FileSystems.exists(path):
        FileSystems.delete([path])
