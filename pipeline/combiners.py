"""The job's CombineFns: what many workers' partial results combine into, so that no stage
gathers every element in one place."""

from __future__ import annotations

import apache_beam as beam

from imgshard.transforms.records import ShardResult

__all__ = ["LabelSet", "SumLabelCounts"]


class LabelSet(beam.CombineFn):
    """Set union of labels, sorted; combiner lifting keeps only small partial sets in the
    shuffle. (Not the trainer's DistinctLabels, a Keras metric of labels per batch.)"""

    def create_accumulator(self):
        return set()

    def add_input(self, accumulator, label):
        accumulator.add(label)
        return accumulator

    def merge_accumulators(self, accumulators):
        merged = set()
        for acc in accumulators:
            merged |= acc
        return merged

    def extract_output(self, accumulator):
        return sorted(accumulator)


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
