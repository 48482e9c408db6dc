"""`imgshard audit`'s work: prove that shards are complete and well mixed, or show where they
are not.

Works on any TFRecord or ArrayRecord shards with the standard ImageNet schema, and on
WebDataset tars of `{key}.jpg` + `{key}.cls` (ours or another tool's), local or gs://. One
streaming pass checks integrity and measures the raw order; the reader views compute from the
labels read the exact order in which tf.data readers (for tars: WebDataset's and timm's)
would yield the records (no second read, no TensorFlow). The verdict's thresholds are in
verdict.py."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from apache_beam.io.filesystems import FileSystems

from imgshard.audit.accounting import RecordPaths
from imgshard.audit.discovery import find_shards
from imgshard.audit.integrity import check_index_files, check_list, compare_with_metadata
from imgshard.audit.mixing import shard_skew, window_stats
from imgshard.audit.shard_scan import (
    ARRAY_RECORD_SUFFIX,
    WEBDATASET_SUFFIX,
    log_progress,
    scan_shards,
)
from imgshard.audit.verdict import (
    THRESHOLDS,
    ReaderModel,
    choose_window,
    judge,
    reader_labels,
    window_view,
    worst_shards,
)
from imgshard.audit.webdataset_checks import (
    check_label_range,
    check_reader_files,
    duplicate_keys,
)

__all__ = ["AuditResult", "audit", "shard_format"]

_LOG = logging.getLogger("imgshard")


@dataclass
class AuditResult:
    """Attributes:
    report: everything measured, JSON-ready (what --json prints).
    histograms: records per (shard, label code), for the heatmap.
    label_values: the label value of each code.
    shards: (path, record count) of every shard read, in raw order.
    """

    report: dict
    histograms: np.ndarray
    label_values: list
    shards: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.report["verdict"] == "PASS"


def shard_format(path: str) -> str:
    if path.endswith(ARRAY_RECORD_SUFFIX):
        return "array_record"
    return "webdataset" if path.endswith(WEBDATASET_SUFFIX) else "tfrecord"


def audit(
    target: str,
    *,
    label_key: str = "image/class/label",
    batch_size: int = 256,
    decode: bool = False,
    list_file: str | None = None,
    readers: list[ReaderModel] | None = None,
    reader_records: int = 100_000,
    seed: int = 0,
    pipeline_options=None,
    work_folder: str | None = None,
) -> AuditResult:
    """Runs every check (see the module docstring for the verdict).

    With `pipeline_options` (Beam's PipelineOptions), the shards are scanned by a Beam job
    keyed by shard, whose per-shard summaries go to `work_folder` (reachable by the workers).
    """
    paths, folder, meta = find_shards(target)
    _LOG.info(
        "audit: %d shards in %s%s", len(paths), folder, " (with dataset.json)" if meta else ""
    )
    record_paths = RecordPaths() if list_file else None
    try:
        if pipeline_options is None:
            scan = scan_shards(
                paths, label_key, decode=decode, record_paths=record_paths, progress=log_progress()
            )
        else:
            from imgshard.audit.scan_graph import scan_shards_with_beam

            scan = scan_shards_with_beam(
                paths, pipeline_options, work_folder, label_key, decode, record_paths
            )
        if record_paths:
            split = meta["split"] if meta else FileSystems.split(paths[0])[1].split("-")[0]
            listed = check_list(list_file, record_paths, folder, split)
    finally:
        if record_paths:
            record_paths.cleanup()
    records = len(scan.labels)
    failures: list[str] = []
    report: dict = {
        "target": target,
        "shards": len(paths),
        "format": shard_format(paths[0]),
        "records": records,
        "labels": len(scan.label_values),
        "thresholds": THRESHOLDS,
    }

    integrity: dict = {
        "decoded": decode,
        "errors": dict(sorted(scan.error_counts.items())),
        "first_errors": [
            {"kind": k, "shard": s, "record": i, "detail": d} for k, s, i, d in scan.errors
        ],
    }
    if scan.error_counts:
        failures.append(
            "integrity: "
            + ", ".join(
                f"{n} {kind} error{'s' * (n > 1)}" for kind, n in sorted(scan.error_counts.items())
            )
        )
    if meta:
        mismatches = compare_with_metadata(scan, meta)
        integrity["dataset_json"] = {"checked": True, "mismatches": mismatches}
        if mismatches:
            failures.append(f"integrity: {len(mismatches)} differences from dataset.json")
    index_files = check_index_files(scan, meta)
    if index_files["checked"]:
        integrity["index_files"] = index_files
        if index_files["mismatches"]:
            failures.append(f"integrity: {len(index_files['mismatches'])} index files differ")
    if scan.records_with_box_features:
        integrity["boxes"] = {
            "records": scan.records_with_boxes,
            "boxes": scan.boxes,
            "records_with_box_features": scan.records_with_box_features,
        }
    if report["format"] == "webdataset":
        _check_webdataset(scan, folder, meta, integrity, failures)
    if list_file:
        integrity["list"] = listed
        if not integrity["list"]["ok"]:
            failures.append("integrity: the list is not accounted for exactly once")
    report["integrity"] = integrity

    histograms = np.zeros((len(scan.shards), len(scan.label_values)), dtype=np.int64)
    if records == 0:
        failures.append("no records to audit")
    else:
        window = choose_window(records, batch_size)
        dense = np.frombuffer(scan.labels, dtype=np.int32).astype(np.int64)
        num_classes = len(scan.label_values)
        if records >= 2 * window:
            raw = window_stats(dense, window, num_classes)
            report["raw_order"] = window_view(raw)
            judge(raw, "raw order", failures, check_max=True)
            report["reader_order"] = {}
            wanted = "webdataset" if report["format"] == "webdataset" else "tfdata"
            readers = [r for r in readers or [] if r.kind == wanted]
            if report["format"] == "array_record":
                readers = []
                report["note"] = (
                    "reader views skipped: they replay tf.data's TFRecord readers; the raw "
                    "order is what a sequential ArrayRecord reader sees"
                )
            for reader in readers or []:
                reader = reader.resolved(records, window)
                order = reader_labels(scan, reader, seed, reader_records)
                stats = window_stats(order, window, num_classes)
                report["reader_order"][reader.name] = {
                    "description": reader.description,
                    "records": int(len(order)),
                    **window_view(stats),
                }
                judge(stats, f"reader order ({reader.name})", failures)
        else:
            report["raw_order"] = None
            report["note"] = f"{records} records are too few to judge mixing in windows"
        for i, shard in enumerate(scan.shards):
            for value, n in shard.label_counts.items():
                histograms[i, scan.label_codes[value]] = n
        skew = shard_skew(histograms, seed=seed)
        report["shard_skew"] = {
            "mean_distance": round(float(skew.distance.mean()), 4),
            "mean_random_distance": round(float(skew.expected.mean()), 4),
            "ratio": round(skew.ratio, 4),
            "worst": worst_shards(scan, skew),
        }
        if len(scan.shards) > 1 and skew.ratio > THRESHOLDS["max_skew_ratio"]:
            failures.append(
                f"per-shard skew: shard label mixes are {skew.ratio:.1f}x as far from the "
                f"global mix as random shards' (limit {THRESHOLDS['max_skew_ratio']})"
            )
    report["failures"] = failures
    report["verdict"] = "FAIL" if failures else "PASS"
    shards = [(s.path, s.records) for s in scan.shards]
    return AuditResult(report, histograms, scan.label_values, shards)


def _check_webdataset(scan, folder: str, meta, integrity: dict, failures: list[str]) -> None:
    """Unique keys, `.cls` in range, and the readers' info files (webdataset_checks.py)."""
    duplicates = duplicate_keys(scan)
    out_of_range = check_label_range(scan, meta)
    readers = check_reader_files(scan, folder, meta)
    integrity["webdataset"] = {
        "duplicate_keys": duplicates,
        "label_range": out_of_range,
        "reader_files": readers,
    }
    if duplicates:
        failures.append(f"integrity: {duplicates} samples repeat a key of another sample")
    failures.extend(f"integrity: {problem}" for problem in out_of_range)
    failures.extend(f"integrity: {problem}" for problem in readers["mismatches"])
