"""Writing one shard: read, decode, resize and encode its images, in key order, atomically.

This is where the image bytes are first touched: only index entries crossed the shuffle.
"""

from __future__ import annotations

import collections
import contextlib
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from imgshard.audit.shard_scan import iter_shard_features
from imgshard.pipeline import journal
from imgshard.pipeline.analysis import image_summary
from imgshard.pipeline.seams import crash_point
from imgshard.transforms.boxes import Box, boxes_key, transform_boxes
from imgshard.transforms.example import image_example
from imgshard.transforms.image import ImageRejected, ImageSpec, process_image
from imgshard.transforms.index import resolve_image_path
from imgshard.transforms.labels import Vocabulary
from imgshard.transforms.reading import (
    READ_THREADS,
    ReadFailed,
    is_network_mount,
    read_ahead,
    read_image,
    read_local_ahead,
)
from imgshard.transforms.record_index import index_name, write_index
from imgshard.transforms.records import REJECTED, Rejection, ShardResult, unpack_shard_entry
from imgshard.transforms.shard_names import shard_name
from imgshard.transforms.sharding import drop_duplicates
from imgshard.transforms.storage import atomic_output
from imgshard.transforms.tfrecord import TFRecordWriter
from imgshard.transforms.webdataset_output import WebDatasetShardWriter, webdataset_sample

__all__ = [
    "METRICS_NAMESPACE",
    "WriteShard",
    "WriterConfig",
    "write_shard",
]

METRICS_NAMESPACE = "imgshard"


def _record_writer(fmt: str, stream, shard: int):
    """A writer of records onto the shard's stream, as a context manager."""
    if fmt == "array_record":
        from imgshard.transforms.array_record_output import ArrayRecordShardWriter

        return ArrayRecordShardWriter(stream)
    if fmt == "webdataset":
        return WebDatasetShardWriter(stream, shard)
    return contextlib.nullcontext(TFRecordWriter(stream))


def _record_encoder(fmt: str):
    """What the format's writer takes for one image: a serialized tf.train.Example, or a
    WebDataset sample (both made from image_example's arguments)."""
    return webdataset_sample if fmt == "webdataset" else image_example


@dataclass(frozen=True)
class WriterConfig:
    """The settings a shard writer needs: made by pipeline/options.py `writer_config` from the
    run's ConvertConfig (same names, same meaning), so no default is declared here.

    Attributes:
    output: the output folder (local or gs://).
    split: the file-name prefix, e.g. "train".
    image_root: what relative list paths resolve against.
    image: decode/resize/encode settings.
    label_offset: added to every 0-based id written to image/class/label.
    summaries: also return a statistics summary of every written image (--analyze).
    allow_outside_root: read list paths that resolve outside image_root.
    fingerprint: the run's identity (pipeline/journal.py); when set, every written shard
      is journaled with its size and SHA-256.
    resume: skip a shard whose journal entry is this run's and whose file still matches it.
    boxes: write image/object/bbox/* features (--boxes), from the boxes given to write_shard.
    index_files: write `{shard}.idx` beside each TFRecord shard, before the shard appears.
    format: "tfrecord", "array_record" or "webdataset".
    """

    output: str
    split: str
    image_root: str
    image: ImageSpec
    label_offset: int
    summaries: bool
    allow_outside_root: bool
    fingerprint: str
    resume: bool
    boxes: bool
    index_files: bool
    format: str


