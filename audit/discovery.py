"""Which files an audit reads: the shards of a folder or glob, and the dataset.json that
describes them (when it does)."""

from __future__ import annotations

from apache_beam.io.filesystems import FileSystems

from imgshard.audit.errors import AuditError
from imgshard.pipeline import metadata
from imgshard.transforms.record_index import INDEX_SUFFIX
from imgshard.transforms.shard_names import EXTENSIONS

__all__ = ["find_shards"]

_NOT_SHARDS = (".json", ".jsonl", ".txt", ".png", ".csv", ".md", INDEX_SUFFIX)
_SHARD_EXTENSIONS = tuple(f".{extension}" for extension in EXTENSIONS.values())


def find_shards(target: str) -> tuple[list[str], str, dict | None]:
    """(shard paths in name order, their folder, dataset.json or None) for a folder, a glob or
    one shard file (named by its format's extension: matched as a glob of itself)."""
    is_glob = any(c in target for c in "*?[") or target.endswith(_SHARD_EXTENSIONS)
    folder = FileSystems.split(target)[0] if is_glob else target.rstrip("/")
    meta = None
    meta_path = FileSystems.join(folder, metadata.DATASET_JSON)
    if FileSystems.exists(meta_path):
        meta = metadata.load_metadata(folder)
    if is_glob:
        paths = [
            m.path
            for m in FileSystems.match([target])[0].metadata_list
            # `train-*` also matches train-rejected.jsonl and the index files
            if not m.path.endswith(_NOT_SHARDS)
        ]
        if meta and {FileSystems.split(p)[1] for p in paths} != {s["name"] for s in meta["shards"]}:
            meta = None  # the glob picks other files than dataset.json describes
    elif meta:
        paths = [FileSystems.join(folder, s["name"]) for s in meta["shards"]]
    else:
        paths = [
            m.path
            for m in FileSystems.match([FileSystems.join(folder, "*")])[0].metadata_list
            if not FileSystems.split(m.path)[1].startswith(".") and not m.path.endswith(_NOT_SHARDS)
        ]
    paths = sorted(paths, key=lambda p: FileSystems.split(p)[1])
    if not paths:
        raise AuditError(f"no shard files found at {target}")
    return paths, folder, meta
