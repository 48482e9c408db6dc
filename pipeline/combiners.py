"""The job's CombineFns: what many workers' partial results combine into, so that no stage
gathers every element in one place."""

from __future__ import annotations

from typing import NamedTuple

import apache_beam as beam

from imgshard.transforms.records import Rejection, ShardResult

__all__ = ["IndexSummary", "IndexTotals", "SumLabelCounts"]


class IndexTotals(NamedTuple):
    labels: list[str]  # distinct, sorted
    entries: int  # parsed entries
    inputs: int  # entries and unparseable lines: every line of the input


class IndexSummary(beam.CombineFn):
    """(line, path, label) entries and Rejections -> IndexTotals: what the vocabulary, the
    shard count and the source's description need, in one combine rather than three (each
    global combine is six ParDos, a fixed cost of every run)."""

    def create_accumulator(self):
        return set(), 0, 0

    def add_input(self, accumulator, item):
        labels, entries, inputs = accumulator
        if isinstance(item, Rejection):
            return labels, entries, inputs + 1
        labels.add(item[2])
        return labels, entries + 1, inputs + 1

    def merge_accumulators(self, accumulators):
        merged, entries, inputs = set(), 0, 0
        for labels, e, i in accumulators:
            merged |= labels
            entries += e
            inputs += i
        return merged, entries, inputs

    def extract_output(self, accumulator):
        labels, entries, inputs = accumulator
        return IndexTotals(sorted(labels), entries, inputs)


class SumLabelCounts(beam.CombineFn):
    """ShardResult -> {label_id: records} over every shard: one count per class, whatever the
    number of shards."""

    def create_accumulator(self):
        return {}

    def add_input(self, totals, shard: ShardResult):
        for label, count in shard.label_counts.items():
            totals[label] = totals.get(label, 0) + count
        return totals

    def merge_accumulators(self, accumulators):
        merged = {}
        for totals in accumulators:
            for label, count in totals.items():
                merged[label] = merged.get(label, 0) + count
        return merged

    def extract_output(self, totals):
        return totals
