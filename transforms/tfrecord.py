"""TFRecord framing.

A TFRecord file is a sequence of
  uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)
(little-endian). Beam's WriteToTFRecord frames records the same way, but it cannot write one
file per group from inside a DoFn, which is what lets us decode images after the shuffle.
"""

from __future__ import annotations

import hashlib
import struct
from array import array
from collections.abc import Iterator
from typing import BinaryIO

import google_crc32c

__all__ = ["TFRecordWriter", "iter_records", "masked_crc32c"]

_MASK_DELTA = 0xA282EAD8


def masked_crc32c(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


class TFRecordWriter:
    """Frames records onto a binary stream, keeping a running size and SHA-256."""

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        self.records = 0
        self.bytes = 0
        self.frame_sizes = array("q")  # of every record's frame, for an index file
        self._sha256 = hashlib.sha256()

    def write(self, data: bytes) -> None:
        length = struct.pack("<Q", len(data))
        frame = b"".join(
            (
                length,
                struct.pack("<I", masked_crc32c(length)),
                data,
                struct.pack("<I", masked_crc32c(data)),
            )
        )
        self._stream.write(frame)
        self._sha256.update(frame)
        self.records += 1
        self.bytes += len(frame)
        self.frame_sizes.append(len(frame))

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()


class CorruptRecordError(ValueError):
    """A TFRecord frame is truncated or fails its CRC."""


def iter_records(stream: BinaryIO, verify: bool = True) -> Iterator[bytes]:
    """Yields the records of a TFRecord stream, checking both CRCs of every frame."""
    offset = 0
    while True:
        header = stream.read(12)
        if not header:
            return
        if len(header) < 12:
            raise CorruptRecordError(f"truncated header at byte {offset}")
        length_bytes, (length_crc,) = header[:8], struct.unpack("<I", header[8:])
        if verify and masked_crc32c(length_bytes) != length_crc:
            raise CorruptRecordError(f"length CRC mismatch at byte {offset}")
        (length,) = struct.unpack("<Q", length_bytes)
        body = stream.read(length + 4)
        if len(body) < length + 4:
            raise CorruptRecordError(f"truncated record at byte {offset}")
        data, (data_crc,) = body[:length], struct.unpack("<I", body[length:])
        if verify and masked_crc32c(data) != data_crc:
            raise CorruptRecordError(f"data CRC mismatch in record at byte {offset}")
        offset += 12 + length + 4
        yield data
