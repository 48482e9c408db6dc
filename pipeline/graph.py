"""The conversion job's graph, top-down in one place.

ReadIndex        list / CSV in byte-range splits, folder tree by class, in parallel
                 (pipeline/read_index.py)  -> (line, path, label)   (+ rejected)
SummarizeIndex   one combine: distinct labels, entries, every input line (+ rejected)
BuildVocabulary  distinct labels           -> Vocabulary                       (side input)
ChooseShardCount count of entries          -> N                                (side input)
AssignShard      -> (shard, packed (key, line, path, label_id))  key = hash(seed, path)
GroupByShard     only these ~58-byte index entries cross the shuffle
ReadBoxes        with --boxes: box files read in parallel -> file name -> its boxes (side input)
WriteShard       per shard: read + decode + resize + encode in key order, one atomic file
                 (and its index file), then its journal entry (or, with --resume, the
                 journaled result if it verifies)
Finalize         dataset.json, labels.txt, {split}-rejected.jsonl, from combined counts
                 (records and bytes per shard, label counts summed, rejections by reason)
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.pvalue import AsDict, AsList, AsSingleton, TaggedOutput

from imgshard.pipeline import metadata
from imgshard.pipeline.analysis import TRANSFORM_DIR
from imgshard.pipeline.combiners import IndexSummary, SumLabelCounts
from imgshard.pipeline.flatten import FlattenOwnInputs
from imgshard.pipeline.options import ConvertConfig, writer_config
from imgshard.pipeline.read_index import ReadIndex
from imgshard.pipeline.seams import crash_point
from imgshard.pipeline.shard_writer import METRICS_NAMESPACE, WriteShard
from imgshard.transforms import records
from imgshard.transforms.boxes import BoxesError, box_files, merge_boxes, read_box_file
from imgshard.transforms.input_identity import describe_change, input_identity
from imgshard.transforms.labels import Vocabulary, build_vocabulary
from imgshard.transforms.records import (
    REJECTED,
    Rejection,
    ShardResult,
    SourceInfo,
    pack_shard_entry,
    unpack_shard_entry,
)
from imgshard.transforms.sharding import (
    auto_num_shards,
    contiguous_shard,
    drop_duplicates,
    estimated_record_bytes,
    shard_key,
)
from imgshard.transforms.storage import remove_tree

__all__ = ["Indexed", "build_graph", "index_and_assign"]

_TFT_TEMP = ".tft-tmp"


class AssignShard(beam.DoFn):
    """(line, path, label) -> (shard, pack_shard_entry(sort_key, line, path, label_id));
    unknown labels rejected."""

    def __init__(self, seed: int, shuffle: str):
        self._seed = seed
        self._shuffle = shuffle

    def process(self, entry: tuple, num_shards: int, vocabulary: Vocabulary, source: SourceInfo):
        line, path, label = entry
        label_id = vocabulary.resolve(label)
        if label_id is None:
            beam.metrics.Metrics.counter(
                METRICS_NAMESPACE, f"rejected_{records.UNKNOWN_LABEL}"
            ).inc()
            yield TaggedOutput(
                REJECTED,
                Rejection(
                    line,
                    path,
                    label,
                    records.UNKNOWN_LABEL,
                    f"label {label!r} is not in the {vocabulary.kind} vocabulary "
                    f"of {len(vocabulary.names)} classes",
                ),
            )
            return
        if self._shuffle == "global":
            key = shard_key(self._seed, path)
            shard = key % num_shards
        else:
            key = line
            shard = contiguous_shard(line, source.inputs, num_shards)
        yield shard, pack_shard_entry(key, line, path, label_id)


def _drop_duplicate_paths(path_and_entries, vocabulary: Vocabulary):
    """(path, [(shard, packed entry)]) -> the first listing; later ones rejected."""
    _, shard_entries = path_and_entries
    shard_entries = [(shard, unpack_shard_entry(packed)) for shard, packed in shard_entries]
    shard_of = {entry[1]: shard for shard, entry in shard_entries}
    kept, rejections = drop_duplicates((entry for _, entry in shard_entries), vocabulary.names)
    for entry in kept:
        yield shard_of[entry[1]], pack_shard_entry(*entry)
    for rejection in rejections:
        yield TaggedOutput(REJECTED, rejection)


def _shard_row(shard: ShardResult) -> ShardResult:
    """What dataset.json lists per shard: its name, counts and hashes, not its label counts."""
    return shard._replace(label_counts={})


class Finalize(beam.DoFn):
    """Writes dataset.json, labels.txt and the rejected report once every shard exists.

    Its memory does not grow with the rejections or the classes per shard: it gets one small
    row per shard (name, records, bytes, hashes), the label counts summed across shards
    (SumLabelCounts), the rejections as counts by reason and as the report fragments the
    workers wrote (WriteRejectedFragments). It refuses an input whose metadata changed since
    the run started (transforms/input_identity.py).
    """

    def __init__(self, config: ConvertConfig, version: str, input_identity: dict | None):
        self._config = config
        self._version = version
        self._input_identity = input_identity

    def process(
        self,
        _,
        num_shards,
        shards,
        label_counts,
        rejected_counts,
        fragments,
        source,
        vocabulary,
        analyzed=(),
    ):
        if self._input_identity is not None:
            changed = describe_change(
                source.uri,
                self._input_identity,
                input_identity(source.uri, self._config.input_kind),
            )
            if changed:
                raise RuntimeError(changed)
        meta = metadata.build_metadata(
            split=self._config.split,
            num_shards=num_shards,
            shards=shards,
            label_counts=label_counts,
            rejected_by_reason=dict(rejected_counts),
            source=source,
            vocabulary=vocabulary,
            settings=self._config.to_json_dict(),
            version=self._version,
        )
        if self._config.analyze:
            meta["transform_fn"] = TRANSFORM_DIR
            remove_tree(FileSystems.join(self._config.output, _TFT_TEMP))
        metadata.write_outputs(self._config.output, meta, (), vocabulary, fragments)
        crash_point("finalize_after_dataset_json")
        metadata.remove_stale_files(
            self._config.output, self._config.split, metadata.output_files(meta)
        )
        metadata.remove_rejected_fragments(self._config.output, self._config.split)
        yield meta


def _read_box_file_or_skip(path: str):
    """read_box_file, but a malformed XML annotation (not XML, no <size>, a corner not a
    number) is skipped: logged with its name and reason, counted as box_files_skipped (the
    summary warns), its image written without boxes. Failing the job for one bad file of
    ~545k would lose the whole run; checking them all in the driver first would read every
    file twice. (A CSV is checked before the job starts, see boxes.check_and_hash_csv.)"""
    try:
        yield from list(read_box_file(path))
    except BoxesError as e:
        if path.lower().endswith(".csv"):
            raise
        logging.getLogger("imgshard").error("--boxes: skipped %s", e)
        beam.metrics.Metrics.counter(METRICS_NAMESPACE, "box_files_skipped").inc()


class Indexed(NamedTuple):
    """The index stages' outputs, shared by the conversion and its plan (pipeline/plan.py)."""

    source: object  # AsSingleton(SourceInfo)
    vocabulary: beam.PCollection  # one Vocabulary
    num_shards: beam.PCollection  # one int
    keyed: beam.PCollection  # (shard, packed (key, line, path, label_id)), duplicates dropped for
    # --shuffle none (with global keys they meet in one shard, whose writer drops them)
    rejected: list  # PCollections of Rejection


