"""One streaming pass over shards: framing/CRC, Example parsing, boxes, optional decode.

TFRecord shards are read frame by frame (both CRCs checked) while the index a random-access
reader would need is hashed on the way, so index files can be verified without a second
pass; ArrayRecord shards (`*.array_record`) are read through the array-record package;
WebDataset shards (`*.tar`) as a tar stream, their samples turned into the same features
(audit/webdataset_samples.py).

Memory grows with the number of records only by one small label code per record (the
image/filename of each, when a list is to be checked, goes to disk: accounting.RecordPaths);
image bytes are dropped as soon as they are checked.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import io
import logging
import tarfile
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from PIL import Image

from imgshard.audit.accounting import RecordPaths
from imgshard.audit.example_proto import parse_example
from imgshard.audit.webdataset_samples import (
    SampleProblem,
    group_samples,
    key_hash,
    sample_features,
)
from imgshard.transforms.example import BOX_COORDINATES, ExampleDecodeError
from imgshard.transforms.tfrecord import CorruptRecordError, iter_records
from imgshard.transforms.webdataset_output import iter_tar_members

ARRAY_RECORD_SUFFIX = ".array_record"
WEBDATASET_SUFFIX = ".tar"
_FRAME_OVERHEAD = 16  # TFRecord: 8 length + 4 length CRC + 4 data CRC bytes
_CHUNK = 8 << 20

__all__ = [
    "ARRAY_RECORD_SUFFIX",
    "WEBDATASET_SUFFIX",
    "ScanResult",
    "ShardScan",
    "box_problem",
    "iter_shard_features",
    "iter_shard_records",
    "scan_shards",
]

_LOG = logging.getLogger("imgshard")
MAX_ERRORS_KEPT = 100


@dataclass
class ShardScan:
    path: str
    records: int = 0
    bytes: int = 0
    sha256: str = ""
    label_counts: collections.Counter = field(default_factory=collections.Counter)
    # SHA-256 of the `offset length` index the records read imply (TFRecord shards only)
    index_sha256: str = ""


@dataclass
class ScanResult:
    """Attributes:
    shards: per-shard counts, in scan order.
    labels: label code of every record in raw order (shards by name, records in file order).
    label_codes: label value (int, or str for bytes labels) -> its code, in order of first
      appearance; `label_values` lists the values in code order.
    errors: (kind, shard, record index, detail), the first MAX_ERRORS_KEPT.
    error_counts: errors by kind: "crc", "read", "parse", "label", "boxes", "decode"; for
      WebDataset tars also "tar" (framing), "sample" (members) and "key" (a key repeated).
    records_with_box_features: records with image/object/bbox/* features (maybe empty).
    records_with_boxes, boxes: records holding at least one box, and boxes in all.
    key_hashes: 64-bit hashes of the WebDataset sample keys, for the unique-key check.
    """

    shards: list[ShardScan] = field(default_factory=list)
    labels: array = field(default_factory=lambda: array("i"))
    label_codes: dict = field(default_factory=dict)
    errors: list[tuple[str, str, int, str]] = field(default_factory=list)
    error_counts: collections.Counter = field(default_factory=collections.Counter)
    records_with_box_features: int = 0
    records_with_boxes: int = 0
    boxes: int = 0
    key_hashes: array = field(default_factory=lambda: array("Q"))

    @property
    def label_values(self) -> list:
        return list(self.label_codes)

    def error(self, kind: str, shard: str, index: int, detail: str) -> None:
        self.error_counts[kind] += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append((kind, shard, index, detail))


def _first(features: dict, key: str, default=None):
    """The first value of a feature, or `default` when it is absent or empty."""
    values = features.get(key, ())
    return values[0] if len(values) else default


def _check_image(features: dict) -> str | None:
    """Decodes image/encoded; returns what is wrong, or None."""
    encoded = _first(features, "image/encoded", b"")
    if not isinstance(encoded, bytes):
        return "image/encoded is not a bytes feature"
    try:
        image = Image.open(io.BytesIO(encoded))
        image.load()
    except Exception as e:
        return f"image does not decode: {type(e).__name__}: {e}"
    recorded = tuple(_first(features, k) for k in ("image/width", "image/height"))
    if None not in recorded and image.size != recorded:
        return f"decodes to {image.size[0]}x{image.size[1]}, recorded {recorded[0]}x{recorded[1]}"
    channels = _first(features, "image/channels")
    if channels is not None and len(image.getbands()) != channels:
        return f"decodes to {len(image.getbands())} channels, recorded {channels}"
    return None


def scan_shards(
    paths: list[str],
    label_key: str = "image/class/label",
    decode: bool = False,
    record_paths: RecordPaths | None = None,
    progress: Callable[[int, int, int], None] | None = None,
) -> ScanResult:
    """Reads every record of every shard, in the order given."""
    result = ScanResult()
    for shard_number, path in enumerate(paths):
        shard = ShardScan(path)
        result.shards.append(shard)
        scan = _scan_tfrecord
        if path.endswith(ARRAY_RECORD_SUFFIX):
            scan = _scan_array_record
        elif path.endswith(WEBDATASET_SUFFIX):
            scan = _scan_webdataset
        if not FileSystems.exists(path):  # dataset.json names it, the folder lacks it
            result.error("read", path, 0, "missing: dataset.json lists this shard")
        else:
            scan(
                path,
                shard,
                functools.partial(
                    _scan_features,
                    shard=shard,
                    result=result,
                    label_key=label_key,
                    decode=decode,
                    record_paths=record_paths,
                ),
                result,
            )
        if progress:
            progress(shard_number + 1, len(paths), len(result.labels))
    return result


def _scan_tfrecord(path: str, shard: ShardScan, on_record, result: ScanResult) -> None:
    digest, index_digest, offset = hashlib.sha256(), hashlib.sha256(), 0
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
        stream = _HashingReader(raw, digest)
        index = -1
        try:
            for index, data in enumerate(iter_records(stream)):
                size = len(data) + _FRAME_OVERHEAD
                index_digest.update(f"{offset} {size}\n".encode("ascii"))
                offset += size
                _parse_record(data, index, shard, result, on_record)
        except CorruptRecordError as e:
            result.error("crc", path, index + 1, str(e))
            while stream.read(_CHUNK):  # hash the rest, so sha256 describes the whole file
                pass
    shard.bytes, shard.sha256 = stream.size, digest.hexdigest()
    shard.index_sha256 = index_digest.hexdigest()


def _scan_array_record(path: str, shard: ShardScan, on_record, result: ScanResult) -> None:
    from imgshard.transforms.array_record_output import read_array_records

    digest = hashlib.sha256()
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
        stream = _HashingReader(raw, digest)
        while stream.read(_CHUNK):
            pass
    shard.bytes, shard.sha256 = stream.size, digest.hexdigest()
    index = -1
    try:
        for index, data in enumerate(read_array_records(path)):
            _parse_record(data, index, shard, result, on_record)
    except ImportError:
        raise
    except Exception as e:  # the reader raises on a damaged file (checksums, truncation)
        result.error("read", path, index + 1, f"{type(e).__name__}: {e}")


def _scan_webdataset(path: str, shard: ShardScan, on_features, result: ScanResult) -> None:
    digest = hashlib.sha256()
    index = -1
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
        stream = _HashingReader(raw, digest)
        try:
            for item in group_samples(iter_tar_members(stream)):
                if isinstance(item, SampleProblem):
                    result.error(item.kind, path, index + 1, str(item))
                    continue
                index += 1
                key, sample = item
                result.key_hashes.append(key_hash(key))
                try:
                    features = sample_features(key, sample)
                except SampleProblem as problem:
                    shard.records += 1
                    result.error(problem.kind, path, index, f"{key}: {problem}")
                    continue
                on_features(features, index)
        except tarfile.TarError as e:
            result.error("tar", path, index + 1, f"{type(e).__name__}: {e}")
        while stream.read(_CHUNK):  # hash the rest, so sha256 describes the whole file
            pass
    shard.bytes, shard.sha256 = stream.size, digest.hexdigest()


def iter_shard_records(path: str):
    """The serialized records of one shard, TFRecord or ArrayRecord (by its extension)."""
    if path.endswith(ARRAY_RECORD_SUFFIX):
        from imgshard.transforms.array_record_output import read_array_records

        yield from read_array_records(path)
        return
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        yield from iter_records(f)


def iter_shard_features(path: str):
    """The features of every record (WebDataset: sample) of one shard, in order; {} for one
    that does not parse (the audit's scan reports it)."""
    if not path.endswith(WEBDATASET_SUFFIX):
        for data in iter_shard_records(path):
            try:
                yield parse_example(data)
            except ExampleDecodeError:
                yield {}
        return
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        for item in group_samples(iter_tar_members(f)):
            if isinstance(item, SampleProblem):
                continue
            try:
                yield sample_features(*item)
            except SampleProblem:
                yield {}


def box_problem(features: dict) -> str | None:
    """What is wrong with a record's image/object/bbox/* features, or None."""
    coordinates = [features.get(name, ()) for name in BOX_COORDINATES]
    if any(len(c) and not isinstance(c[0], float | int) for c in coordinates):
        return "box coordinates are not numbers (need float features)"
    labels = features.get("image/object/bbox/label")
    counts = {len(c) for c in coordinates} | ({len(labels)} if labels is not None else set())
    if len(counts) > 1:
        return f"box features differ in length: {sorted(counts)}"
    for i, (x0, y0, x1, y1) in enumerate(zip(*coordinates, strict=True)):
        if not all(0.0 <= v <= 1.0 for v in (x0, y0, x1, y1)):
            return f"box {i} ({x0:g}, {y0:g}, {x1:g}, {y1:g}) is not inside [0, 1]"
        if not (x0 < x1 and y0 < y1):
            return f"box {i} ({x0:g}, {y0:g}, {x1:g}, {y1:g}) has no area (needs min < max)"
    return None


def _parse_record(data, index, shard, result, on_features) -> None:
    try:
        features = parse_example(data)
    except ExampleDecodeError as e:
        shard.records += 1
        result.error("parse", shard.path, index, str(e))
        return
    on_features(features, index)


def _scan_features(features, index, shard, result, label_key, decode, record_paths) -> None:
    shard.records += 1
    value = _first(features, label_key)
    if value is None:
        result.error("label", shard.path, index, f"no {label_key!r} feature")
        return
    if isinstance(value, float):
        result.error("label", shard.path, index, f"{label_key!r} is a float feature")
        return
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    codes = result.label_codes
    code = codes.get(value)
    if code is None:
        code = codes[value] = len(codes)
    result.labels.append(code)
    shard.label_counts[value] += 1
    if BOX_COORDINATES[0] in features:
        boxes = len(features[BOX_COORDINATES[0]])
        result.records_with_box_features += 1
        result.records_with_boxes += boxes > 0
        result.boxes += boxes
        if problem := box_problem(features):
            result.error("boxes", shard.path, index, problem)
    if record_paths is not None:
        name = _first(features, "image/filename", b"")
        record_paths.add(name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name))
    if decode and (problem := _check_image(features)):
        result.error("decode", shard.path, index, problem)


class _HashingReader:
    """A read-only stream wrapper that hashes and counts what passes through.

    Reads in chunks: a hostile frame can claim a length of 2^63 with a valid length CRC, and
    one read(n) of that would allocate n bytes before finding the file is shorter. Chunked,
    memory is bounded by what the file really holds.
    """

    def __init__(self, stream, digest):
        self._stream = stream
        self._digest = digest
        self.size = 0

    def read(self, n: int) -> bytes:
        parts, wanted = [], n
        while wanted > 0:
            part = self._stream.read(min(wanted, _CHUNK))
            if not part:
                break
            parts.append(part)
            wanted -= len(part)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self._digest.update(data)
        self.size += len(data)
        return data


def log_progress(every_seconds: float = 5.0) -> Callable[[int, int, int], None]:
    """A progress callback that logs at most every few seconds (and at the end)."""
    last = [time.monotonic()]

    def report(done: int, total: int, records: int) -> None:
        now = time.monotonic()
        if done == total or now - last[0] >= every_seconds:
            last[0] = now
            _LOG.info("audit: read %d/%d shards, %s records", done, total, f"{records:,}")

    return report
