"""`tf.train.Example` serialization without TensorFlow.

Why by hand: importing TensorFlow costs ~3 s and ~500 MB per Beam worker process, only to
build a protobuf with five fields. The wire format of Example/Features/Feature is small and
frozen, so we write it directly. Map entries are emitted sorted by key, which is exactly what
`SerializeToString(deterministic=True)` produces; tests/test_example.py checks the bytes
against TensorFlow's own serializer and parser.

Wire format (tensorflow/core/example/{example,feature}.proto):
  Example   { Features features = 1; }
  Features  { map<string, Feature> feature = 1; }   # entry: { string key = 1; Feature value = 2; }
  Feature   { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2;
                           Int64List int64_list = 3; } }
  BytesList { repeated bytes value = 1; }
  Int64List { repeated int64 value = 1 [packed = true]; }
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["FeatureValue", "encode_example", "image_example"]

FeatureValue = bytes | int | Sequence[bytes] | Sequence[int]

_LEN = 2  # wire type of length-delimited fields


def _varint(value: int) -> bytes:
    if value < 0:  # int64 negatives are encoded as their 64-bit two's complement
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint((number << 3) | _LEN) + _varint(len(payload)) + payload


def _feature(value: FeatureValue) -> bytes:
    values = [value] if isinstance(value, bytes | int) else list(value)
    if all(isinstance(v, bytes) for v in values):
        bytes_list = b"".join(_field(1, v) for v in values)
        return _field(1, bytes_list)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        packed = b"".join(_varint(v) for v in values)
        int64_list = _field(1, packed) if values else b""
        return _field(3, int64_list)
    raise TypeError(f"feature values must be all bytes or all ints, got {values!r:.80}")


def encode_example(features: Mapping[str, FeatureValue]) -> bytes:
    """Serializes a `tf.train.Example` holding bytes and int64 features.

    Args:
      features: feature name -> bytes, int, or a sequence of either.

    Returns:
      The serialized Example, byte-identical to TensorFlow's deterministic serialization.
    """
    entries = b"".join(
        _field(1, _field(1, key.encode("utf-8")) + _field(2, _feature(features[key])))
        for key in sorted(features)
    )
    return _field(1, entries)


def image_example(
    encoded: bytes,
    height: int,
    width: int,
    channels: int,
    label: int,
    class_name: str,
    filename: str,
) -> bytes:
    """The standard ImageNet record (TF model garden / TPU reference readers' schema)."""
    return encode_example(
        {
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
    )
