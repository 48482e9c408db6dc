"""What the ImageNet recipes do that the trainer copies: the box-aware Inception crop, coupled L2
on kernels only, and the device checks."""

import numpy as np
import pytest
import tensorflow as tf

from helpers import jpeg
from imgshard.trainer.input_pipeline import InputSettings, ReaderSettings, image_dataset
from imgshard.trainer.model import build_model
from imgshard.trainer.preprocessing import train_crop_window
from imgshard.trainer.regularization import add_weight_decay, decayed_variables
from imgshard.trainer.train import main

BOX = [0.0, 0.0, 0.2, 0.2]  # ymin, xmin, ymax, xmax: the top-left corner


def _covered(window, box, height=100, width=100):
    """The fraction of `box` (normalized) inside `window` ([y, x, h, w] in pixels)."""
    y, x, h, w = (int(v) for v in window)
    top, left, bottom, right = box[0] * height, box[1] * width, box[2] * height, box[3] * width
    inter_h = max(0.0, min(y + h, bottom) - max(y, top))
    inter_w = max(0.0, min(x + w, right) - max(x, left))
    return inter_h * inter_w / ((bottom - top) * (right - left))


def test_training_crops_cover_a_tenth_of_an_object_box_when_the_record_has_one():
    shape = tf.constant([100, 100])
    with_box, whole_image = [], []
    for i in range(60):
        seed = tf.constant([i, 7], tf.int64)
        with_box.append(train_crop_window(shape, seed, tf.constant([BOX])).numpy())
        whole_image.append(train_crop_window(shape, seed, tf.zeros([0, 4])).numpy())
    assert min(_covered(w, BOX) for w in with_box) >= 0.1 - 1e-6
    # without boxes the crops go anywhere: many miss that corner
    assert sum(_covered(w, BOX) < 0.1 for w in whole_image) > 10
    assert (train_crop_window(shape, tf.constant([1, 7], tf.int64)).numpy() == whole_image[1]).all()


def _example(image: bytes, label: int, boxes: list[list[float]] | None) -> bytes:
    """A record as tf/models' build_imagenet_data.py writes it, with TensorFlow's own proto."""

    def floats(values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))

    feature = {
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
        "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
    }
    if boxes is not None:
        for index, key in enumerate(("ymin", "xmin", "ymax", "xmax")):
            feature[f"image/object/bbox/{key}"] = floats([b[index] for b in boxes])
        feature["image/object/bbox/label"] = tf.train.Feature(
            int64_list=tf.train.Int64List(value=[label] * len(boxes))
        )
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def test_records_with_without_and_with_empty_boxes_train(tmp_path):
    image = jpeg(60, 40)
    path = str(tmp_path / "boxes.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(_example(image, 1, [BOX, [0.5, 0.5, 0.9, 1.0]]))
        writer.write(_example(image, 2, []))
        writer.write(_example(image, 3, None))
    settings = InputSettings(
        image_size=32,
        batch_size=3,
        num_classes=4,
        reader=ReaderSettings(cycle_length=1, shuffle_buffer=1, seed=0, deterministic=True),
    )
    images, labels = next(iter(image_dataset([path], settings, training=True)))
    assert images.shape == (3, 32, 32, 3) and images.dtype == tf.uint8
    assert sorted(np.argmax(labels.numpy(), axis=1).tolist()) == [1, 2, 3]


def test_weight_decay_is_coupled_l2_on_kernels_only():
    model = build_model("mobilenet", 5, 32, alpha=0.25)
    add_weight_decay(model, 4e-5)
    kernels = decayed_variables(model)
    assert len(kernels) == 15  # MobileNet V1: the first conv, 13 pointwise convs, the logits
    depthwise = [
        v for v in model.trainable_variables if v.path.endswith("kernel") and "_dw_" in v.path
    ]
    assert len(depthwise) == 13 and all(v.regularizer is None for v in depthwise)
    expected = sum(4e-5 / 2 * float(tf.reduce_sum(tf.square(v))) for v in kernels)
    assert float(tf.add_n(model.losses)) == pytest.approx(expected, rel=1e-5)
    # nothing else is decayed: no BatchNorm gamma/beta, no bias
    decayed = {id(v) for v in kernels}
    others = [v for v in model.trainable_variables if id(v) not in decayed]
    assert others and all(v.regularizer is None for v in others)
    assert {v.path.split("/")[-1] for v in others} >= {"gamma", "beta", "bias"}


def test_no_gpu_is_an_error_when_one_is_required(tmp_path, capsys):
    code = main(["--data", str(tmp_path), "--require-gpu", "yes", "--image-size", "32"])
    assert code == 2
    assert "no GPU visible to TensorFlow" in capsys.readouterr().err


def test_a_bad_flag_value_is_a_usage_error_not_a_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--data", str(tmp_path), "--decay-epochs", "30,sixty"])
    assert stopped.value.code == 2
    assert "--decay-epochs: comma-separated epochs, got '30,sixty'" in capsys.readouterr().err
