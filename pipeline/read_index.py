"""ReadIndex: the input list, CSV or folder -> (line, path, label), with no single-worker stage.

List / CSV (transforms/list_splits.py):
  Splits      byte ranges of the file, from its size (the driver reads nothing else, but a
              CSV's first line: its header, passed to every split)
  CountLines  per split: lines starting in it, its bytes' SHA-256        (parallel)
  Layout      prefix sum -> each split's first line number               (one int per split)
  ParseSplit  per split: its lines, numbered from there                  (parallel)
Folder (transforms/class_folders.py):
  Classes     the class folder names (the driver lists only those)
  ListClass   per class: its sorted images and their SHA-256             (parallel)
  Layout      prefix sum over the classes in order -> each class's first rank
  EmitClass   per class: (rank, path, class)                             (parallel)

Entries keep the line number (the rank in the sorted listing) a front-to-back read gives, so
the output does not depend on how the input was split. Entries leave as plain tuples, not
IndexEntry: Beam's coder pickles a NamedTuple (113 bytes for an ILSVRC-like entry) but encodes
a tuple natively (50 bytes), and the local runner holds every entry until AssignShard has its
side inputs.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import apache_beam as beam
from apache_beam.pvalue import AsList, AsSingleton, TaggedOutput

from imgshard.pipeline.options import ConvertConfig
from imgshard.pipeline.seams import crash_point
from imgshard.pipeline.shard_writer import METRICS_NAMESPACE
from imgshard.transforms.class_folders import class_folders, folder_layout, list_class
from imgshard.transforms.index import (
    canonical_path,
    csv_columns,
    csv_header,
    parse_csv,
    parse_csv_rows,
    parse_list,
)
from imgshard.transforms.list_splits import (
    ListSplit,
    build_layout,
    count_split,
    owned_lines,
    plan_splits,
)
from imgshard.transforms.records import REJECTED, IndexEntry

__all__ = ["IndexRead", "ReadIndex"]

_LOG = logging.getLogger("imgshard")


class IndexRead(NamedTuple):
    entries: beam.PCollection  # (line, path, label): IndexEntry's fields, as a plain tuple
    rejected: beam.PCollection  # Rejection (unparseable lines)
    sha256: beam.PCollection  # one str: the input's combined SHA-256 (SourceInfo.sha256)


def _first_line(uri: str) -> bytes:
    return next(owned_lines(uri, ListSplit(0, 0, None)), b"")


class ParseSplitFn(beam.DoFn):
    """ListSplit -> (line, path, label); Rejection to REJECTED. Numbers lines from the layout."""

    def __init__(self, uri: str, kind: str, columns: tuple[int, int] | None, names):
        self._uri = uri
        self._kind = kind
        self._columns = columns  # the CSV header's (path, label) columns
        self._names = names  # the --path-column / --label-column names

    def _parsed(self, split: ListSplit, layout):
        if layout.whole:  # a CSV with a newline inside quotes: split 0 reads all, in order
            if split.index != 0:
                return
            _LOG.warning(
                "%s has a newline inside a quoted CSV field: it is read by one worker, whole",
                self._uri,
            )
            yield from parse_csv(owned_lines(self._uri, ListSplit(0, 0, None)), *self._names)
            return
        first = layout.first_lines[split.index]
        lines = owned_lines(self._uri, split)
        if self._kind != "csv":
            yield from parse_list(lines, first)
        elif self._columns is not None:
            if split.index == 0:
                next(lines, None)  # the header
                first += 1
            yield from parse_csv_rows(lines, first, self._columns)

    def process(self, split: ListSplit, layout):
        for item in self._parsed(split, layout):
            if isinstance(item, IndexEntry):
                crash_point("index_entry")
                yield tuple(item)
            else:
                beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"rejected_{item.reason}").inc()
                yield TaggedOutput(REJECTED, item)


def _emit_class(listing, layout):
    first = layout.first_ranks[listing.name]
    for offset, relative in enumerate(listing.relatives):
        crash_point("index_entry")
        yield first + offset, canonical_path(relative), listing.name


def _gathered(pbegin, counts, layout_of):
    """One layout from every split's (or class's) count, handed over as a side input: a
    combiners.ToList would cost six more ParDos, each a fixed cost of every run (Beam
    inspects every DoFn while building and runs each stage as a bundle). The layouts sort
    their counts, so the side input's order does not matter."""
    return (
        pbegin
        | "LayoutTrigger" >> beam.Create([None])
        | "Layout" >> beam.Map(lambda _, counted: layout_of(counted), AsList(counts))
    )


class ReadIndex(beam.PTransform):
    """The pipeline's root -> IndexRead (see the module docstring)."""

    def __init__(self, config: ConvertConfig):
        super().__init__()
        self._config = config

    def expand(self, pbegin) -> IndexRead:
        config = self._config
        if config.input_kind == "folder":
            return IndexRead(*self._folder(pbegin))
        return IndexRead(*self._list(pbegin))

    def _list(self, pbegin):
        config = self._config
        uri, kind = config.input, config.input_kind
        columns = None
        if kind == "csv":
            header = csv_header(_first_line(uri))
            if header is not None:
                columns = csv_columns(header, config.path_column, config.label_column)
        splits = (
            pbegin | "Splits" >> beam.Create(plan_splits(uri)) | "SpreadSplits" >> beam.Reshuffle()
        )
        counts = splits | "CountLines" >> beam.Map(lambda s: count_split(uri, s, kind == "csv"))
        layout = _gathered(pbegin, counts, build_layout)
        parsed = splits | "ParseSplit" >> beam.ParDo(
            ParseSplitFn(uri, kind, columns, (config.path_column, config.label_column)),
            layout=AsSingleton(layout),
        ).with_outputs(REJECTED, main="entries")
        sha256 = layout | "ListSha256" >> beam.Map(lambda layout: layout.sha256)
        return parsed.entries, parsed[REJECTED], sha256

    def _folder(self, pbegin):
        root = self._config.input.rstrip("/")
        listings = (
            pbegin
            | "Classes" >> beam.Create(class_folders(root))
            | "SpreadClasses" >> beam.Reshuffle()
            | "ListClass" >> beam.Map(lambda name: list_class(root, name))
        )
        counts = listings | "ClassCounts" >> beam.Map(
            lambda c: (c.name, len(c.relatives), c.sha256)
        )
        layout = _gathered(pbegin, counts, folder_layout)
        entries = listings | "EmitClass" >> beam.FlatMap(_emit_class, AsSingleton(layout))
        rejected = pbegin | "NoRejections" >> beam.Create([])
        sha256 = layout | "FolderSha256" >> beam.Map(lambda layout: layout.sha256)
        return entries, rejected, sha256