def index_and_assign(
    p: beam.Pipeline, config: ConvertConfig, given_labels: list[str] | None
) -> Indexed:
    """ReadIndex, BuildVocabulary, ChooseShardCount, AssignShard (see the module docstring)."""
    index = p | "ReadIndex" >> ReadIndex(config)
    entries = index.entries  # IndexEntry(line, path, label)
    totals = (
        (entries, index.rejected)
        | "CollectInputs" >> FlattenOwnInputs()
        | "SummarizeIndex" >> beam.CombineGlobally(IndexSummary())
    )
    kind, uri = config.input_kind, config.input
    source = AsSingleton(
        totals
        | "DescribeSource"
        >> beam.Map(lambda t, sha: SourceInfo(kind, uri, sha, t.inputs), AsSingleton(index.sha256))
    )
    label_kind = "name" if config.input_kind == "folder" else config.label_kind
    vocabulary = totals | "BuildVocabulary" >> beam.Map(
        lambda t: build_vocabulary(t.labels, label_kind, given_labels, config.max_int_labels)
    )
    record_bytes = estimated_record_bytes(config.image.resize)
    num_shards = totals | "ChooseShardCount" >> beam.Map(
        lambda t: config.num_shards or auto_num_shards(t.entries, record_bytes)
    )

    assigned = entries | "AssignShard" >> beam.ParDo(
        AssignShard(config.seed, config.shuffle),
        num_shards=AsSingleton(num_shards),
        vocabulary=AsSingleton(vocabulary),
        source=source,
    ).with_outputs(REJECTED, main="keyed")
    keyed = assigned.keyed  # (shard, pack_shard_entry(key, line, path, label_id))
    rejected = [index.rejected, assigned[REJECTED]]

    if config.shuffle == "none":
        # Hashed keys put every listing of a path into one shard, where the writer drops the
        # repeats; list-order shards do not, so repeats are found by a grouping of their own.
        deduped = (
            keyed
            | "KeyByPath" >> beam.Map(lambda kv: (unpack_shard_entry(kv[1])[2], kv))
            | "GroupByPath" >> beam.GroupByKey()
            | "DropDuplicatePaths"
            >> beam.FlatMap(_drop_duplicate_paths, AsSingleton(vocabulary)).with_outputs(
                REJECTED, main="kept"
            )
        )
        keyed = deduped.kept
        rejected.append(deduped[REJECTED])
    return Indexed(source, vocabulary, num_shards, keyed, rejected)


