"""The audit on hostile shards: malformed Examples and framing give a clear verdict with
per-record reasons, never an exception or an allocation the size a record claims."""

import os
import struct
import subprocess
import sys
import textwrap

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgshard.audit import audit
from imgshard.audit.accounting import RecordPaths
from imgshard.audit.shard_scan import scan_shards
from imgshard.transforms.example import Floats, _field, _varint, encode_example
from imgshard.transforms.tfrecord import TFRecordWriter, masked_crc32c

LABEL = "image/class/label"


def good_record(label: int = 1, **extra) -> bytes:
    return encode_example({LABEL: label, "image/filename": b"a.jpg", **extra})


def entry(key_field: bytes, value: bytes = b"") -> bytes:
    """An Example whose one feature-map entry has the given key field bytes."""
    return _field(1, _field(1, key_field + _field(2, value)))


def write_shard(path, records) -> str:
    with open(path, "wb") as f:
        writer = TFRecordWriter(f)
        for record in records:
            writer.write(record)
    return str(path)


def frame_header(length: int) -> bytes:
    length_bytes = struct.pack("<Q", length)
    return length_bytes + struct.pack("<I", masked_crc32c(length_bytes))


# The example: a key given as a varint (wire type 0) of 10^6, or near 2^64, which a
# decoder ignoring wire types turns into a 1 MB (or 2^64-byte) key.
KEY_AS_VARINT = entry(_varint(1 << 3 | 0) + _varint(10**6))
KEY_AS_HUGE_VARINT = entry(_varint(1 << 3 | 0) + _varint(2**64 - 2))
HUGE_LENGTH = _field(1, b"")[:1] + _varint(2**62) + b"\x0a\x00"  # claims 2^62 bytes
FLOAT_AS_VARINT = _field(1, _field(1, _field(1, b"f") + _field(2, _field(2, b"\x08\x07"))))
BAD_WIRE_TYPE = b"\x0f\x00"  # field 1, wire type 7 (does not exist)
TRUNCATED = good_record()[:-3]


def test_each_malformed_example_is_a_parse_error_with_its_reason(tmp_path):
    bad = [KEY_AS_VARINT, KEY_AS_HUGE_VARINT, HUGE_LENGTH, FLOAT_AS_VARINT, BAD_WIRE_TYPE]
    records = [good_record(i % 3) for i in range(4)] + bad + [TRUNCATED]
    write_shard(tmp_path / "train-00000-of-00001", records)
    report = audit(str(tmp_path), readers=[]).report
    assert report["verdict"] == "FAIL"
    assert report["records"] == 4
    assert report["integrity"]["errors"] == {"parse": 6}
    errors = report["integrity"]["first_errors"]
    assert [e["record"] for e in errors] == list(range(4, 10))
    assert all("Example" in e["detail"] for e in errors)
    assert "wrong wire type" in errors[0]["detail"]
    assert "length past the end" in errors[2]["detail"]
    assert "integrity: 6 parse errors" in report["failures"]


def test_labels_and_boxes_of_the_wrong_type_are_named_not_crashes(tmp_path):
    records = [
        good_record(),
        encode_example({LABEL: Floats([1.0])}),
        encode_example({LABEL: []}),
        good_record(**{"image/object/bbox/xmin": [b"x"], "image/object/bbox/ymin": [b"y"]}),
    ]
    write_shard(tmp_path / "train-00000-of-00001", records)
    result = audit(str(tmp_path), readers=[], decode=True).report["integrity"]
    details = [(e["record"], e["kind"], e["detail"]) for e in result["first_errors"]]
    assert (1, "label", f"{LABEL!r} is a float feature") in details
    assert (2, "label", f"no {LABEL!r} feature") in details
    assert (3, "boxes", "box coordinates are not numbers (need float features)") in details
    assert (0, "decode") in {(r, kind) for r, kind, _ in details}  # no image: said, not raised


def test_a_frame_claiming_2_to_the_62_bytes_is_a_truncated_record(tmp_path):
    path = write_shard(tmp_path / "train-00000-of-00001", [good_record()])
    with open(path, "ab") as f:
        f.write(frame_header(2**62) + b"only a few bytes")
    report = audit(str(tmp_path), readers=[]).report
    assert report["integrity"]["errors"] == {"crc": 1}
    [error] = report["integrity"]["first_errors"]
    assert error["record"] == 1 and "truncated record" in error["detail"]
    assert report["verdict"] == "FAIL"


def test_shards_written_by_tensorflow_still_pass(tmp_path):
    """TF's own writer and protos: unsorted keys, float features, bytes labels, and TF's
    default (not deterministic) serialization."""
    import tensorflow as tf

    def feature(value):
        if isinstance(value, bytes):
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
        if isinstance(value, float):
            return tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

    for shard in range(2):
        path = str(tmp_path / f"train-{shard:05d}-of-00002")
        with tf.io.TFRecordWriter(path) as writer:
            for i in range(64):
                values = {"z/score": 0.5, "label": f"class{(i * 7 + shard) % 8}".encode(), "i": i}
                example = tf.train.Example(
                    features=tf.train.Features(feature={k: feature(v) for k, v in values.items()})
                )
                writer.write(example.SerializeToString())
    report = audit(str(tmp_path), label_key="label", batch_size=8, readers=[]).report
    assert report["integrity"]["errors"] == {}
    assert report["records"] == 128 and report["labels"] == 8


