"""Shard file names: one function makes them, one parses them, and every reader agrees."""

import os
import time

import pytest

from imgshard.pipeline import metadata
from imgshard.pipeline.options import ConvertConfig
from imgshard.pipeline.progress import ShardProgress
from imgshard.transforms.record_index import index_name
from imgshard.transforms.shard_names import (
    MAX_SHARDS,
    ShardName,
    parse_shard_name,
    shard_glob,
    shard_name,
)


def test_names_are_fixed_width_and_parse_back():
    assert shard_name("train", 3, 1024) == "train-00003-of-01024.tfrecord"
    assert shard_name("a-b", 0, 1, "array_record") == "a-b-00000-of-00001.array_record"
    assert parse_shard_name("a-b-00000-of-00001.array_record") == ShardName(
        "a-b", 0, 1, "array_record"
    )
    last = shard_name("train", MAX_SHARDS - 1, MAX_SHARDS)
    assert parse_shard_name(last) == ShardName("train", MAX_SHARDS - 1, MAX_SHARDS, "tfrecord")
    names = [shard_name("train", i, 12) for i in range(12)]
    assert sorted(names) == names  # name order is shard order


@pytest.mark.parametrize(
    "name",
    [
        "train-00000-of-00004.tfrecord.idx",
        ".train-00000-of-00004.tfrecord.tmp-0123abcd",
        "train-rejected.jsonl",
        "train-0-of-4.tfrecord",
        "train-00000-of-00004",
        "dataset.json",
    ],
)
def test_other_files_are_not_shards(name):
    assert parse_shard_name(name) is None


def test_counts_beyond_five_digits_are_refused():
    with pytest.raises(ValueError):
        shard_name("train", 0, MAX_SHARDS + 1)
    with pytest.raises(ValueError):
        shard_name("train", 4, 4)
    with pytest.raises(ValueError, match="99999"):
        ConvertConfig(input="/l.txt", output="/o", num_shards=MAX_SHARDS + 1)


def test_the_glob_matches_what_the_writer_names():
    import fnmatch

    name = shard_name("train", 1, 2)
    assert fnmatch.fnmatch(name, shard_glob("train", "tfrecord"))
    assert fnmatch.fnmatch(index_name(name), shard_glob("train"))
    assert not fnmatch.fnmatch(
        shard_name("train", 1, 2, "array_record"), shard_glob("train", "tfrecord")
    )


def test_progress_counts_only_the_shards_of_its_split(tmp_path):
    # `train-*-of-*` also matches the shards of a split named "train-extra"
    for i in range(3):
        (tmp_path / shard_name("train-extra", i, 3)).write_bytes(b"x" * 1000)
    (tmp_path / shard_name("train", 0, 4)).write_bytes(b"y" * 100)
    (tmp_path / index_name(shard_name("train", 0, 4))).write_bytes(b"0 10\n")
    progress = ShardProgress(str(tmp_path), "train")
    progress._started = time.time()  # as __enter__ does, without the watching thread
    assert progress._count() == (1, 0, 4, 100)  # (written, kept, total, bytes)


def test_stale_shards_of_both_formats_and_their_indexes_are_removed(tmp_path):
    keep = shard_name("train", 0, 1)
    stale = [
        shard_name("train", 0, 2),
        index_name(shard_name("train", 0, 2)),
        shard_name("train", 1, 2, "array_record"),
    ]
    other_split = shard_name("validation", 0, 1)
    for name in [keep, *stale, other_split]:
        (tmp_path / name).write_bytes(b"x")
    removed = metadata.remove_stale_files(str(tmp_path), "train", [keep])
    assert sorted(os.path.basename(p) for p in removed) == sorted(stale)
    assert sorted(os.listdir(tmp_path)) == sorted([keep, other_split])