def build_graph(
    p: beam.Pipeline,
    config: ConvertConfig,
    given_labels: list[str] | None,
    version: str,
    fingerprint: str = "",
    input_identity: dict | None = None,
) -> None:
    """Adds the conversion to `p`.

    Args:
      fingerprint: the run's identity; shards are journaled under it (pipeline/journal.py).
      input_identity: the input's metadata when the run started (transforms/input_identity.py);
        Finalize refuses an input that changed since.
    """
    indexed = index_and_assign(p, config, given_labels)
    source, vocabulary, num_shards = indexed.source, indexed.vocabulary, indexed.num_shards
    rejected = list(indexed.rejected)

    keyed = indexed.keyed  # (shard, pack_shard_entry(key, line, path, label_id))

    boxes = {}
    if config.boxes:  # file name without extension -> its boxes, beside every shard writer
        found = (
            p
            | "BoxesSource" >> beam.Create([config.boxes])
            | "ListBoxFiles" >> beam.FlatMap(box_files)
            | "SpreadBoxFiles" >> beam.Reshuffle()  # ILSVRC has ~545k XML files: many readers
            | "ReadBoxes" >> beam.FlatMap(_read_box_file_or_skip)  # (name, boxes)
            | "MergeBoxes" >> beam.CombinePerKey(merge_boxes)
        )
        boxes = {"boxes": AsDict(found)}

    # One (shard, None) per shard id: every shard gets a group, so empty shards are written too.
    every_shard = num_shards | "EveryShard" >> beam.FlatMap(lambda n: ((i, None) for i in range(n)))
    written = (
        (keyed, every_shard)
        | "WithEveryShard" >> FlattenOwnInputs()
        | "GroupByShard" >> beam.GroupByKey()
        | "WriteShard"
        >> beam.ParDo(
            WriteShard(writer_config(config, fingerprint)),
            num_shards=AsSingleton(num_shards),
            vocabulary=AsSingleton(vocabulary),
            **boxes,
        ).with_outputs(REJECTED, WriteShard.SUMMARIES, main="shards")
    )
    rejected.append(written[REJECTED])
    shard_rows = written.shards | "ShardRows" >> beam.Map(_shard_row)
    label_counts = written.shards | "SumLabelCounts" >> beam.CombineGlobally(SumLabelCounts())
    all_rejected = tuple(rejected) | "CollectRejected" >> FlattenOwnInputs()
    rejected_counts = (
        all_rejected
        | "RejectedReasons" >> beam.Map(lambda r: r.reason)
        | "CountRejectedReasons" >> beam.combiners.Count.PerElement()
    )
    fragments = (
        all_rejected
        | "KeyRejectedByLines" >> beam.Map(lambda r: (r.line // metadata.FRAGMENT_LINES, r))
        | "GroupRejected" >> beam.GroupByKey()
        | "WriteRejectedFragments"
        >> beam.MapTuple(
            lambda index, group: metadata.write_rejected_fragment(
                config.output, config.split, index, group
            )
        )
    )

    analyzed = {}
    if config.analyze:
        from imgshard.pipeline.analysis import AnalyzeImages, class_summaries

        class_rows = vocabulary | "ClassSummaries" >> beam.FlatMap(
            lambda v: class_summaries(v.names)
        )
        done = (
            (written[WriteShard.SUMMARIES], class_rows)
            | "WithClassSummaries" >> FlattenOwnInputs()
            | "AnalyzeImages"
            >> AnalyzeImages(
                config.output, config.analyze_image_size, FileSystems.join(config.output, _TFT_TEMP)
            )
        )
        analyzed = {"analyzed": AsList(done)}  # dataset.json waits for the transform_fn

    _ = (
        p
        | "FinalizeTrigger" >> beam.Create([None])
        | "Finalize"
        >> beam.ParDo(
            Finalize(config, version, input_identity),
            num_shards=AsSingleton(num_shards),
            shards=AsList(shard_rows),
            label_counts=AsSingleton(label_counts),
            rejected_counts=AsList(rejected_counts),
            fragments=AsList(fragments),
            source=source,
            vocabulary=AsSingleton(vocabulary),
            **analyzed,
        )
    )
