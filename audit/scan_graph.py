"""The audit's scan as a Beam job keyed by shard (`imgshard audit ... --runner ...`).

Each worker scans whole shards (framing, CRCs, Examples, boxes, --decode: the expensive part)
and writes one small summary per shard (its label sequence, counts, first errors, and with
--list its records' file names) to a folder the driver then reads in shard order; the totals
(records, errors by kind, boxes, records per label) are combined by CombineFns. The driver
rebuilds the same ScanResult an in-process scan gives, so every later check is shared.

    # (shard number, path)
    -> Reshuffle -> ScanShard            # (shard number, summary), summary file written
    -> CombineGlobally(SumCounts)        # totals, written as totals.json
"""

from __future__ import annotations

import collections
import json
import uuid
from array import array

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from imgshard.audit.accounting import RecordPaths
from imgshard.audit.shard_scan import MAX_ERRORS_KEPT, ScanResult, ShardScan, scan_shards
from imgshard.transforms.storage import atomic_output

__all__ = ["SumCounts", "scan_shards_with_beam"]

_TOTALS = "totals.json"


class _NameList(list):
    """Collects one shard's record file names (RecordPaths' add, in memory for one shard)."""

    add = list.append


class ScanShard(beam.DoFn):
    def __init__(self, folder: str, label_key: str, decode: bool, keep_paths: bool):
        self._folder, self._label_key = folder, label_key
        self._decode, self._keep_paths = decode, keep_paths

    def process(self, element):
        number, path = element  # (shard number, path)
        names = _NameList() if self._keep_paths else None
        result = scan_shards([path], self._label_key, decode=self._decode, record_paths=names)
        shard = result.shards[0]
        values = result.label_values
        summary = {
            "path": path,
            "records": shard.records,
            "bytes": shard.bytes,
            "sha256": shard.sha256,
            "index_sha256": shard.index_sha256,
            "labels": [values[code] for code in result.labels],
            "errors": result.errors,
            "paths": names or [],
            "key_hashes": result.key_hashes.tolist(),
        }
        with atomic_output(FileSystems.join(self._folder, f"shard-{number:06d}.json")) as f:
            f.write(json.dumps(summary).encode("utf-8"))
        yield {
            "records": shard.records,
            "errors": dict(result.error_counts),
            "labels": {json.dumps(v): n for v, n in shard.label_counts.items()},
            "records_with_box_features": result.records_with_box_features,
            "records_with_boxes": result.records_with_boxes,
            "boxes": result.boxes,
        }


class SumCounts(beam.CombineFn):
    """Adds up per-shard statistics: numbers, and dicts of numbers, key by key."""

    def create_accumulator(self):
        return {}

    def add_input(self, accumulator, element):
        for key, value in element.items():
            if isinstance(value, dict):
                into = accumulator.setdefault(key, {})
                for k, n in value.items():
                    into[k] = into.get(k, 0) + n
            else:
                accumulator[key] = accumulator.get(key, 0) + value
        return accumulator

    def merge_accumulators(self, accumulators):
        merged = {}
        for accumulator in accumulators:
            self.add_input(merged, accumulator)
        return merged

    def extract_output(self, accumulator):
        return accumulator


def _write_totals(totals: dict, folder: str) -> None:
    with atomic_output(FileSystems.join(folder, _TOTALS)) as f:
        f.write(json.dumps(totals, sort_keys=True).encode("utf-8"))


def scan_shards_with_beam(
    paths: list[str],
    options,
    work_folder: str,
    label_key: str,
    decode: bool = False,
    record_paths: RecordPaths | None = None,
) -> ScanResult:
    """scan_shards' result, the shards scanned by a Beam job; `work_folder` must be
    reachable by the workers (gs:// on Dataflow) and is removed afterwards."""
    folder = FileSystems.join(work_folder, f"imgshard-audit-{uuid.uuid4().hex}")
    try:
        with beam.Pipeline(options=options) as pipeline:
            _ = (
                pipeline
                | "ListShards" >> beam.Create(list(enumerate(paths)))
                | "SpreadShards" >> beam.Reshuffle()
                | "ScanShard"
                >> beam.ParDo(ScanShard(folder, label_key, decode, record_paths is not None))
                | "SumCounts" >> beam.CombineGlobally(SumCounts())
                | "WriteTotals" >> beam.Map(_write_totals, folder)
            )
        return _merge(paths, folder, record_paths)
    finally:
        leftovers = FileSystems.match([FileSystems.join(folder, "*")])[0].metadata_list
        if leftovers:
            FileSystems.delete([m.path for m in leftovers])
        if FileSystems.get_scheme(folder) is None and FileSystems.exists(folder):
            FileSystems.delete([folder])  # a local folder (object stores have none)


def _read_json(path: str):
    with FileSystems.open(path) as f:
        return json.loads(f.read())


def _merge(paths: list[str], folder: str, record_paths: RecordPaths | None) -> ScanResult:
    """The per-shard summaries in shard order, label codes by first appearance (as one
    in-process scan numbers them); totals from the combined counts."""
    result = ScanResult()
    totals = _read_json(FileSystems.join(folder, _TOTALS))
    result.error_counts = collections.Counter(totals.get("errors", {}))
    result.records_with_box_features = totals.get("records_with_box_features", 0)
    result.records_with_boxes = totals.get("records_with_boxes", 0)
    result.boxes = totals.get("boxes", 0)
    codes = result.label_codes
    for number in range(len(paths)):
        summary = _read_json(FileSystems.join(folder, f"shard-{number:06d}.json"))
        shard = ShardScan(summary["path"], summary["records"], summary["bytes"])
        shard.sha256, shard.index_sha256 = summary["sha256"], summary["index_sha256"]
        shard_codes = array("i")
        for value in summary["labels"]:
            code = codes.get(value)
            if code is None:
                code = codes[value] = len(codes)
            shard_codes.append(code)
            shard.label_counts[value] += 1
        result.labels.extend(shard_codes)
        result.key_hashes.extend(summary.get("key_hashes", ()))
        result.shards.append(shard)
        room = MAX_ERRORS_KEPT - len(result.errors)
        result.errors.extend(tuple(e) for e in summary["errors"][:room])
        if record_paths is not None:
            for name in summary["paths"]:
                record_paths.add(name)
    combined = collections.Counter({json.loads(k): n for k, n in totals.get("labels", {}).items()})
    scanned = collections.Counter()
    for shard in result.shards:
        scanned.update(shard.label_counts)
    if combined != scanned or totals.get("records", 0) != sum(s.records for s in result.shards):
        raise RuntimeError("the shard summaries disagree with the combined counts")
    return result
