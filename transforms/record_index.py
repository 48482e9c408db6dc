"""Random-access index files of TFRecord shards (`--index-files`).

DALI's `fn.readers.tfrecord` and the PyTorch `tfrecord` package read a shard at any record
through an index: one `offset length` line per record, in bytes, where length is the whole
frame (12 header + data + 4 CRC bytes). Their `tfrecord2idx` tools make it by reading every
shard again; the writer already knows each frame's size, so it writes the same bytes as it
goes (tests/test_index_files.py compares them with the `tfrecord` package's tool).

The index of `train-00000-of-01024.tfrecord` is `train-00000-of-01024.tfrecord.idx`, beside it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from imgshard.transforms.storage import atomic_output

__all__ = ["INDEX_SUFFIX", "index_bytes", "index_name", "write_index"]

INDEX_SUFFIX = ".idx"


def index_name(shard_name: str) -> str:
    return shard_name + INDEX_SUFFIX


def index_bytes(frame_sizes: Iterable[int]) -> bytes:
    """`offset length\\n` per record, exactly as tfrecord2idx writes them."""
    lines, offset = [], 0
    for size in frame_sizes:
        lines.append(f"{offset} {size}\n")
        offset += size
    return "".join(lines).encode("ascii")


def write_index(path: str, frame_sizes: Iterable[int]) -> tuple[int, str]:
    """Writes the index atomically; returns its (size, SHA-256)."""
    data = index_bytes(frame_sizes)
    with atomic_output(path) as f:
        f.write(data)
    return len(data), hashlib.sha256(data).hexdigest()
