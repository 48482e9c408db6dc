"""Finalize gets combined counts: one small row per shard and the label counts summed."""

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from helpers import IN_PROCESS, convert, shard_files, sorted_dataset
from imgshard.pipeline.combiners import SumLabelCounts
from imgshard.pipeline.graph import _shard_row
from imgshard.transforms.records import ShardResult
from imgshard.transforms.tfrecord import iter_records


def shard(number: int, counts: dict[int, int]) -> ShardResult:
    return ShardResult(number, f"s{number}", sum(counts.values()), 10, "ab", counts, 20)


def test_label_counts_are_summed_across_shards_by_a_combine():
    shards = [shard(i, {i % 3: 2, 5: 1}) for i in range(30)]
    with beam.Pipeline(argv=IN_PROCESS) as p:
        totals = p | beam.Create(shards) | beam.CombineGlobally(SumLabelCounts())
        assert_that(totals, equal_to([{0: 20, 1: 20, 2: 20, 5: 30}]))
    row = _shard_row(shards[4])
    assert row.label_counts == {} and row.records == 3 and row.name == "s4"  # the rest is kept


def test_many_shards_finalize_with_exact_counts(tmp_path):
    list_path = sorted_dataset(str(tmp_path / "d"), classes=5, per_class=7)
    result = convert(list_path, tmp_path / "out", "--num-shards", "48")  # most shards empty
    meta = result.metadata
    assert len(meta["shards"]) == 48 and meta["num_records"] == 35
    assert meta["labels"]["counts"] == [7] * 5
    records = []
    for path in shard_files(str(tmp_path / "out")):
        with open(path, "rb") as f:
            records.append(sum(1 for _ in iter_records(f)))
    assert [s["records"] for s in meta["shards"]] == records
    assert all("label_counts" not in s for s in meta["shards"])
