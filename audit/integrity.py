"""The integrity checks beside the scan's own (CRCs, parsing, labels, boxes, decoding): the
counts and checksums dataset.json promised, each index file against its shard, and with
--list every input found exactly once (as a record or a rejected line)."""

from __future__ import annotations

import collections
import hashlib
import json
from array import array

from apache_beam.io.filesystems import FileSystems

from imgshard.audit.accounting import RecordPaths, account_for_list
from imgshard.audit.shard_scan import ScanResult
from imgshard.pipeline import metadata
from imgshard.transforms.index import detect_kind, read_index
from imgshard.transforms.record_index import index_name
from imgshard.transforms.records import SourceInfo

__all__ = ["check_index_files", "check_list", "compare_with_metadata"]


def check_index_files(scan: ScanResult, meta: dict | None) -> dict:
    """Each TFRecord shard's index file (listed in dataset.json, or found beside the shard)
    must hold exactly the `offset length` lines of the records read."""
    described = {s["name"]: s.get("index") for s in meta["shards"]} if meta else {}
    checked, problems = 0, []
    for shard in scan.shards:
        if not shard.index_sha256:  # not a TFRecord shard
            continue
        folder, name = FileSystems.split(shard.path)
        listed = described.get(name)
        path = FileSystems.join(folder, listed["name"] if listed else index_name(name))
        if not listed and not FileSystems.exists(path):
            continue
        checked += 1
        try:
            with FileSystems.open(path) as f:
                data = f.read()
        except Exception:
            problems.append(f"{name}: its index file {FileSystems.split(path)[1]} is missing")
            continue
        if hashlib.sha256(data).hexdigest() != shard.index_sha256:
            problems.append(f"{name}: its index file does not match the records read")
        elif listed and listed.get("sha256") != shard.index_sha256:
            problems.append(f"{name}: its index file differs from dataset.json's")
    return {"checked": checked, "mismatches": problems}


def compare_with_metadata(scan: ScanResult, meta: dict) -> list[str]:
    problems = []
    for shard, described in zip(scan.shards, meta["shards"], strict=True):
        name = described["name"]
        if shard.records != described["records"]:
            problems.append(
                f"{name}: {shard.records} records, dataset.json says {described['records']}"
            )
        if described.get("sha256") and shard.sha256 != described["sha256"]:
            problems.append(
                f"{name}: sha256 differs from dataset.json (file changed after writing)"
            )
    labels = meta.get("labels", {})
    observed = collections.Counter()
    for shard in scan.shards:
        observed.update(shard.label_counts)
    offset = labels.get("offset", 0)
    for label_id, expected in enumerate(labels.get("counts", [])):
        if observed.get(label_id + offset, 0) != expected:
            problems.append(
                f"label {label_id + offset}: {observed.get(label_id + offset, 0)} records, "
                f"dataset.json says {expected}"
            )
    return problems


def check_list(list_file: str, record_paths: RecordPaths, folder: str, split: str) -> dict:
    report_path = FileSystems.join(folder, metadata.rejected_name(split))
    rejected_lines = array("q")
    if FileSystems.exists(report_path):
        with FileSystems.open(report_path) as f:
            for line in iter(f.readline, b""):
                if line.strip():
                    rejected_lines.append(json.loads(line)["line"])
    accounting = account_for_list(_listed(list_file), record_paths, rejected_lines)
    return {
        "ok": accounting.ok,
        "inputs": accounting.inputs,
        "records": record_paths.count,
        "rejected": len(rejected_lines),
        "matched_by": accounting.matched_by,
        "missing": [{"line": line, "path": path} for line, path in accounting.missing],
        "num_missing": accounting.num_missing,
        "duplicated": [{"path": p, "found": f, "expected": e} for p, f, e in accounting.duplicated],
        "num_duplicated": accounting.num_duplicated,
        "unexpected": accounting.unexpected,
        "num_unexpected": accounting.num_unexpected,
        "unknown_rejected_lines": accounting.unknown_rejected,
    }


def _listed(list_file: str):
    """The list's entries and unparseable lines, as convert parsed them (read_index streams a
    list or CSV in chunks, and lists a folder class by class)."""
    kind = detect_kind(list_file)
    yield from (i for i in read_index(list_file, kind) if not isinstance(i, SourceInfo))
