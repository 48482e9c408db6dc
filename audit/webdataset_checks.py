"""The integrity checks of WebDataset shards beside the scan's own (tar framing, samples,
labels, --decode): keys unique across every shard, `.cls` within the classes, and the sample
counts the readers' info files promise (timm's `_info.json`, a wids shard index) against the
samples read."""

from __future__ import annotations

import json

import numpy as np
from apache_beam.io.filesystems import FileSystems

from imgshard.audit.shard_scan import ScanResult
from imgshard.transforms.webdataset_info import TIMM_INFO

__all__ = ["check_label_range", "check_reader_files", "duplicate_keys"]


def duplicate_keys(scan: ScanResult) -> int:
    """Samples whose key another sample of the shards already has (by 64-bit key hashes:
    8 bytes per sample, not the keys)."""
    hashes = np.frombuffer(scan.key_hashes, dtype=np.uint64)
    return int(len(hashes) - len(np.unique(hashes)))


def check_label_range(scan: ScanResult, meta: dict | None) -> list[str]:
    """`.cls` values outside 0.. (or, with dataset.json, outside its classes and offset)."""
    low, high = 0, None
    if meta:
        low = meta["labels"].get("offset", 0)
        high = low + meta["labels"]["num_classes"]
    bad = sorted(
        v for v in scan.label_values if isinstance(v, int) and (v < low or (high and v >= high))
    )
    if not bad:
        return []
    where = f"{low}..{high - 1}" if high is not None else f">= {low}"
    shown = ", ".join(map(str, bad[:5])) + (" ..." if len(bad) > 5 else "")
    return [f".cls values outside {where}: {shown}"]


def _load(path: str) -> dict | None:
    if not FileSystems.exists(path):
        return None
    with FileSystems.open(path) as f:
        return json.loads(f.read())


def _compare(
    kind: str, promised: dict[str, int], read: dict[str, int], folder: str, total=None
) -> list[str]:
    """Both ways: every shard read is listed with its count, and every shard listed exists (a
    reader would count its samples into the epoch, then fail to open it). A listed shard
    that exists but was not read is left alone: the audit may be of a few shards only."""
    problems = []
    for name, count in read.items():
        if name not in promised:
            problems.append(f"{kind}: does not list {name}")
        elif promised[name] != count:
            problems.append(f"{kind}: {name} holds {count} samples, it says {promised[name]}")
    for name in sorted(set(promised) - set(read)):
        if not FileSystems.exists(FileSystems.join(folder, name)):
            problems.append(
                f"{kind}: lists {name} ({promised[name]} samples), which does not exist"
            )
    if total is not None and total != sum(promised.values()):
        problems.append(f"{kind}: num_samples {total} is not the sum of its shard_lengths")
    return problems


def check_reader_files(scan: ScanResult, folder: str, meta: dict | None) -> dict:
    """Compares the samples per shard with timm's `_info.json` (the split holding these
    shards) and the wids index (dataset.json's, else `*.wids.json` in the folder) when there."""
    read = {FileSystems.split(s.path)[1]: s.records for s in scan.shards}
    checked, problems = [], []
    readers = (meta or {}).get("readers", {})
    try:
        info = _load(FileSystems.join(folder, TIMM_INFO))
        if info is None and "timm_info" in readers:
            problems.append(f"{TIMM_INFO}: missing (dataset.json names it)")
        if info is not None:
            checked.append(TIMM_INFO)
            splits = [
                s
                for s in info.get("splits", {}).values()
                if set(read) & set(s.get("filenames", ()))
            ]
            if not splits:
                problems.append(f"{TIMM_INFO}: no split lists these shards")
            for split in splits:
                promised = dict(zip(split["filenames"], split["shard_lengths"], strict=True))
                problems += _compare(TIMM_INFO, promised, read, folder, split.get("num_samples"))
        names = [readers["wids_index"]] if "wids_index" in readers else []
        if not names:
            found = FileSystems.match([FileSystems.join(folder, "*.wids.json")])[0]
            names = [FileSystems.split(m.path)[1] for m in found.metadata_list]
        for name in names:
            index = _load(FileSystems.join(folder, name))
            if index is None:
                problems.append(f"{name}: missing (dataset.json names it)")
                continue
            checked.append(name)
            promised = {s["url"].rsplit("/", 1)[-1]: s["nsamples"] for s in index["shardlist"]}
            problems += _compare(name, promised, read, folder)
    except (ValueError, KeyError, TypeError) as e:
        problems.append(
            f"reader files in {folder}: not in the expected form ({type(e).__name__}: {e})"
        )
    return {"checked": checked, "mismatches": problems}
