"""WebDataset shards (`--format webdataset`): tar files of `{key}.jpg`, `{key}.cls`, `{key}.json`
for PyTorch readers (`webdataset`, `wids`, timm's `wds/` reader, OpenCLIP).

The tar bytes depend on nothing but the records: USTAR headers with mtime 0, owner 0:0, no
user or group names, mode 0644, members in sample order (jpg, cls, json), the archive closed
by two zero blocks and padded to tar's 10 KiB record size, as `tar` and Python's tarfile do.
Headers are made by tarfile's TarInfo; the archive is written straight onto the shard's
stream, so it works on any stream Beam opens (nothing seeks).

Keys are `{shard:05d}-{index:06d}-{stem}`: the shard and the sample's position in it make them
unique across the split whatever the input file names are (two classes may both hold
`1.jpg`); the stem of the source file, with every character outside `[A-Za-z0-9_-]` replaced
by `_` and cut to 48, keeps them readable. They never hold a dot: WebDataset splits a member
name at its first dot.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from collections.abc import Iterator, Sequence
from typing import BinaryIO, NamedTuple

__all__ = [
    "MEMBER_EXTENSIONS",
    "WebDatasetSample",
    "WebDatasetShardWriter",
    "iter_tar_members",
    "sample_json",
    "sample_key",
    "webdataset_sample",
]

MEMBER_EXTENSIONS = ("jpg", "cls", "json")
MTIME = 0
MODE = 0o644
_BLOCK = tarfile.BLOCKSIZE
_RECORD = tarfile.RECORDSIZE
_STEM_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_STEM_LENGTH = 48


class WebDatasetSample(NamedTuple):
    """One sample before its key is known: the source path and its members by extension."""

    path: str
    members: dict[str, bytes]


def sample_key(shard: int, index: int, path: str) -> str:
    stem = path.rsplit("/", 1)[-1].rsplit(".", 1)[0] if path else ""
    stem = _STEM_CHARS.sub("_", stem)[:_STEM_LENGTH]
    return f"{shard:05d}-{index:06d}" + (f"-{stem}" if stem else "")


def sample_json(
    class_name: str,
    label: int,
    path: str,
    width: int,
    height: int,
    boxes: Sequence[tuple[float, float, float, float]] | None,
) -> bytes:
    """The `.json` member: what the TFRecord's other features hold, as one small object."""
    value = {
        "class": class_name,
        "label": label,
        "path": path,
        "width": width,
        "height": height,
    }
    if boxes is not None:  # [xmin, ymin, xmax, ymax], normalized, as image/object/bbox/*
        value["boxes"] = [[float(c) for c in box] for box in boxes]
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def webdataset_sample(
    encoded: bytes,
    height: int,
    width: int,
    channels: int,
    label: int,
    class_name: str,
    filename: str,
    boxes: Sequence[tuple[float, float, float, float]] | None = None,
) -> WebDatasetSample:
    """The sample of one image: image_example's arguments, WebDataset's members."""
    del channels  # the JPEG holds it
    return WebDatasetSample(
        filename,
        {
            "jpg": encoded,
            "cls": str(label).encode("ascii"),
            "json": sample_json(class_name, label, filename, width, height, boxes),
        },
    )


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = MTIME
    info.mode = MODE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")


class WebDatasetShardWriter:
    """The TFRecordWriter interface (write, records, bytes, sha256) for one tar shard; as a
    context manager, ends the archive on a clean exit.

    Args:
      stream: the shard's output stream.
      shard: the shard's number, the first part of every key.
    """

    def __init__(self, stream: BinaryIO, shard: int):
        self._stream = stream
        self._shard = shard
        self.records = 0
        self.bytes = 0
        self._sha256 = hashlib.sha256()

    def _put(self, data: bytes) -> None:
        self._stream.write(data)
        self._sha256.update(data)
        self.bytes += len(data)

    def write(self, sample: WebDatasetSample) -> None:
        key = sample_key(self._shard, self.records, sample.path)
        for extension in MEMBER_EXTENSIONS:
            data = sample.members[extension]
            self._put(_header(f"{key}.{extension}", len(data)))
            self._put(data)
            if len(data) % _BLOCK:
                self._put(b"\0" * (_BLOCK - len(data) % _BLOCK))
        self.records += 1

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    def __enter__(self) -> WebDatasetShardWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            end = self.bytes + 2 * _BLOCK
            self._put(b"\0" * (2 * _BLOCK + (-end) % _RECORD))


class _StrictTarInfo(tarfile.TarInfo):
    """A header that fails loudly. Python's tarfile takes a bad header after the first for the
    end of the archive and stops without a word, so a shard with one corrupt header would
    read as a shorter, valid one. Only a zero block (the end-of-archive marker) ends it here."""

    @classmethod
    def fromtarfile(cls, tarfile_):
        offset = tarfile_.offset
        try:
            return super().fromtarfile(tarfile_)
        except tarfile.EOFHeaderError:
            raise
        except tarfile.EmptyHeaderError:
            if offset == 0:
                raise
            raise tarfile.ReadError(
                f"the archive ends at byte {offset} without its end-of-archive blocks "
                "(truncated at a member boundary?)"
            ) from None
        except tarfile.HeaderError as e:
            raise tarfile.ReadError(f"bad tar header at byte {offset}: {e}") from None


def iter_tar_members(stream: BinaryIO) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every regular file of a tar stream, in order, read sequentially.

    Raises tarfile.TarError for broken framing (a truncated archive, a bad header checksum,
    an archive without its end-of-archive blocks).
    """
    with tarfile.open(fileobj=stream, mode="r|", tarinfo=_StrictTarInfo) as archive:
        for member in archive:
            if not member.isfile():
                continue
            extracted = archive.extractfile(member)
            data = extracted.read() if extracted else b""
            if len(data) != member.size:
                raise tarfile.ReadError(
                    f"{member.name}: truncated ({len(data)} of {member.size} bytes)"
                )
            yield member.name, data
