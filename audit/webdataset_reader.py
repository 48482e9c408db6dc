"""The sample order of WebDataset's usual reader, computed from the per-shard label sequences
the audit already read (no second read, no webdataset import).

    wds.WebDataset(urls, shardshuffle=S, seed=seed).shuffle(B, initial=I, seed=...)

reads the shard list through a shuffle buffer of S shards, the shards one after another, and
the samples through a buffer of B. Both buffers are webdataset's `filters._shuffle` on
Python's `random.Random(seed)`: fill while taking two items per step until `initial` are
held, then give one item per item taken, chosen by `randint(0, len - 1)` and replaced by the
last; drain at the end. timm's `wds/` training reader is the same with S=500 (initial 100)
and B=8192 (initial 2048). tests/test_webdataset_audit.py checks these orders against the
webdataset package, element for element.

One loader worker is modelled: with W DataLoader workers each reads its own shards and the
batches alternate between workers, which does not mix samples within a batch.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Iterator, Sequence

__all__ = ["buffer_shuffled", "webdataset_order"]


def buffer_shuffled(items: Iterable, bufsize: int, initial: int, rng: random.Random) -> Iterator:
    """webdataset's shuffle filter over `items` with this generator."""
    source = iter(items)
    initial = min(initial, bufsize)
    buffer: list = []

    def take() -> object:
        index = rng.randint(0, len(buffer) - 1)
        chosen = buffer[index]
        buffer[index] = buffer[-1]
        buffer.pop()
        return chosen

    for item in source:
        buffer.append(item)
        if len(buffer) < bufsize:
            buffer.extend(itertools.islice(source, 1))
        if len(buffer) >= initial:
            yield take()
    while buffer:
        yield take()


def webdataset_order(
    shards: Sequence[Sequence],
    *,
    shard_buffer: int,
    shard_initial: int,
    sample_buffer: int,
    sample_initial: int,
    seed: int,
    limit: int,
) -> list:
    """The first `limit` samples the reader yields from shards holding these samples (in name
    order); the shard shuffle uses `random.Random(seed)`, the sample shuffle
    `random.Random(seed + 1)`."""
    order = buffer_shuffled(range(len(shards)), shard_buffer, shard_initial, random.Random(seed))
    samples = itertools.chain.from_iterable(shards[i] for i in order)
    shuffled = buffer_shuffled(samples, sample_buffer, sample_initial, random.Random(seed + 1))
    return list(itertools.islice(shuffled, limit))
