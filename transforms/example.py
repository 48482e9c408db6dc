"""`tf.train.Example` serialization without TensorFlow.

Why by hand: importing TensorFlow costs ~3 s and ~500 MB per Beam worker process, only to
build a protobuf with five fields. The wire format of Example/Features/Feature is small and
frozen, so we write it directly. Map entries are emitted sorted by key, which is exactly what
`SerializeToString(deterministic=True)` produces; tests/test_records.py checks the bytes
against TensorFlow's own serializer and parser.

Wire format (tensorflow/core/example/{example,feature}.proto):
  Example   { Features features = 1; }
  Features  { map<string, Feature> feature = 1; }   # entry: { string key = 1; Feature value = 2; }
  Feature   { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2;
                           Int64List int64_list = 3; } }
  BytesList { repeated bytes value = 1; }
  FloatList { repeated float value = 1 [packed = true]; }
  Int64List { repeated int64 value = 1 [packed = true]; }
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Mapping, Sequence

__all__ = [
    "BOX_COORDINATES",
    "ExampleDecodeError",
    "FeatureValue",
    "Floats",
    "decode_example",
    "encode_example",
    "image_example",
]


class Floats(tuple):
    """A float feature (FloatList, float32 on the wire). A wrapper rather than a guess from the
    values, so that an empty list still has its type (an empty Int64List is other bytes)."""


FeatureValue = bytes | int | Sequence[bytes] | Sequence[int] | Floats

_LEN = 2  # wire type of length-delimited fields

# The box features of tf/models' build_imagenet_data.py (plus image/object/bbox/label).
BOX_COORDINATES = (
    "image/object/bbox/xmin",
    "image/object/bbox/ymin",
    "image/object/bbox/xmax",
    "image/object/bbox/ymax",
)


def _varint(value: int) -> bytes:
    if 0 <= value < 0x80:
        return _SMALL_VARINTS[value]
    if value < 0:  # int64 negatives are encoded as their 64-bit two's complement
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL_VARINTS = tuple(bytes((v,)) for v in range(0x80))


def _header(number: int, size: int) -> bytes:
    """Tag and length of a length-delimited field of `size` bytes."""
    return _varint((number << 3) | _LEN) + _varint(size)


def _field(number: int, payload: bytes) -> bytes:
    return _header(number, len(payload)) + payload


@functools.lru_cache(maxsize=256)
def _key_field(key: str) -> bytes:
    return _field(1, key.encode("utf-8"))


def _feature_parts(value: FeatureValue) -> tuple[list[bytes], int]:
    """A Feature as pieces and their total size: a single bytes value (the encoded image, tens
    of KB) is never copied into the nested messages around it, only once at the end."""
    if isinstance(value, bytes):
        inner = _header(1, len(value))  # BytesList.value
        size = len(inner) + len(value)
        outer = _header(1, size)  # Feature.bytes_list
        return [outer, inner, value], len(outer) + size
    encoded = _feature(value)
    return [encoded], len(encoded)


def _feature(value: FeatureValue) -> bytes:
    if isinstance(value, Floats):
        packed = struct.pack(f"<{len(value)}f", *value)
        return _field(2, _field(1, packed) if value else b"")
    values = [value] if isinstance(value, bytes | int) else list(value)
    # ints first: an empty list is an Int64List (e.g. the box labels of an image without boxes)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        packed = b"".join(_varint(v) for v in values)
        int64_list = _field(1, packed) if values else b""
        return _field(3, int64_list)
    if all(isinstance(v, bytes) for v in values):
        bytes_list = b"".join(_field(1, v) for v in values)
        return _field(1, bytes_list)
    raise TypeError(f"feature values must be all bytes or all ints, got {values!r:.80}")


def encode_example(features: Mapping[str, FeatureValue]) -> bytes:
    """Serializes a `tf.train.Example` holding bytes, int64 and float features.

    Args:
      features: feature name -> bytes, int, a sequence of either, or Floats.

    Returns:
      The serialized Example, byte-identical to TensorFlow's deterministic serialization.
    """
    parts: list[bytes] = []
    total = 0
    for key in sorted(features):  # map entries: { key = 1; value = 2 }, one per feature
        value_parts, value_size = _feature_parts(features[key])
        key_field = _key_field(key)
        value_header = _header(2, value_size)
        entry_size = len(key_field) + len(value_header) + value_size
        entry_header = _header(1, entry_size)
        parts += [entry_header, key_field, value_header, *value_parts]
        total += len(entry_header) + entry_size
    return b"".join([_header(1, total), *parts])


def image_example(
    encoded: bytes,
    height: int,
    width: int,
    channels: int,
    label: int,
    class_name: str,
    filename: str,
    boxes: Sequence[tuple[float, float, float, float]] | None = None,
) -> bytes:
    """The standard ImageNet record (TF model garden / TPU reference readers' schema).

    Args:
      boxes: normalized (xmin, ymin, xmax, ymax) boxes, written as tf/models'
        build_imagenet_data.py writes them (`image/object/bbox/*`, every box labelled with the
        image's label); None writes no box features at all (the records of a run without
        --boxes), an empty list writes empty ones (an image without boxes in a run with them).
    """
    features: dict[str, FeatureValue] = {
        "image/encoded": encoded,
        "image/format": b"JPEG",
        "image/height": height,
        "image/width": width,
        "image/channels": channels,
        "image/colorspace": b"RGB" if channels == 3 else b"Grayscale",
        "image/class/label": label,
        "image/class/synset": class_name.encode("utf-8"),
        "image/filename": filename.encode("utf-8"),
    }
    if boxes is not None:
        for i, name in enumerate(BOX_COORDINATES):
            features[name] = Floats(box[i] for box in boxes)
        features["image/object/bbox/label"] = [label] * len(boxes)
    return encode_example(features)


class ExampleDecodeError(ValueError):
    """The bytes are not a well-formed `tf.train.Example`."""


# The decoder reads shards written by any tool, so it trusts nothing: every field's wire type
# is checked against the schema, every length against the bytes that remain, and values are
# views of the record until they are returned, so memory stays a small multiple of the record.
_VARINT, _FIXED64, _FIXED32 = 0, 1, 5
# A feature's values become Python objects (~32 bytes each): bounded, so a record of packed
# one-byte varints cannot turn 100 MB into 3 GB. Real Examples hold far fewer (an image as
# floats: 224 x 224 x 3 = 150,528).
MAX_VALUES = 1 << 22


def _read_varint(data, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ExampleDecodeError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ExampleDecodeError("varint longer than 10 bytes")


def _fields(data):
    """(field number, wire type, value) of a message: varints as ints, everything else as
    memoryview slices of `data`, each checked to lie within it."""
    data = memoryview(data)
    pos = 0
    while pos < len(data):
        tag, pos = _read_varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise ExampleDecodeError("field number 0")
        if wire == _VARINT:
            value, pos = _read_varint(data, pos)
            yield number, wire, value
            continue
        if wire == _LEN:
            length, pos = _read_varint(data, pos)
        elif wire in (_FIXED32, _FIXED64):
            length = 4 if wire == _FIXED32 else 8
        else:
            raise ExampleDecodeError(f"unsupported wire type {wire} (field {number})")
        if length > len(data) - pos:
            raise ExampleDecodeError(
                f"field {number} needs {length:,} bytes, {len(data) - pos:,} remain"
            )
        yield number, wire, data[pos : pos + length]
        pos += length


def _expect(wire: int, allowed: tuple[int, ...], what: str) -> None:
    if wire not in allowed:
        raise ExampleDecodeError(
            f"{what} has wire type {wire}, expected {' or '.join(map(str, allowed))}"
        )


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _decode_feature(data) -> list:
    values: list = []
    for kind, wire, payload in _fields(data):
        if kind not in (1, 2, 3):
            continue  # an unknown field: skipped, as protobuf does
        _expect(wire, (_LEN,), "a Feature's list")
        for number, item_wire, item in _fields(payload):
            if number != 1:
                continue
            if kind == 1:  # BytesList
                _expect(item_wire, (_LEN,), "a bytes value")
                values.append(bytes(item))
            elif kind == 3:  # Int64List, packed or not
                _expect(item_wire, (_LEN, _VARINT), "an int64 value")
                if item_wire == _LEN:
                    pos = 0
                    while pos < len(item):
                        raw, pos = _read_varint(item, pos)
                        values.append(_signed64(raw))
                        _check_count(values)
                else:
                    values.append(_signed64(item))
            else:  # FloatList, packed or not
                _expect(item_wire, (_LEN, _FIXED32), "a float value")
                if len(item) % 4:
                    raise ExampleDecodeError(f"packed floats of {len(item)} bytes")
                _check_count(values, len(item) // 4)
                values.extend(struct.unpack(f"<{len(item) // 4}f", item))
            _check_count(values)
    return values


def _check_count(values: list, adding: int = 0) -> None:
    if len(values) + adding > MAX_VALUES:
        raise ExampleDecodeError(f"a feature holds more than {MAX_VALUES:,} values")


def decode_example(data: bytes) -> dict[str, list]:
    """Parses a serialized `tf.train.Example` into {feature name: list of values}.

    The inverse of `encode_example`, for any Example (foreign ones with float features or
    unsorted keys included). Raises ExampleDecodeError on malformed bytes: a wire type the
    schema does not allow, a length past the end, a truncated varint, too many values.
    """
    features: dict[str, list] = {}
    for number, wire, features_msg in _fields(data):
        if number != 1:
            continue
        _expect(wire, (_LEN,), "Example.features")
        for entry_number, entry_wire, entry in _fields(features_msg):
            if entry_number != 1:
                continue
            _expect(entry_wire, (_LEN,), "a feature map entry")
            key, value = None, b""
            for field_number, field_wire, item in _fields(entry):
                if field_number == 1:
                    _expect(field_wire, (_LEN,), "a feature name")
                    key = bytes(item).decode("utf-8", errors="replace")
                elif field_number == 2:
                    _expect(field_wire, (_LEN,), "a feature value")
                    value = item
            if key is None:
                raise ExampleDecodeError("a feature map entry has no key")
            features[key] = _decode_feature(value)
    return features
