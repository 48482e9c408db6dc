"""The run journal: what a rerun needs to trust the shards an interrupted run left behind.

    {output}/.{split}-journal/run.json                   what the run is (its identity)
    {output}/.{split}-journal/{shard file}.json          one per shard, written after the shard

A shard's entry is written (atomically) only after its file is in place under the final name,
and records the file's size and SHA-256 with everything the finalize step needs from it (label
counts, the inputs rejected while writing it). `--resume` skips a shard whose entry belongs to
this run and whose file still has that size and hash; any other shard is written again, which
reproduces the same bytes. The journal stays after the run (a few hundred bytes per shard), so
a finished output can be checked and repaired by `--resume` too.
"""

from __future__ import annotations

import hashlib
import json

from apache_beam.io.filesystems import FileSystems

from imgshard.transforms.records import Rejection, ShardResult
from imgshard.transforms.shard_names import shard_glob
from imgshard.transforms.storage import atomic_output

__all__ = [
    "RUN_FILE",
    "describe_differences",
    "file_matches",
    "journal_dir",
    "journaled_results",
    "journaled_shards",
    "load_run",
    "load_shard_entry",
    "run_fingerprint",
    "write_run",
    "write_shard_entry",
]

RUN_FILE = "run.json"
_HASH_CHUNK = 8 << 20


def journal_dir(output: str, split: str) -> str:
    return FileSystems.join(output, f".{split}-journal")


def run_fingerprint(identity: dict) -> str:
    """A short hash of everything that decides the output's bytes."""
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def write_run(output: str, split: str, identity: dict) -> None:
    record = {"fingerprint": run_fingerprint(identity), "identity": identity}
    with atomic_output(FileSystems.join(journal_dir(output, split), RUN_FILE)) as f:
        f.write(json.dumps(record, indent=1, sort_keys=True).encode("utf-8") + b"\n")


def load_run(output: str, split: str) -> dict | None:
    """The journal's run record, or None when there is none (or it cannot be read)."""
    path = FileSystems.join(journal_dir(output, split), RUN_FILE)
    try:
        with FileSystems.open(path) as f:
            return json.loads(f.read())
    except Exception:
        return None


def describe_differences(recorded: dict, current: dict, prefix: str = "") -> list[str]:
    """`key: old -> new` for every setting that differs between two identities."""
    differences = []
    for key in sorted(set(recorded) | set(current)):
        old, new = recorded.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            differences += describe_differences(old, new, f"{prefix}{key}.")
        elif old != new:
            differences.append(f"{prefix}{key}: {old!r} -> {new!r}")
    return differences


def _entry_path(output: str, split: str, shard_name: str) -> str:
    return FileSystems.join(journal_dir(output, split), f"{shard_name}.json")


def write_shard_entry(
    output: str, split: str, fingerprint: str, result: ShardResult, rejections: list[Rejection]
) -> None:
    entry = {
        "fingerprint": fingerprint,
        "result": result._asdict(),
        "rejections": [r.to_json_dict() for r in rejections],
    }
    with atomic_output(_entry_path(output, split, result.name)) as f:
        f.write(json.dumps(entry, sort_keys=True).encode("utf-8"))


def load_shard_entry(
    output: str, split: str, fingerprint: str, shard_name: str
) -> tuple[ShardResult, list[Rejection]] | None:
    """The journaled result of a shard of this run, or None."""
    try:
        with FileSystems.open(_entry_path(output, split, shard_name)) as f:
            entry = json.loads(f.read())
    except Exception:
        return None
    if entry.get("fingerprint") != fingerprint:
        return None
    fields = entry["result"]
    fields["label_counts"] = {int(k): v for k, v in fields["label_counts"].items()}
    rejections = [Rejection(**r) for r in entry["rejections"]]
    return ShardResult(**fields), rejections


def journaled_results(output: str, split: str, fingerprint: str) -> dict[str, ShardResult]:
    """The journaled result of every shard this run has completed (kept or written), by name."""
    pattern = FileSystems.join(journal_dir(output, split), f"{shard_glob(split)}.json")
    try:
        found = FileSystems.match([pattern])[0].metadata_list
    except Exception:  # no journal yet
        return {}
    results = {}
    for m in found:
        name = m.path.rsplit("/", 1)[-1].removesuffix(".json")
        entry = load_shard_entry(output, split, fingerprint, name)
        if entry is not None:
            results[name] = entry[0]
    return results


def journaled_shards(output: str, split: str, fingerprint: str) -> list[str]:
    """Names of the shards this run has journaled as complete (kept or written)."""
    return sorted(journaled_results(output, split, fingerprint))


def file_matches(path: str, size: int, sha256: str) -> bool:
    """Whether the file exists with exactly this size and SHA-256 (size first: it is cheap)."""
    try:
        found = FileSystems.match([path])[0].metadata_list
    except Exception:
        return False
    if len(found) != 1 or found[0].size_in_bytes != size:
        return False
    digest = hashlib.sha256()
    with FileSystems.open(path) as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest() == sha256
