"""The Example decoder reads shards written by anyone: malformed bytes give a clean error, a
bounded amount of memory, and the audit goes on to the next record."""

import io
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgshard.audit.shard_scan import scan_shards
from imgshard.transforms.example import (
    MAX_VALUES,
    ExampleDecodeError,
    decode_example,
    encode_example,
)
from imgshard.transforms.example import (
    _varint as varint,  # the encoder's own, to build the hostile bytes
)
from imgshard.transforms.tfrecord import TFRecordWriter

VALID = encode_example(
    {
        "image/encoded": b"\xff\xd8" + bytes(range(64)),
        "image/class/label": 7,
        "image/class/synset": b"n01440764",
        "ints": [1, -2, 2**40],
    }
)


def message(number: int, wire: int, payload: bytes) -> bytes:
    """A field: tag, then a length for wire type 2, then the payload as given."""
    head = varint(number << 3 | wire)
    return head + (varint(len(payload)) if wire == 2 else b"") + payload


def example_with_entry(entry: bytes) -> bytes:
    return message(1, 2, message(1, 2, entry))


def decodes_cleanly(data: bytes) -> None:
    """Either a result or ExampleDecodeError, with memory a small multiple of the record."""
    tracemalloc.start()
    try:
        decode_example(data)
    except ExampleDecodeError:
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak <= 100 * len(data) + (64 << 10), (peak, len(data))


@pytest.mark.parametrize(
    "record, problem",
    [
        # the key as the varint 10^6 (wire type 0): was decoded as a 1 MB key of zeros
        (example_with_entry(b"\x08" + varint(10**6)), "a feature name has wire type 0"),
        # a bytes value as the varint 2^62: bytes(2**62) is a MemoryError
        (
            example_with_entry(
                message(1, 2, b"k") + message(2, 2, b"\x0a\x0a" + b"\x08" + varint(2**62))
            ),
            "wire type",
        ),
        # a float "list" that is a varint
        (
            example_with_entry(message(1, 2, b"k") + message(2, 2, b"\x12\x02\x08\x05")),
            "wire type 0",
        ),
        # a length near 2^64 on a 20-byte record
        (b"\x0a" + varint(2**64 - 1) + b"\x0a\x00", "bytes"),
        (b"\x0a\x05\x0a", "needs 5 bytes, 1 remain"),  # truncated framing
        (b"\x0d\x00\x00", "needs 4 bytes, 2 remain"),  # a fixed32 cut short
        (b"\x0f", "wire type 7"),
        (b"\x0a\x02\x0c\x00", "wire type 4"),  # a group start
        (b"\x0a\x0b" + b"\xff" * 11, "varint longer than 10 bytes"),
    ],
)
def test_malformed_records_are_refused_with_what_is_wrong(record, problem):
    with pytest.raises(ExampleDecodeError, match=problem):
        decode_example(record)
    decodes_cleanly(record)


def test_too_many_values_are_refused_before_they_fill_memory():
    packed = b"\x01" * (MAX_VALUES + 1)
    feature = message(3, 2, message(1, 2, packed))  # Int64List, packed one-byte varints
    record = example_with_entry(message(1, 2, b"k") + message(2, 2, feature))
    with pytest.raises(ExampleDecodeError, match="more than"):
        decode_example(record)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_decode_cleanly(data):
    decodes_cleanly(data)


@st.composite
def damaged(draw):
    """A valid record with one damage: a byte changed, bytes cut, or a hostile field put in."""
    data = bytearray(VALID)
    kind = draw(st.sampled_from(["flip", "truncate", "insert"]))
    if kind == "flip":
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    elif kind == "truncate":
        data = data[: draw(st.integers(0, len(data) - 1))]
    else:
        number = draw(st.integers(1, 20))
        wire = draw(st.integers(0, 7))
        huge = draw(st.sampled_from([0, 1, 10**6, 2**31, 2**63, 2**64 - 1]))
        field = varint(number << 3 | wire) + varint(huge)
        at = draw(st.integers(0, len(data)))
        data[at:at] = field
    return bytes(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged())
def test_damaged_records_decode_cleanly(data):
    decodes_cleanly(data)


def test_the_audit_scan_reports_each_hostile_record_and_reads_on(tmp_path):
    hostile = [example_with_entry(b"\x08" + varint(10**6)), b"\x0a\x05\x0a", b"\x0f"]
    path = tmp_path / "foreign-00000-of-00001.tfrecord"
    stream = io.BytesIO()
    writer = TFRecordWriter(stream)
    for record in [VALID, *hostile, VALID]:
        writer.write(record)
    path.write_bytes(stream.getvalue())

    result = scan_shards([str(path)])

    assert result.shards[0].records == 5
    assert result.error_counts == {"parse": 3}
    assert [index for _, _, index, _ in result.errors] == [1, 2, 3]
    assert len(result.labels) == 2  # both valid records were counted
