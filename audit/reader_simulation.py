"""The record order of tf.data readers, computed from the per-shard label sequences the audit
already read: no second read of the shards, no TensorFlow, any filesystem.

What is reproduced (TensorFlow's kernels, for a fixed op-level seed):
  - `Dataset.shuffle(buffer, seed)`: ShuffleDatasetOp with a seed generator; the seeds pair
    (global seed, seed) (random_seed.get_seed: the global seed is DEFAULT_GRAPH_SEED 87654321
    when none is set; the trainer sets one, `keras.utils.set_random_seed(seed)`) draws the
    iterator's two seeds from a Philox4x32-10 stream, and the iterator picks
    `Random() % filled` from a buffer it keeps full, swapping the pick with the oldest slot.
  - `interleave(cycle_length, block_length=1, deterministic)`: round robin over the open
    files; an exhausted file's slot takes the next file.
tests/test_audit_readers.py checks the orders against tf.data's, element for element (checked
with TensorFlow 2.21; a release that changed these kernels would fail that test).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence

__all__ = ["PhiloxStream", "interleaved", "reader_order", "shuffled", "tf_seeds"]

_DEFAULT_GRAPH_SEED = 87654321
_MAXINT32 = 2**31 - 1  # random_seed._truncate_seed
_MASK32 = 0xFFFFFFFF
_M0, _M1 = 0xD2511F53, 0xCD9E8D57
_W0, _W1 = 0x9E3779B9, 0xBB67AE85


class PhiloxStream:
    """TF's random::SingleSampleAdapter<PhiloxRandom>: uint32s, four per Philox4x32-10 block."""

    def __init__(self, seed_lo: int, seed_hi: int):
        seed_lo &= (1 << 64) - 1
        seed_hi &= (1 << 64) - 1
        self._key = (seed_lo & _MASK32, seed_lo >> 32)
        self._counter = [0, 0, seed_hi & _MASK32, seed_hi >> 32]
        self._block: list[int] = []

    def _next_block(self) -> list[int]:
        c = list(self._counter)
        k0, k1 = self._key
        for _ in range(10):
            p0, p1 = _M0 * c[0], _M1 * c[2]
            c = [
                (p1 >> 32) ^ c[1] ^ k0,
                p1 & _MASK32,
                (p0 >> 32) ^ c[3] ^ k1,
                p0 & _MASK32,
            ]
            k0, k1 = (k0 + _W0) & _MASK32, (k1 + _W1) & _MASK32
        for i in range(4):  # the 128-bit counter + 1
            self._counter[i] = (self._counter[i] + 1) & _MASK32
            if self._counter[i]:
                break
        return c

    def __call__(self) -> int:
        if not self._block:
            self._block = self._next_block()[::-1]
        return self._block.pop()


def tf_seeds(seed: int, global_seed: int | None = None) -> tuple[int, int]:
    """The (seed, seed2) a shuffle iterator gets from `shuffle(..., seed=seed)` under
    `tf.random.set_seed(global_seed)` (None: no global seed set)."""
    first = _DEFAULT_GRAPH_SEED if global_seed is None else global_seed % _MAXINT32
    second = seed % _MAXINT32
    if first == 0 and second == 0:  # random_seed.get_seed avoids the all-zero pair
        second = _MAXINT32
    generator = PhiloxStream(first, second)
    return generator(), generator()


def shuffled(
    items: Iterable, buffer_size: int, seed: int, global_seed: int | None = None
) -> Iterator:
    """`Dataset.shuffle(buffer_size, seed)` over `items`, one epoch, lazily (a ring buffer
    exactly as ShuffleDatasetOp keeps it)."""
    random = PhiloxStream(*tf_seeds(seed, global_seed))
    ring: list = [None] * buffer_size
    start = end = 0
    source = iter(items)
    exhausted = False
    while True:
        while not exhausted and end - start < buffer_size:
            try:
                ring[end % buffer_size] = next(source)
                end += 1
            except StopIteration:
                exhausted = True
        if end == start:
            return
        index = (start + random() % (end - start)) % buffer_size
        yield ring[index]
        ring[index] = ring[start % buffer_size]
        start += 1


def interleaved(sequences: Iterable[Iterable], cycle_length: int) -> Iterator:
    """`interleave(..., cycle_length, block_length=1)` over `sequences`, in order, lazily."""
    pending = iter(sequences)
    slots: list = [None] * cycle_length
    open_count, exhausted, index = 0, False, 0
    while not exhausted or open_count:
        slot = slots[index]
        if slot is not None:
            try:
                yield next(slot)
            except StopIteration:
                slots[index] = None
                open_count -= 1
            index = (index + 1) % cycle_length
        elif not exhausted:
            try:
                slots[index] = iter(next(pending))
                open_count += 1
            except StopIteration:
                exhausted = True
        else:
            index = (index + 1) % cycle_length


def reader_order(
    shards: Sequence[Sequence],
    *,
    interleave: bool,
    cycle_length: int,
    shuffle_buffer: int,
    seed: int,
    limit: int,
    global_seed: int | None = None,
) -> list:
    """The first `limit` elements the trainer's reader (`interleave`) or the sequential
    reader yields from shards holding these elements (trainer/input_pipeline.py), under
    `tf.random.set_seed(global_seed)`."""
    files = [
        shards[i] for i in shuffled(range(len(shards)), max(1, len(shards)), seed, global_seed)
    ]
    if interleave:
        records = interleaved(files, min(cycle_length, len(files)))
    else:
        records = itertools.chain.from_iterable(files)
    return list(itertools.islice(shuffled(records, shuffle_buffer, seed, global_seed), limit))
