"""The packed index entry that crosses GroupByShard (records.pack_shard_entry)."""

import struct

import pytest
from apache_beam.coders import coders

from imgshard.transforms.records import IndexEntry, pack_shard_entry, unpack_shard_entry


@pytest.mark.parametrize(
    "entry",
    [
        (0, 1, "a.jpg", 0),
        (2**64 - 1, 2**63, "n01440764/n01440764_10026.JPEG", 999),
        (12345, 7, "dossier é/фото 1.png", 2**32 - 1),  # spaces, non-ASCII
        (5, 3, "", 1),
    ],
)
def test_unpack_returns_what_was_packed(entry):
    assert unpack_shard_entry(pack_shard_entry(*entry)) == entry


def test_out_of_range_values_are_refused_not_truncated():
    with pytest.raises(struct.error):
        pack_shard_entry(2**64, 1, "a.jpg", 0)
    with pytest.raises(struct.error):
        pack_shard_entry(1, 1, "a.jpg", -1)


def test_shuffled_and_buffered_forms_are_smaller_than_the_tuples_they_replace():
    coder = coders.FastPrimitivesCoder()
    path, label = "n01440764/n01440764_10026.JPEG", "n01440764"
    as_tuple = (2**63 + 1, 1_000_000, path, 417)
    packed = pack_shard_entry(*as_tuple)
    assert len(coder.encode((700, packed))) < len(coder.encode((700, as_tuple)))
    # what ReadIndex emits: a NamedTuple is pickled by Beam's coder, a plain tuple is not
    entry = IndexEntry(1_000_000, path, label)
    assert len(coder.encode(tuple(entry))) < len(coder.encode(entry)) / 2
