"""The files written once every shard is in place: dataset.json, labels.txt, the rejected
report. All are deterministic (no timestamps), so a whole output folder compares with diff.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Iterable, Mapping

from apache_beam.io.filesystems import FileSystems

from imgshard.pipeline.journal import journal_dir
from imgshard.pipeline.seams import crash_point
from imgshard.transforms.image import image_library
from imgshard.transforms.labels import Vocabulary
from imgshard.transforms.record_index import INDEX_SUFFIX
from imgshard.transforms.records import REASONS, Rejection, ShardResult, SourceInfo
from imgshard.transforms.shard_names import EXTENSIONS, shard_glob
from imgshard.transforms.storage import TMP_MARKER, atomic_output, remove_files, remove_tree
from imgshard.transforms.webdataset_info import (
    TIMM_INFO,
    timm_info,
    timm_split,
    wids_index,
    wids_index_name,
)

__all__ = [
    "DATASET_JSON",
    "FORMAT_VERSION",
    "RECORD_SCHEMA",
    "build_metadata",
    "load_metadata",
    "output_files",
    "rejected_name",
    "remove_reader_files",
    "remove_rejected_fragments",
    "remove_stale_files",
    "write_outputs",
    "write_rejected_fragment",
]

DATASET_JSON = "dataset.json"
LABELS_TXT = "labels.txt"
FORMAT_VERSION = 1
# The rejected report is written by workers in fragments of this many list lines, each
# sorted; Finalize concatenates them in order, so it never holds the rejections in memory.
FRAGMENT_LINES = 100_000

RECORD_SCHEMA = {
    "image/encoded": "bytes",
    "image/format": "bytes",
    "image/height": "int64",
    "image/width": "int64",
    "image/channels": "int64",
    "image/colorspace": "bytes",
    "image/class/label": "int64",
    "image/class/synset": "bytes",
    "image/filename": "bytes",
}
# Added with --boxes, as tf/models' build_imagenet_data.py writes them.
BOX_SCHEMA = {
    "image/object/bbox/xmin": "float list",
    "image/object/bbox/ymin": "float list",
    "image/object/bbox/xmax": "float list",
    "image/object/bbox/ymax": "float list",
    "image/object/bbox/label": "int64 list",
}


# --format webdataset: the members of each sample (transforms/webdataset_output.py).
WEBDATASET_SCHEMA = {
    "{key}.jpg": "bytes: the JPEG of image/encoded",
    "{key}.cls": "text: image/class/label in decimal",
    "{key}.json": "object: class, label, path, width, height",
}
WEBDATASET_BOXES = {"{key}.json boxes": "[[xmin, ymin, xmax, ymax], ...], normalized"}


def _schema(settings: dict) -> dict:
    boxes = bool(settings.get("boxes"))
    if settings.get("format") == "webdataset":
        return {**WEBDATASET_SCHEMA, **(WEBDATASET_BOXES if boxes else {})}
    return {**RECORD_SCHEMA, **(BOX_SCHEMA if boxes else {})}


def _shard_entry(s: ShardResult) -> dict:
    entry = {"name": s.name, "records": s.records, "bytes": s.bytes, "sha256": s.sha256}
    if s.index_name:
        entry["index"] = {"name": s.index_name, "bytes": s.index_bytes, "sha256": s.index_sha256}
    return entry


def rejected_name(split: str) -> str:
    return f"{split}-rejected.jsonl"


def _fragments_dir(output: str, split: str) -> str:
    return FileSystems.join(output, f".{split}-rejected-parts")


def rejected_fragment_path(output: str, split: str, index: int) -> str:
    return FileSystems.join(_fragments_dir(output, split), f"{index:08d}.jsonl")


def write_rejected_fragment(output: str, split: str, index: int, rejections) -> int:
    """Writes the rejections of list lines [index x FRAGMENT_LINES, +FRAGMENT_LINES), in
    report order; returns `index`."""
    with atomic_output(rejected_fragment_path(output, split, index)) as f:
        for rejection in sorted(rejections):
            f.write(json.dumps(rejection.to_json_dict(), ensure_ascii=False).encode("utf-8"))
            f.write(b"\n")
    return index


def build_metadata(
    *,
    split: str,
    num_shards: int,
    shards: Iterable[ShardResult],
    label_counts: Mapping[int, int] | None = None,
    rejections: Iterable[Rejection] = (),
    rejected_by_reason: Mapping[str, int] | None = None,
    source: SourceInfo,
    vocabulary: Vocabulary,
    settings: dict,
    version: str,
) -> dict:
    """dataset.json's content.

    Args:
      label_counts: records per label id over every shard (the conversion sums them in a
        CombineFn, and its shard rows carry none); without it, summed from `shards`.
    """
    shards = sorted(shards, key=lambda s: s.shard)
    if [s.shard for s in shards] != list(range(num_shards)):
        raise RuntimeError(
            f"expected results for shards 0..{num_shards - 1}, got {[s.shard for s in shards]}"
        )
    if label_counts is None:
        label_counts = collections.Counter()
        for shard in shards:
            label_counts.update(shard.label_counts)
    counts = [0] * len(vocabulary.names)
    for label, count in label_counts.items():
        counts[label] += count
    by_reason = collections.Counter(
        rejected_by_reason if rejected_by_reason is not None else (r.reason for r in rejections)
    )
    unlisted = sorted(set(by_reason) - set(REASONS))
    if unlisted:  # by_reason would leave them out while num_rejected counts them
        raise ValueError(
            f"rejection reasons {unlisted} are missing from records.REASONS; add them there"
        )
    records = sum(s.records for s in shards)
    meta = {
        "format_version": FORMAT_VERSION,
        "tool": {"name": "imgshard", "version": version, "image_library": image_library()},
        "split": split,
        "num_records": records,
        "num_rejected": sum(by_reason.values()),
        "num_inputs": source.inputs,
        "num_shards": num_shards,
        "bytes": sum(s.bytes for s in shards),
        "bytes_in": sum(s.bytes_in for s in shards),
        "format": settings.get("format", "tfrecord"),
        "schema": _schema(settings),
        "shards": [_shard_entry(s) for s in shards],
        "labels": {
            "kind": vocabulary.kind,
            "num_classes": len(vocabulary.names),
            "offset": settings["label_offset"],
            "file": LABELS_TXT,
            "names": list(vocabulary.names),
            "counts": counts,
        },
        "rejected": {
            "file": rejected_name(split),
            "by_reason": {reason: by_reason[reason] for reason in REASONS if by_reason[reason]},
        },
        "input": {"uri": source.uri, "kind": source.kind, "sha256": source.sha256},
        "settings": settings,
    }
    if meta["format"] == "webdataset":
        meta["readers"] = {
            "timm_info": TIMM_INFO,
            "wids_index": wids_index_name(split),
            "timm_split": timm_split(split, num_shards, records),
        }
    return meta


def _reader_files(metadata: dict) -> dict[str, dict]:
    """The files PyTorch readers need beside WebDataset shards (transforms/webdataset_info.py)."""
    if metadata["format"] != "webdataset":
        return {}
    split, shards = metadata["split"], metadata["shards"]
    return {
        TIMM_INFO: timm_info(split, shards, metadata["labels"]["num_classes"]),
        wids_index_name(split): wids_index(split, shards),
    }


def write_outputs(
    output: str,
    metadata: dict,
    rejections: Iterable[Rejection],
    vocabulary: Vocabulary,
    fragments: Iterable[int] | None = None,
) -> None:
    """labels.txt, the rejected report (in list order), the readers' info files of WebDataset
    shards and, last, dataset.json.

    Args:
      fragments: when given, the report is these fragments (write_rejected_fragment) joined
        in order, and `rejections` is not used.
    """
    with atomic_output(FileSystems.join(output, LABELS_TXT)) as f:
        f.write("".join(f"{name}\n" for name in vocabulary.names).encode("utf-8"))
    with atomic_output(FileSystems.join(output, metadata["rejected"]["file"])) as f:
        if fragments is None:
            for rejection in sorted(rejections):
                f.write(json.dumps(rejection.to_json_dict(), ensure_ascii=False).encode("utf-8"))
                f.write(b"\n")
        else:
            for index in sorted(fragments):
                path = rejected_fragment_path(output, metadata["split"], index)
                with FileSystems.open(path) as fragment:
                    while chunk := fragment.read(8 << 20):
                        f.write(chunk)
    for name, content in _reader_files(metadata).items():
        with atomic_output(FileSystems.join(output, name)) as f:
            f.write(json.dumps(content, indent=1).encode("utf-8") + b"\n")
    crash_point("finalize_before_dataset_json")
    # dataset.json goes last: its presence means the output is complete.
    with atomic_output(FileSystems.join(output, DATASET_JSON)) as f:
        f.write(json.dumps(metadata, indent=1, ensure_ascii=False).encode("utf-8") + b"\n")


def remove_reader_files(output: str, split: str) -> None:
    """Before an --overwrite: the WebDataset readers' files of this split (they would describe
    the old shards); an `_info.json` that lists other splits is not ours and stays."""
    info_path = FileSystems.join(output, TIMM_INFO)
    doomed = [FileSystems.join(output, wids_index_name(split))]
    if FileSystems.exists(info_path):
        try:
            with FileSystems.open(info_path) as f:
                if set(json.loads(f.read()).get("splits", {})) == {split}:
                    doomed.append(info_path)
        except (ValueError, AttributeError):
            pass
    remove_files(doomed)


def remove_rejected_fragments(output: str, split: str) -> None:
    """Once the report is in place (or before a run replaces an output)."""
    remove_tree(_fragments_dir(output, split))


def remove_stale_files(output: str, split: str, keep: Iterable[str]) -> list[str]:
    """Deletes shards of `split` not in `keep` (an overwritten run's, in any format, and their
    index files) and the temporary files of writers that were killed, in the output and in the
    journal."""
    keep = set(keep)
    patterns = [
        *(FileSystems.join(output, shard_glob(split, fmt)) for fmt in EXTENSIONS),
        FileSystems.join(output, shard_glob(split, "tfrecord") + INDEX_SUFFIX),
        FileSystems.join(output, f".*{TMP_MARKER}*"),
        FileSystems.join(journal_dir(output, split), f".*{TMP_MARKER}*"),
    ]
    stale = [
        m.path
        for result in FileSystems.match(patterns)
        for m in result.metadata_list
        if FileSystems.split(m.path)[1] not in keep
    ]
    if stale:
        FileSystems.delete(stale)
    return stale


def output_files(metadata: dict) -> list[str]:
    """The shard and index file names a dataset.json lists."""
    names = [s["name"] for s in metadata["shards"]]
    return names + [s["index"]["name"] for s in metadata["shards"] if "index" in s]


def load_metadata(output: str) -> dict:
    with FileSystems.open(FileSystems.join(output, DATASET_JSON)) as f:
        return json.loads(f.read())
