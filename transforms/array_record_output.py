"""ArrayRecord shards (`--format array_record`) for Grain / JAX readers.

The records are the same serialized `tf.train.Example`s as in the TFRecord shards, in the same
order. The ArrayRecord writer (PyPI `array-record`, imported only when this format is used)
writes to a local path, so a shard is written to a local temporary file first and then copied
into the shard's atomic output stream (local or gs://): the file still appears whole or not at
all. Options: `group_size:1`, what Grain's random access wants (one record per chunk), and no
compression (the payload is JPEG, which does not compress).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from typing import BinaryIO

__all__ = [
    "ARRAY_RECORD_OPTIONS",
    "ArrayRecordShardWriter",
    "MISSING_PACKAGE",
    "available",
    "read_array_records",
    "remove_stale_temporary_folders",
]

ARRAY_RECORD_OPTIONS = "group_size:1,uncompressed"
_COPY_CHUNK = 8 << 20


# imgshard is not on PyPI: the extra is installed from the clone
MISSING_PACKAGE = (
    "ArrayRecord shards need the array-record package: in the imgshard clone, run "
    "`.venv/bin/pip install -e '.[array-record]'` (or `make install-dev`, which includes it)"
)


def _module():
    try:
        from array_record.python import array_record_module
    except ImportError as e:
        raise ImportError(MISSING_PACKAGE) from e
    return array_record_module


# Temporary folders are named with the writing process's id, so a later writer can remove
# those of processes that are gone (killed workers never ran their cleanup).
_TMP_PREFIX = "imgshard-array-record-"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temporary_folders(parent: str | None = None) -> list[str]:
    """Removes the temporary folders (under `parent`, default the system's temporary folder)
    of ArrayRecord writers and readers whose process no longer runs; returns them."""
    parent = parent or tempfile.gettempdir()
    removed = []
    try:
        names = os.listdir(parent)
    except OSError:
        return removed
    for name in sorted(names):
        if not name.startswith(_TMP_PREFIX):
            continue
        pid = name[len(_TMP_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
            removed.append(os.path.join(parent, name))
    return removed


def _temporary_folder() -> str:
    remove_stale_temporary_folders()
    return tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{os.getpid()}-")


def available() -> bool:
    try:
        _module()
    except ImportError:
        return False
    return True


class ArrayRecordShardWriter:
    """The TFRecordWriter interface (write, records, bytes, sha256) for one ArrayRecord file;
    as a context manager, publishes the finished file into `stream` on a clean exit."""

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        self._dir = _temporary_folder()
        self._path = os.path.join(self._dir, "shard.array_record")
        self._writer = _module().ArrayRecordWriter(self._path, ARRAY_RECORD_OPTIONS)
        self.records = 0
        self.bytes = 0
        self._sha256 = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self._writer.write(data)
        self.records += 1

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    def __enter__(self) -> ArrayRecordShardWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        try:
            self._writer.close()
            if kind is None:
                with open(self._path, "rb") as f:
                    while chunk := f.read(_COPY_CHUNK):
                        self._stream.write(chunk)
                        self._sha256.update(chunk)
                        self.bytes += len(chunk)
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)


def read_array_records(path: str, batch: int = 256):
    """Yields the records of an ArrayRecord file (local or gs://, copied to a local temporary
    file first: the reader opens local paths only), a batch of records in memory at a time."""
    from apache_beam.io.filesystems import FileSystems

    module = _module()
    folder = _temporary_folder()
    try:
        local = path
        if "://" in path:
            local = os.path.join(folder, "shard.array_record")
            with FileSystems.open(path) as src, open(local, "wb") as dst:
                shutil.copyfileobj(src, dst, _COPY_CHUNK)
        reader = module.ArrayRecordReader(local)
        try:
            count = reader.num_records()
            for start in range(0, count, batch):
                yield from reader.read(list(range(start, min(start + batch, count))))
        finally:
            reader.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
