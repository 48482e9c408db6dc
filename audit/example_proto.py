"""`tf.train.Example` parsing by protobuf, for bytes that other tools wrote (the audit).

The schema (tensorflow/core/example/{example,feature}.proto) is built here as a
FileDescriptorProto, in a private descriptor pool and under a package of our own, so neither
TensorFlow nor protoc is needed and TensorFlow's own `tensorflow.Example` (or the tfrecord
package's copy) can live in the same process without a clash. The wire format does not depend
on the package name.

Why not the hand-written decoder of `example.py`: protobuf (upb) checks wire types and
lengths against the bytes it was given before it allocates anything, so a hostile record
costs at most a small multiple of its own size and fails with ExampleDecodeError. A field of
the right number but the wrong wire type is kept by protobuf as an unknown field; we refuse
those too, since no Example writer produces them.
"""

from __future__ import annotations

import functools

from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory
from google.protobuf import unknown_fields as _unknown

from imgshard.transforms.example import ExampleDecodeError

__all__ = ["ExampleDecodeError", "example_class", "parse_example"]

_PACKAGE = "imgshard.tfexample"
_F = descriptor_pb2.FieldDescriptorProto
_WIRE_TYPES = {0: "varint", 1: "64-bit", 2: "length-delimited", 3: "group", 4: "group", 5: "32-bit"}


def _add_message(file, name: str, fields, oneof: str | None = None, options=None):
    msg = file.message_type.add(name=name)
    if oneof:
        msg.oneof_decl.add(name=oneof)
    for number, field_name, kind, label, type_name, packed in fields:
        field = msg.field.add(name=field_name, number=number, type=kind, label=label)
        if type_name:
            field.type_name = f".{_PACKAGE}.{type_name}"
        if packed:
            field.options.packed = True
        if oneof:
            field.oneof_index = 0
    if options:
        msg.options.CopyFrom(options)
    return msg


def _file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(
        name="imgshard/tfexample.proto", package=_PACKAGE, syntax="proto3"
    )
    repeated, optional = _F.LABEL_REPEATED, _F.LABEL_OPTIONAL
    _add_message(file, "BytesList", [(1, "value", _F.TYPE_BYTES, repeated, None, False)])
    _add_message(file, "FloatList", [(1, "value", _F.TYPE_FLOAT, repeated, None, True)])
    _add_message(file, "Int64List", [(1, "value", _F.TYPE_INT64, repeated, None, True)])
    _add_message(
        file,
        "Feature",
        [
            (1, "bytes_list", _F.TYPE_MESSAGE, optional, "BytesList", False),
            (2, "float_list", _F.TYPE_MESSAGE, optional, "FloatList", False),
            (3, "int64_list", _F.TYPE_MESSAGE, optional, "Int64List", False),
        ],
        oneof="kind",
    )
    features = _add_message(
        file,
        "Features",
        [(1, "feature", _F.TYPE_MESSAGE, repeated, "Features.FeatureEntry", False)],
    )
    entry = features.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=_F.TYPE_STRING, label=optional)
    entry.field.add(
        name="value",
        number=2,
        type=_F.TYPE_MESSAGE,
        label=optional,
        type_name=f".{_PACKAGE}.Feature",
    )
    _add_message(file, "Example", [(1, "features", _F.TYPE_MESSAGE, optional, "Features", False)])
    return file


@functools.cache
def example_class() -> type[message.Message]:
    """The Example message class (built once per process, on first use)."""
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_file_descriptor())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.Example"))


def _refuse_unknown(msg: message.Message, where: str) -> None:
    for field in _unknown.UnknownFieldSet(msg):
        wire = _WIRE_TYPES.get(field.wire_type, str(field.wire_type))
        raise ExampleDecodeError(
            f"{where}: field {field.field_number} ({wire}) does not fit the Example schema "
            f"(an unknown field, or a wrong wire type in or under it)"
        )


def parse_example(data: bytes) -> dict:
    """{feature name: values} of a serialized `tf.train.Example`.

    The values are protobuf's repeated containers (they index, iterate and have a length like
    lists, without one Python object per value), or () for a feature with no list set. Raises
    ExampleDecodeError, with the reason, on anything that is not a well-formed Example.
    """
    example = example_class()()
    try:
        example.ParseFromString(data)
    except message.DecodeError as e:
        raise ExampleDecodeError(
            f"not a tf.train.Example ({len(data)} bytes): truncated, a length past the end, "
            f"or an invalid field ({e})"
        ) from None
    _refuse_unknown(example, "Example")
    _refuse_unknown(example.features, "Example.features")
    features: dict = {}
    for key, feature in example.features.feature.items():
        _refuse_unknown(feature, f"feature {key!r}")
        kind = feature.WhichOneof("kind")
        if kind is None:
            features[key] = ()
            continue
        values = getattr(feature, kind)
        _refuse_unknown(values, f"feature {key!r} ({kind})")
        features[key] = values.value
    return features
