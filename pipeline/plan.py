"""`imgshard convert --plan`: what the shards would hold, without reading an image.

The conversion's own index stages (ReadIndex, BuildVocabulary, ChooseShardCount, AssignShard,
GroupByShard) run on the chosen runner; each shard group is then counted instead of written:
records per shard and per class, and the inputs rejected before any image is read (lines that
do not parse, unknown labels, repeated paths). Nothing is written to the output; the plan
goes through one temporary JSON file to the driver.
"""

from __future__ import annotations

import collections
import json

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.pvalue import AsList, AsSingleton, TaggedOutput

from imgshard.pipeline.flatten import FlattenOwnInputs
from imgshard.pipeline.graph import index_and_assign
from imgshard.pipeline.options import ConvertConfig
from imgshard.transforms.labels import Vocabulary
from imgshard.transforms.records import REJECTED, unpack_shard_entry
from imgshard.transforms.shard_names import shard_name
from imgshard.transforms.sharding import drop_duplicates

__all__ = ["build_plan_graph", "format_plan", "load_plan"]

# Per-class columns are printed up to this many classes; beyond, a summary per shard.
_MAX_CLASS_COLUMNS = 16


def _plan_shard(element, vocabulary: Vocabulary):
    """(shard, [packed entry or None]) -> (shard, records, {label_id: count}); repeats
    rejected."""
    shard, grouped = element
    entries = [unpack_shard_entry(e) for e in grouped if e is not None]
    kept, rejections = drop_duplicates(entries, vocabulary.names)
    counts = collections.Counter(label for _, _, _, label in kept)
    yield shard, len(kept), dict(sorted(counts.items()))
    for rejection in rejections:
        yield TaggedOutput(REJECTED, rejection)


def _write_plan(_, path, config, num_shards, shards, rejected, source, vocabulary):
    by_shard = {shard: (records, counts) for shard, records, counts in shards}
    plan = {
        "input": {"uri": source.uri, "kind": source.kind, "inputs": source.inputs},
        "num_shards": num_shards,
        "num_records": sum(records for records, _ in by_shard.values()),
        "labels": {"kind": vocabulary.kind, "names": list(vocabulary.names)},
        "rejected_by_reason": dict(sorted(rejected)),
        "shards": [
            {
                "name": shard_name(config.split, i, num_shards, config.format),
                "records": by_shard.get(i, (0, {}))[0],
                "label_counts": by_shard.get(i, (0, {}))[1],
            }
            for i in range(num_shards)
        ],
    }
    with FileSystems.create(path) as f:
        f.write(json.dumps(plan).encode("utf-8"))


def build_plan_graph(
    p: beam.Pipeline, config: ConvertConfig, given_labels: list[str] | None, plan_path: str
) -> None:
    """Adds the plan to `p`; it writes its JSON to `plan_path`."""
    indexed = index_and_assign(p, config, given_labels)
    every_shard = indexed.num_shards | "EveryShard" >> beam.FlatMap(
        lambda n: ((i, None) for i in range(n))
    )
    planned = (
        (indexed.keyed, every_shard)
        | "WithEveryShard" >> FlattenOwnInputs()
        | "GroupByShard" >> beam.GroupByKey()
        | "PlanShard"
        >> beam.FlatMap(_plan_shard, AsSingleton(indexed.vocabulary)).with_outputs(
            REJECTED, main="shards"
        )
    )
    reasons = (
        (*indexed.rejected, planned[REJECTED])
        | "CollectRejected" >> FlattenOwnInputs()
        | "Reasons" >> beam.Map(lambda r: r.reason)
        | "CountReasons" >> beam.combiners.Count.PerElement()
    )
    _ = (
        p
        | "PlanTrigger" >> beam.Create([None])
        | "WritePlan"
        >> beam.Map(
            _write_plan,
            plan_path,
            config,
            num_shards=AsSingleton(indexed.num_shards),
            shards=AsList(planned.shards),
            rejected=AsList(reasons),
            source=indexed.source,
            vocabulary=AsSingleton(indexed.vocabulary),
        )
    )


def load_plan(path: str) -> dict:
    with FileSystems.open(path) as f:
        plan = json.loads(f.read())
    for shard in plan["shards"]:
        shard["label_counts"] = {int(k): v for k, v in shard["label_counts"].items()}
    return plan


def format_plan(plan: dict, seconds: float) -> str:
    """Records per shard and per class per shard, and what would be rejected."""
    names = plan["labels"]["names"]
    shards = plan["shards"]
    records = [s["records"] for s in shards]
    rejected = plan["rejected_by_reason"]
    lines = [
        f"imgshard plan: {plan['num_records']:,} records in {plan['num_shards']} shards "
        f"({min(records, default=0):,}-{max(records, default=0):,} each), "
        f"{len(names):,} classes ({plan['labels']['kind']}); nothing was read or written",
        f"  inputs     {plan['input']['inputs']:,} listed, {sum(rejected.values()):,} rejected "
        "before reading (images that fail to read or decode are not counted here)",
    ]
    lines += [f"    {reason:<18} {count:,}" for reason, count in rejected.items()]
    if len(names) <= _MAX_CLASS_COLUMNS:
        lines.append("  shard" + " " * 27 + "records  " + " ".join(f"{n[:8]:>8}" for n in names))
        for s in shards:
            counts = " ".join(f"{s['label_counts'].get(i, 0):>8,}" for i in range(len(names)))
            lines.append(f"  {s['name']:<32}{s['records']:>7,}  {counts}")
    else:
        lines.append("  shard" + " " * 27 + "records  classes  largest class")
        for s in shards:
            counts = s["label_counts"]
            top = max(counts, key=counts.get) if counts else None
            largest = f"{names[top]} ({counts[top]:,})" if top is not None else "-"
            lines.append(f"  {s['name']:<32}{s['records']:>7,}  {len(counts):>7,}  {largest}")
    lines.append(f"  time       {seconds:.1f} s")
    return "\n".join(lines)
