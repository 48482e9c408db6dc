"""What a run does with an output folder that is not empty: refuse, resume or replace.

A run records its identity (settings, the input's metadata (transforms/input_identity.py),
labels file hash, tool version) in the
output's journal before it starts (pipeline/journal.py); `--resume` continues only a run of
the same identity, `--overwrite` clears the old run's claims first, and anything else is
refused, so old and new shards are never silently mixed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os

from apache_beam.io.filesystems import FileSystems

from imgshard.pipeline import journal, metadata
from imgshard.pipeline.errors import ConversionError
from imgshard.pipeline.options import ConvertConfig
from imgshard.transforms.boxes import boxes_source_sha256
from imgshard.transforms.image import image_library
from imgshard.transforms.input_identity import input_identity
from imgshard.transforms.storage import TMP_MARKER, remove_files, remove_tree

__all__ = ["prepare_output", "run_identity"]

_LOG = logging.getLogger("imgshard")


def run_identity(config: ConvertConfig, version: str) -> dict:
    """Everything that decides the output's bytes: a run is only resumed by the same one."""
    settings = config.shard_settings()
    labels_sha256 = None
    if config.labels_file:
        with FileSystems.open(config.labels_file) as f:
            labels_sha256 = hashlib.sha256(f.read()).hexdigest()
    identity = {
        "tool_version": version,
        "image_library": image_library(),  # decoders and resamplers differ in their pixels
        "settings": settings,
        # size and update time, not a hash: the driver never reads the whole input
        "input": input_identity(config.input, config.input_kind),
        "labels_sha256": labels_sha256,
    }
    if config.boxes:  # the boxes written into the records
        identity["boxes_sha256"] = boxes_source_sha256(config.boxes)
    return json.loads(json.dumps(identity))  # as the journal holds it: tuples become lists


def _existing_files(output: str) -> list[str]:
    """Up to 5 files under the output (hidden ones included), relative to it.

    Temporary files of killed writers do not count: a run killed as it started (before its
    run.json was in place) leaves nothing that must be resumed.
    """
    if "://" in output:
        try:
            found = FileSystems.match([FileSystems.join(output, "**")], limits=[1000])[0]
            paths = [m.path for m in found.metadata_list]
        except Exception:  # no such prefix
            paths = []
    else:
        paths = [os.path.join(folder, n) for folder, _, names in os.walk(output) for n in names]
    kept = [p for p in paths if TMP_MARKER not in p.rsplit("/", 1)[-1]]
    return sorted(p[len(output) :].lstrip("/") for p in kept)[:5]


def _refuse_another_split(config: ConvertConfig) -> None:
    """dataset.json describes one split per folder: overwriting another split's folder would
    delete that split's dataset.json and leave its shards undescribed."""
    if not FileSystems.exists(FileSystems.join(config.output, metadata.DATASET_JSON)):
        return
    split = metadata.load_metadata(config.output).get("split", config.split)
    if split != config.split:
        parent = config.output.rstrip("/").rsplit("/", 1)[0]
        raise ConversionError(
            f"--overwrite: {config.output} holds the {split!r} split; --split {config.split} "
            f"would delete its dataset.json. One split per folder: write it to its own, e.g. "
            f"--output {parent}/{config.split}"
        )


def prepare_output(config: ConvertConfig, identity: dict) -> str:
    """Refuses to mix with an existing output unless told how; records this run's identity
    and returns its fingerprint, which the shard writers journal under.

    Empty output: start. --overwrite: the old dataset.json and journal go first, so the folder
    never looks complete while old and new shards sit side by side. --resume: only into an
    unfinished or finished run of the same identity.
    """
    existing = _existing_files(config.output)
    recorded = journal.load_run(config.output, config.split)
    fingerprint = journal.run_fingerprint(identity)
    if existing and config.resume:
        if recorded is None:
            raise ConversionError(
                f"--resume: {config.output} holds no journal of an imgshard {config.split!r} run "
                f"(it holds {', '.join(existing)}); pass --overwrite to replace it, or choose "
                "another --output"
            )
        if recorded.get("fingerprint") != fingerprint:
            differences = journal.describe_differences(recorded.get("identity", {}), identity)
            raise ConversionError(
                f"--resume: {config.output} was written by a different configuration, so its "
                f"shards cannot be reused: {'; '.join(differences) or 'unreadable journal'}. "
                "Run with the same settings and input, or pass --overwrite, or another --output"
            )
        _LOG.info("resuming the run in %s", config.output)
        return fingerprint
    if existing and not config.overwrite:
        state = (
            "a finished conversion"
            if FileSystems.exists(FileSystems.join(config.output, metadata.DATASET_JSON))
            else "an unfinished conversion"
            if recorded
            else "other files"
        )
        raise ConversionError(
            f"{config.output} is not empty: it holds {state} ({', '.join(existing)}). Pass "
            "--resume to continue or check a run of the same settings, --overwrite to replace "
            "it, or choose another --output"
        )
    if existing:  # --overwrite
        _refuse_another_split(config)
        remove_files([FileSystems.join(config.output, metadata.DATASET_JSON)])
        metadata.remove_reader_files(config.output, config.split)
        remove_tree(journal.journal_dir(config.output, config.split))
        metadata.remove_rejected_fragments(config.output, config.split)
    journal.write_run(config.output, config.split, identity)
    return fingerprint