def test_the_contact_sheet_of_hostile_shards_draws_grey_cells(tmp_path):
    from imgshard.audit.contact_sheet import draw_contact_sheet

    bad_boxes = {"image/object/bbox/xmin": [b"x"], "image/class/synset": 5}
    records = [KEY_AS_HUGE_VARINT, good_record(**bad_boxes), HUGE_LENGTH, BAD_WIRE_TYPE]
    write_shard(tmp_path / "train-00000-of-00001", records)
    result = audit(str(tmp_path), readers=[])
    assert result.report["integrity"]["errors"]["parse"] == 3
    cells = draw_contact_sheet(result.shards, str(tmp_path / "sheet.png"), n=4)
    assert [c.image for c in cells] == [None] * 4
    assert [c.caption[0] for c in cells] == ["?", "5 (1)", "?", "?"]
    assert cells[1].boxes == []
    assert (tmp_path / "sheet.png").stat().st_size > 0


# Hostile variants of one good record: truncation, flipped bytes, inserted varints/tags.
mutation = st.one_of(
    st.tuples(st.just("truncate"), st.integers(0, 200), st.just(b"")),
    st.tuples(st.just("flip"), st.integers(0, 200), st.binary(min_size=1, max_size=4)),
    st.tuples(
        st.just("insert"),
        st.integers(0, 200),
        st.one_of(
            st.integers(0, 2**64 - 1).map(_varint),
            st.tuples(st.integers(1, 2**29 - 1), st.integers(0, 7)).map(
                lambda t: _varint(t[0] << 3 | t[1])
            ),
            st.binary(max_size=12),
        ),
    ),
)


def mutate(record: bytes, mutations) -> bytes:
    data = bytearray(record)
    for kind, at, payload in mutations:
        at = at % (len(data) + 1)
        if kind == "truncate":
            del data[at:]
        elif kind == "flip":
            data[at : at + len(payload)] = bytes(
                b ^ (p or 1) for b, p in zip(data[at : at + len(payload)], payload, strict=False)
            )
        else:
            data[at:at] = payload
    return bytes(data)


BASE = good_record(7, **{"image/object/bbox/xmin": Floats([0.1]), "image/encoded": b"\xff\xd8"})


@settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(st.lists(mutation, min_size=1, max_size=4), min_size=1, max_size=6))
def test_fuzzed_records_are_counted_or_reported_never_raised(tmp_path, records_mutations):
    records = [mutate(BASE, m) for m in records_mutations]
    path = write_shard(tmp_path / "fuzz.tfrecord", records)
    paths = RecordPaths(buckets=2)
    scan = scan_shards([path], LABEL, decode=True, record_paths=paths)
    paths.cleanup()
    per_record = scan.error_counts["parse"] + scan.error_counts["label"]
    assert scan.shards[0].records == len(records)
    assert len(scan.labels) + per_record == len(records)
    assert paths.count == len(scan.labels)


@settings(max_examples=60, derandomize=True, deadline=None)
@given(st.binary(min_size=1, max_size=64), st.integers(0, 3))
def test_damaged_framing_is_one_crc_error_and_the_records_before_it_count(tail, good):
    import io

    stream = io.BytesIO()
    writer = TFRecordWriter(stream)
    for _ in range(good):
        writer.write(good_record())
    data = stream.getvalue() + tail
    scan = _scan_bytes(data)
    # arbitrary bytes after the good frames: at most one framing error, found after them
    assert sum(scan.error_counts.values()) <= 1
    assert len(scan.labels) >= good
    if scan.error_counts:
        assert scan.error_counts["crc"] == 1 and scan.errors[0][2] >= good


@settings(max_examples=80, derandomize=True, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 255), st.integers(0, 40))
def test_a_flipped_byte_anywhere_in_the_file_is_named_never_raised(at, flip, cut):
    import io

    stream = io.BytesIO()
    writer = TFRecordWriter(stream)
    for i in range(4):
        writer.write(good_record(i))
    data = bytearray(stream.getvalue())
    at %= len(data)
    data[at] ^= flip
    scan = _scan_bytes(bytes(data[: len(data) - cut]))
    # a flipped byte breaks a CRC (length or data) of the frame it is in: one "crc" error at
    # that frame, the frames before it counted; a cut tail is a truncated frame
    assert scan.error_counts["crc"] == 1
    assert set(scan.error_counts) == {"crc"}
    frame = len(data) // 4
    assert scan.errors[0][2] == at // frame and len(scan.labels) == at // frame


def _scan_bytes(data: bytes):
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "shard.tfrecord")
        with open(path, "wb") as f:
            f.write(data)
        return scan_shards([path], LABEL)


MEMORY_PROBE = textwrap.dedent(
    """
    import resource, sys
    from imgshard.audit import audit
    good, hostile = sys.argv[1:3]
    audit(good, readers=[])  # warm: every import and first-use cost paid
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = audit(hostile, readers=[], decode=True).report
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    errors = sorted(report["integrity"]["errors"].items())
    print(report["verdict"], errors, (after - before) // 1024)
    """
)


def test_hostile_shards_cost_bounded_memory(tmp_path):
    good, hostile = tmp_path / "good", tmp_path / "hostile"
    good.mkdir()
    hostile.mkdir()
    write_shard(good / "train-00000-of-00001", [good_record(i % 2) for i in range(8)])
    path = write_shard(
        hostile / "train-00000-of-00001",
        [good_record(), KEY_AS_HUGE_VARINT, HUGE_LENGTH, entry(_varint(10) + _varint(2**40))],
    )
    with open(path, "ab") as f:
        f.write(frame_header(2**40) + os.urandom(1 << 20))
    probe = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(good), str(hostile)],
        capture_output=True,
        text=True,
        check=True,
    )
    verdict, *middle, growth_mb = probe.stdout.split()
    assert verdict == "FAIL"
    assert "('crc', 1)" in " ".join(middle) and "('parse', 3)" in " ".join(middle)
    # records claim up to 2^62 bytes; the file holds ~1 MB: the peak grows by tens of MB at most
    assert int(growth_mb) < 64, probe.stdout
