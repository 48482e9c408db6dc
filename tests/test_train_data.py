"""Which data the trainer takes: foreign ImageNet-schema shards from a glob, the validation
folder beside the training folder, and --eval-only / --export-only on a finished model dir."""

import json

import numpy as np
import pytest
import tensorflow as tf

from helpers import class_color_jpeg, convert, sorted_dataset
from imgshard.trainer.data import data_info, validation_source
from imgshard.trainer.errors import TrainError
from imgshard.trainer.input_pipeline import InputSettings, image_dataset
from imgshard.trainer.preprocessing import eval_image
from imgshard.trainer.train import main
from imgshard.trainer.train import run as train

TINY = ["--image-size", "32", "--alpha", "0.25", "--batch-size", "8", "--log-every", "2"]
TINY += ["--shuffle-buffer", "64", "--cycle-length", "2", "--epochs", "1", "--no-export"]


def _foreign_shard(path, labels):
    """ImageNet-schema records as tf/models writes them (labels 1-based), TensorFlow's proto."""
    with tf.io.TFRecordWriter(str(path)) as writer:
        for label in labels:
            feature = {
                "image/encoded": tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[class_color_jpeg(label, 32)])
                ),
                "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                "image/class/synset": tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[b"n%08d" % label])
                ),
            }
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writer.write(example.SerializeToString())


@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    root = tmp_path_factory.mktemp("foreign")
    for shard in range(3):
        _foreign_shard(root / f"train-{shard:05d}-of-00003", [1, 2, 3, 4] * 5)
    _foreign_shard(root / "validation-00000-of-00001", [1, 2, 3, 4] * 3)
    return root


def test_foreign_shards_from_a_glob_need_the_classes_and_are_counted_once(foreign, tmp_path):
    data = str(foreign / "train-*")
    model_dir = tmp_path / "run"
    with pytest.raises(TrainError, match="--num-classes"):
        train(["--data", data, "--model-dir", str(model_dir), *TINY])
    flags = ["--data", data, "--num-classes", "4", "--label-offset", "1", *TINY]
    result = train([*flags, "--model-dir", str(model_dir)])
    assert result["steps"] == 60 // 8  # the 60 records were counted
    assert "val_loss" in result["history"]  # validation-* beside train-*, found by default
    cached = list((model_dir / "data").glob("num_examples-*.json"))
    assert sorted(json.loads(p.read_text())["records"] for p in cached) == [12, 60]
    # --num-examples instead of counting
    given = data_info(data, num_classes=4, num_examples=32, cache_dir=str(tmp_path / "given"))
    assert given.records == 32 and not (tmp_path / "given").exists()


def test_a_label_outside_the_classes_stops_the_input(foreign):
    # tf/models' labels are 1-4 here: without --label-offset 1, label 4 is outside 4 classes
    # (tf.one_hot alone would make it an all-zero target and train on it silently)
    files = [str(foreign / "validation-00000-of-00001")]
    for offset, fails in ((0, True), (1, False)):
        settings = InputSettings(image_size=32, batch_size=4, num_classes=4, label_offset=offset)
        batches = image_dataset(files, settings, training=False)
        if fails:
            with pytest.raises(tf.errors.InvalidArgumentError, match="label >= 4 classes"):
                list(batches)
        else:
            assert len(list(batches)) == 3


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    """imgshard's layout: one split per folder, out/train and out/validation."""
    root = tmp_path_factory.mktemp("splits")
    list_path = sorted_dataset(str(root / "images"), classes=4, per_class=10)
    for split in ("train", "validation"):
        convert(
            list_path,
            root / "out" / split,
            "--split",
            split,
            "--num-shards",
            "2",
            "--resize",
            "shorter:32",
            "--allow-upscale",
        )
    return root / "out"


def test_validation_beside_the_train_folder_ema_eval_only_and_export_only(splits, tmp_path):
    assert validation_source(str(splits / "train"), "auto") == str(splits / "validation")
    assert validation_source(str(splits / "train"), "none") is None
    assert validation_source(str(splits / "validation"), "auto") is None  # not a train folder

    model_dir = tmp_path / "run"
    flags = ["--data", str(splits / "train"), "--model-dir", str(model_dir), *TINY]
    flags += ["--ema-decay", "0.5"]  # and the weights' moving average, validated and exported
    result = train([*flags, "--steps-per-epoch", "3"])
    assert len(result["history"]["val_loss"]) == 1
    model = result["model"]
    averages = [v for v in model.optimizer.variables if v.path.endswith("_average")]
    assert len(averages) == len(model.trainable_weights)
    for average, weight in zip(averages, model.trainable_weights, strict=True):
        np.testing.assert_array_equal(average.numpy(), weight.numpy())

    evaluated = train([*flags, "--eval-only"])
    assert evaluated["steps"] == 3 and set(evaluated["metrics"]) >= {"loss", "accuracy", "top5"}
    written = json.loads((model_dir / "eval.json").read_text())
    assert written["step"] == 3 and written["metrics"] == evaluated["metrics"]

    exported = train([*flags, "--export-only"])  # from the checkpoint: raw weights + average
    served = tf.saved_model.load(exported["export"]).signatures["serving_default"]
    image = class_color_jpeg(1, 32)
    expected = tf.nn.softmax(model(eval_image(tf.constant(image), 32)[None])).numpy()
    got = served(image_bytes=tf.constant([image]))["probabilities"].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)

    # without the training flags: the model's shape comes from the run's result.json
    bare = ["--data", str(splits / "train"), "--model-dir", str(model_dir), "--batch-size", "8"]
    again = train([*bare, "--eval-only", "--ema-decay", "0.5"])
    assert again["steps"] == 3
    np.testing.assert_allclose(again["metrics"]["loss"], evaluated["metrics"]["loss"], rtol=1e-5)
    reexported = train([*bare, "--export-only", "--ema-decay", "0.5"])
    served = tf.saved_model.load(reexported["export"]).signatures["serving_default"]
    got = served(image_bytes=tf.constant([image]))["probabilities"].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)

    none = ["--data", str(splits / "train"), "--model-dir", str(tmp_path / "none"), *TINY]
    assert main([*none, "--eval-only"]) == 2  # no checkpoint there
