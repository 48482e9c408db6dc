"""A look at entries drawn from across the index before any worker starts
(transforms/list_sample.py).

A misconfigured input (absolute paths outside the list's folder, the wrong --image-root, a
--labels file with other names) is otherwise converted to the end and only then refused by
--max-reject-fraction. When most of a sample fails for one reason, the run stops within
seconds with that reason and the flag that fixes it. Fewer failures are left to the job: it
rejects them one by one with their lines.
"""

from __future__ import annotations

import concurrent.futures
import os
from collections import Counter
from collections.abc import Sequence

from apache_beam.io.filesystems import FileSystems

from imgshard.pipeline.errors import ConversionError
from imgshard.pipeline.options import ConvertConfig
from imgshard.transforms import read_faults, records
from imgshard.transforms.index import resolve_image_path
from imgshard.transforms.list_sample import ListSample, read_sample, spread
from imgshard.transforms.reading import is_inside_root

__all__ = ["check_input_sample", "list_sample"]

SAMPLE_ENTRIES = 1000
# Existence costs a request per object on gs://: fewer of them, in parallel.
SAMPLE_EXISTS = 64
_EXISTS_THREADS = 16
# Below this many sampled entries the sample says too little to stop a run.
MIN_SAMPLE = 10


def list_sample(config: ConvertConfig) -> ListSample | None:
    """Entries drawn from across a list or CSV, read once for the checks and the local-mode
    estimate; None for a folder, or an input that cannot be read (check_inputs says why)."""
    if config.input_kind == "folder":
        return None
    try:
        csv = config.input_kind == "csv"
        return read_sample(config.input, csv, config.path_column, config.label_column)
    except Exception:
        return None


def _exists(path: str) -> bool:
    """Whether the image is there; a denied read stops the run here already (as it would
    at the job's first read), any other error leaves the answer to the job."""
    if "://" not in path:
        return os.path.exists(path)
    try:
        return FileSystems.exists(path)
    except Exception as e:
        if read_faults.failure_kind(e) == read_faults.FATAL:
            raise ConversionError(read_faults.fatal_message(path, e)) from None
        return True


def _reasons(
    config: ConvertConfig, entries: list[records.IndexEntry], labels: Sequence[str] | None
) -> tuple[list[tuple[records.IndexEntry, str, str]], int]:
    """(entry, reason, resolved path) for each sampled entry the job would reject, and how
    many entries were checked for existence."""
    known = set(labels) if labels is not None else None
    failed, readable = [], []
    for entry in entries:
        resolved = resolve_image_path(config.image_root, entry.path)
        if known is not None and entry.label not in known:
            failed.append((entry, records.UNKNOWN_LABEL, resolved))
        elif not config.allow_outside_root and not is_inside_root(config.image_root, resolved):
            failed.append((entry, records.OUTSIDE_ROOT, resolved))
        else:
            readable.append((entry, resolved))
    checked = readable[:SAMPLE_EXISTS] if "://" in config.image_root else readable
    with concurrent.futures.ThreadPoolExecutor(_EXISTS_THREADS) as pool:
        found = pool.map(_exists, [resolved for _, resolved in checked])
        for (entry, resolved), exists in zip(checked, found, strict=True):
            if not exists:
                failed.append((entry, records.MISSING_FILE, resolved))
    return failed, len(checked)


def _advice(
    config: ConvertConfig, reason: str, failed: list[tuple[records.IndexEntry, str, str]]
) -> str:
    example_entry, _, example = failed[0]
    if reason == records.UNKNOWN_LABEL:
        return (
            f"labels such as {example_entry.label!r} are not in --labels {config.labels_file}: "
            "the list and the labels file must name classes alike (or drop --labels)"
        )
    if reason == records.OUTSIDE_ROOT:
        listed_absolute = all(entry.path.startswith("/") for entry, _, _ in failed)
        kind = "absolute paths" if listed_absolute else "paths"
        local = [os.path.normpath(p) for _, _, p in failed if "://" not in p]
        fix = "--allow-outside-root"
        if local and len(local) == len(failed):
            fix = f"--image-root {os.path.commonpath(local)} or {fix}"
        return f"{kind} outside --image-root {config.image_root} (e.g. {example}): pass {fix}"
    return (
        f"images that do not exist under --image-root {config.image_root} (e.g. {example}): "
        "pass the folder the list's paths are relative to as --image-root"
    )


def check_input_sample(
    config: ConvertConfig, labels: Sequence[str] | None, sample: ListSample | None
) -> None:
    """Raises ConversionError when most of the sampled entries would be rejected alike.
    No sample for a folder: its files exist, lie inside the root, and name their labels."""
    if sample is None:
        return
    entries = spread(sample.entries, SAMPLE_ENTRIES)
    if len(entries) < MIN_SAMPLE:
        return
    failed, checked_exist = _reasons(config, entries, labels)
    if not failed:
        return
    reason, count = Counter(reason for _, reason, _ in failed).most_common(1)[0]
    sampled = checked_exist if reason == records.MISSING_FILE else len(entries)
    if count * 2 <= sampled:
        return
    same = [f for f in failed if f[1] == reason]
    raise ConversionError(
        f"{count} of {sampled} entries sampled across {config.input} would be "
        f"rejected as {reason}: {_advice(config, reason, same)}. Nothing was converted."
    )