def write_shard(
    shard: int,
    entries: list[tuple],
    num_shards: int,
    vocabulary: Vocabulary,
    config: WriterConfig,
    boxes: Mapping[str, tuple[Box, ...]] | None = None,
) -> tuple[ShardResult, list[Rejection]]:
    """Writes the shard `shard_name(split, shard, num_shards, format)` from its index entries.

    Args:
      entries: `(key, line, path, label_id)` tuples; written in key order, first listing of a
        path only.
      boxes: file name without extension -> its boxes in the stored image (config.boxes).

    Returns:
      The shard's result, the entries rejected while writing it, and the image summaries
      (empty unless config.summaries).
    """
    kept, rejections = drop_duplicates(entries, vocabulary.names)
    label_counts: collections.Counter[int] = collections.Counter()
    summaries = []
    bytes_in = with_boxes = 0
    name = shard_name(config.split, shard, num_shards, config.format)
    index = ("", 0, "")
    with (
        atomic_output(FileSystems.join(config.output, name)) as stream,
        _record_writer(config.format, stream, shard) as writer,
    ):
        encode = _record_encoder(config.format)
        where = resolve_image_path(config.image_root, kept[0][2]) if kept else ""

        def read(entry):
            return read_image(config.image_root, entry[2], config.allow_outside_root)

        if "://" in where or is_network_mount(os.path.dirname(where)):
            # an object store or a network mount: enough reads in flight to hide its latency
            reads = read_ahead(kept, read, threads=READ_THREADS)
        else:
            reads = read_local_ahead(
                kept, read, lambda e: resolve_image_path(config.image_root, e[2])
            )
        for (_, line, path, label), data in reads:
            try:
                if isinstance(data, ReadFailed):
                    raise data
                image = process_image(data, config.image)
            except (ReadFailed, ImageRejected) as failure:
                rejections.append(
                    Rejection(line, path, vocabulary.names[label], failure.reason, failure.detail)
                )
                continue
            image_boxes = None
            if config.boxes:
                found = (boxes or {}).get(boxes_key(path), ())
                image_boxes = transform_boxes(found, image.orientation, image.crop)
                with_boxes += bool(image_boxes)
            writer.write(
                encode(
                    image.encoded,
                    image.height,
                    image.width,
                    image.channels,
                    label + config.label_offset,
                    vocabulary.names[label],
                    path,
                    image_boxes,
                )
            )
            label_counts[label] += 1
            bytes_in += len(data)
            if config.summaries:
                summaries.append(image_summary(image.encoded))
        if config.index_files:  # in place before the shard is, so a visible shard has its index
            idx = index_name(name)
            index = (idx, *write_index(FileSystems.join(config.output, idx), writer.frame_sizes))
    if config.boxes:  # in the run's summary: boxes matched by file name, or none at all
        Metrics.counter(METRICS_NAMESPACE, "records_with_boxes").inc(with_boxes)
    result = ShardResult(
        shard,
        name,
        writer.records,
        writer.bytes,
        writer.sha256,
        dict(sorted(label_counts.items())),
        bytes_in,
        *index,
    )
    return result, rejections, summaries


def resume_shard(
    shard: int, num_shards: int, config: WriterConfig
) -> tuple[ShardResult, list[Rejection], list[dict]] | None:
    """The journaled result of a shard already written by this run, if its file verifies."""
    name = shard_name(config.split, shard, num_shards, config.format)
    entry = journal.load_shard_entry(config.output, config.split, config.fingerprint, name)
    if entry is None:
        return None
    result, rejections = entry
    path = FileSystems.join(config.output, name)
    if not journal.file_matches(path, result.bytes, result.sha256):
        return None
    if result.index_name and not journal.file_matches(
        FileSystems.join(config.output, result.index_name), result.index_bytes, result.index_sha256
    ):
        return None  # the shard is rewritten with its index: the same bytes again
    summaries = []
    if config.summaries:  # the analyzers need them again; the written pixels give them
        for features in iter_shard_features(path):
            summaries.append(image_summary(features["image/encoded"][0]))
    return result, rejections, summaries


class WriteShard(beam.DoFn):
    """(shard, [packed entry or None, ...]) -> ShardResult; rejections to the REJECTED output.
    Entries come packed (records.pack_shard_entry) and are unpacked one shard at a time.

    A None entry is the marker that guarantees every shard id a group, so empty shards are
    still written and the set of file names is always complete.
    """

    SUMMARIES = "summaries"

    def __init__(self, config: WriterConfig):
        self._config = config
        self._written = Metrics.counter(METRICS_NAMESPACE, "records_written")
        self._bytes_in = Metrics.counter(METRICS_NAMESPACE, "bytes_in")
        self._bytes_out = Metrics.counter(METRICS_NAMESPACE, "bytes_out")
        self._shard_seconds = Metrics.distribution(METRICS_NAMESPACE, "shard_write_ms")
        self._resumed = Metrics.counter(METRICS_NAMESPACE, "shards_resumed")

    def process(self, element, num_shards: int, vocabulary: Vocabulary, boxes=None):
        shard, grouped = element
        entries = [unpack_shard_entry(e) for e in grouped if e is not None]
        config = self._config
        resumed = resume_shard(shard, num_shards, config) if config.resume else None
        if resumed:
            result, rejections, summaries = resumed
            self._resumed.inc()
        else:
            started = time.monotonic()
            result, rejections, summaries = write_shard(
                shard, entries, num_shards, vocabulary, config, boxes
            )
            crash_point("shard_renamed")
            if config.fingerprint:
                journal.write_shard_entry(
                    config.output, config.split, config.fingerprint, result, rejections
                )
            crash_point("shard_journaled")
            self._shard_seconds.update(int((time.monotonic() - started) * 1000))
            self._written.inc(result.records)
            self._bytes_in.inc(result.bytes_in)
            self._bytes_out.inc(result.bytes)
        for rejection in rejections:
            Metrics.counter(METRICS_NAMESPACE, f"rejected_{rejection.reason}").inc()
            yield beam.pvalue.TaggedOutput(REJECTED, rejection)
        for summary in summaries:
            yield beam.pvalue.TaggedOutput(self.SUMMARIES, summary)
        yield result
