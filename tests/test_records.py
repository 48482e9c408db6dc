"""Our hand-written Example encoder and TFRecord framing against TensorFlow's own."""

import io

import pytest
import tensorflow as tf

from imgshard.transforms.example import (
    ExampleDecodeError,
    decode_example,
    encode_example,
    image_example,
)
from imgshard.transforms.tfrecord import CorruptRecordError, TFRecordWriter, iter_records

FEATURES = {
    "image/encoded": b"\xff\xd8 not really a jpeg \x00\x01",
    "image/height": 375,
    "image/width": 500,
    "big": 2**62 + 12345,
    "negative": -7,
    "zero": 0,
    "ids": [0, 1, 300, 2**40],
    "names": [b"a", b"", b"\xe2\x82\xac"],
    "z/last": b"z",
    "a/first": b"a",
}


def tf_example(features):
    feature = {}
    for key, value in features.items():
        values = value if isinstance(value, list) else [value]
        if isinstance(values[0], bytes):
            feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
        else:
            feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    return tf.train.Example(features=tf.train.Features(feature=feature))


def test_encoding_is_byte_identical_to_tensorflows_deterministic_serialization():
    ours = encode_example(FEATURES)
    assert ours == tf_example(FEATURES).SerializeToString(deterministic=True)


def test_tensorflow_parses_our_examples_to_the_same_values():
    parsed = tf.train.Example.FromString(encode_example(FEATURES))
    assert parsed == tf_example(FEATURES)
    spec = {
        "image/height": tf.io.FixedLenFeature([], tf.int64),
        "negative": tf.io.FixedLenFeature([], tf.int64),
        "ids": tf.io.FixedLenFeature([4], tf.int64),
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
    }
    out = tf.io.parse_single_example(encode_example(FEATURES), spec)
    assert int(out["image/height"]) == 375
    assert int(out["negative"]) == -7
    assert out["ids"].numpy().tolist() == [0, 1, 300, 2**40]
    assert out["image/encoded"].numpy() == FEATURES["image/encoded"]


def test_image_example_has_the_standard_imagenet_schema():
    data = image_example(b"jpg", 10, 20, 3, 5, "n01440764", "a/b.JPEG")
    parsed = tf.train.Example.FromString(data).features.feature
    assert set(parsed) == {
        "image/encoded",
        "image/format",
        "image/height",
        "image/width",
        "image/channels",
        "image/colorspace",
        "image/class/label",
        "image/class/synset",
        "image/filename",
    }
    assert parsed["image/class/synset"].bytes_list.value == [b"n01440764"]
    assert parsed["image/class/label"].int64_list.value == [5]
    assert parsed["image/colorspace"].bytes_list.value == [b"RGB"]


def test_mixed_feature_values_are_refused():
    with pytest.raises(TypeError):
        encode_example({"x": [1, b"a"]})


def test_tfrecord_framing_is_byte_identical_to_tensorflows_writer(tmp_path):
    payloads = [b"", b"x", bytes(range(256)) * 50]
    stream = io.BytesIO()
    writer = TFRecordWriter(stream)
    for p in payloads:
        writer.write(p)
    reference = tmp_path / "ref.tfrecord"
    with tf.io.TFRecordWriter(str(reference)) as w:
        for p in payloads:
            w.write(p)
    assert stream.getvalue() == reference.read_bytes()
    assert writer.records == 3 and writer.bytes == len(stream.getvalue())
    assert list(iter_records(io.BytesIO(stream.getvalue()))) == payloads


def test_reader_detects_a_flipped_byte_and_truncation():
    stream = io.BytesIO()
    TFRecordWriter(stream).write(b"hello world")
    data = bytearray(stream.getvalue())
    data[15] ^= 0x01
    with pytest.raises(CorruptRecordError, match="CRC"):
        list(iter_records(io.BytesIO(bytes(data))))
    with pytest.raises(CorruptRecordError, match="truncated"):
        list(iter_records(io.BytesIO(stream.getvalue()[:-3])))


def test_decoder_reads_ours_and_foreign_examples():
    foreign = tf.train.Example(
        features=tf.train.Features(
            feature={
                "z": tf.train.Feature(float_list=tf.train.FloatList(value=[1.5, -2.0])),
                "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[7])),
                "empty": tf.train.Feature(bytes_list=tf.train.BytesList(value=[])),
                "neg": tf.train.Feature(int64_list=tf.train.Int64List(value=[-3, 2**63 - 1])),
            }
        )
    ).SerializeToString()
    assert decode_example(foreign) == {
        "z": [1.5, -2.0],
        "image/class/label": [7],
        "empty": [],
        "neg": [-3, 2**63 - 1],
    }
    decoded = decode_example(encode_example(FEATURES))
    assert decoded == {k: v if isinstance(v, list) else [v] for k, v in FEATURES.items()}


@pytest.mark.parametrize(
    "data", [b"\x0a\x05\x0a", b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"]
)
def test_decoder_refuses_malformed_bytes(data):
    with pytest.raises(ExampleDecodeError):
        decode_example(data)
