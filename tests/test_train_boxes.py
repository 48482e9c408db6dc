"""The trainer and imgshard's own outputs: the boxes `imgshard convert --boxes` writes reach
the training crop, and an ArrayRecord output is refused up front."""

import json

import numpy as np
import pytest
import tensorflow as tf

from helpers import convert, read_examples, shard_files, sorted_dataset
from imgshard.pipeline.demo_data import boxes_folder, write_digits
from imgshard.trainer.input_pipeline import parse_training_record
from imgshard.trainer.preprocessing import train_crop_window
from imgshard.trainer.train import main

MIN_OBJECT_COVERED = 0.1  # train_crop_window's, as in tf/models' ImageNet preprocessing


def test_an_array_record_output_is_refused_before_training(tmp_path, capsys):
    list_path = sorted_dataset(str(tmp_path / "d"), classes=2, per_class=2)
    out = tmp_path / "out"
    convert(list_path, out)
    meta = json.loads((out / "dataset.json").read_text())
    meta["format"] = "array_record"  # as `--format array_record` records it
    (out / "dataset.json").write_text(json.dumps(meta))

    tiny = ["--image-size", "32", "--batch-size", "4", "--epochs", "1", "--steps-per-epoch", "1"]
    assert main(["--data", str(out), "--model-dir", str(tmp_path / "run"), *tiny]) == 2
    err = capsys.readouterr().err
    assert "holds array_record shards" in err and "convert again without --format" in err
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def _covered(window, box, shape) -> float:
    """The share of `box` (ymin, xmin, ymax, xmax, normalized) inside the pixel window."""
    top, left, height, width = window
    y0, x0, y1, x1 = box[0] * shape[0], box[1] * shape[1], box[2] * shape[0], box[3] * shape[1]
    inter_h = max(0.0, min(y1, top + height) - max(y0, top))
    inter_w = max(0.0, min(x1, left + width) - max(x0, left))
    return inter_h * inter_w / ((y1 - y0) * (x1 - x0))


def test_the_training_crop_uses_the_boxes_convert_wrote(tmp_path):
    root = str(tmp_path / "demo")
    list_path = write_digits(root, per_class=2)
    out = tmp_path / "out"
    convert(list_path, out, "--resize", "shorter:32", "--boxes", boxes_folder(root))
    written = read_examples(str(out))
    raw = [r for path in shard_files(str(out)) for r in tf.data.TFRecordDataset(path)]
    assert len(raw) == len(written) == 20

    for record, features in zip(raw, written, strict=True):
        encoded, _, boxes = parse_training_record(record)
        boxes = boxes.numpy()
        # the trainer sees the record's boxes, in its (ymin, xmin, ymax, xmax) order
        expected = np.stack(
            [
                np.atleast_1d(features[f"image/object/bbox/{k}"]).astype(np.float32)
                for k in ("ymin", "xmin", "ymax", "xmax")
            ],
            1,
        )
        assert boxes.shape[0] >= 1
        np.testing.assert_array_equal(boxes, expected)
        assert (boxes >= 0).all() and (boxes <= 1).all()
        assert (boxes[:, 0] < boxes[:, 2]).all() and (boxes[:, 1] < boxes[:, 3]).all()

        shape = tf.image.extract_jpeg_shape(encoded)[:2].numpy()
        for seed in range(8):
            window = train_crop_window(tf.constant(shape), (seed, 7), boxes).numpy()
            best = max(_covered(window, box, shape) for box in boxes)
            # sample_distorted_bounding_box's guarantee (or the whole image as its fallback);
            # a little slack for its whole-pixel windows
            assert best >= MIN_OBJECT_COVERED - 0.02, (features["image/filename"], window)


def test_the_coverage_check_would_catch_a_crop_that_ignores_the_boxes():
    """A box in a corner: crops sampled without it miss it for some seed, with it never."""
    shape, box = (64, 64), np.array([[0.0, 0.0, 0.1, 0.1]], np.float32)
    ignored = [train_crop_window(tf.constant(shape), (s, 7)).numpy() for s in range(20)]
    assert min(_covered(w, box[0], shape) for w in ignored) < MIN_OBJECT_COVERED
    used = [train_crop_window(tf.constant(shape), (s, 7), box).numpy() for s in range(20)]
    assert min(_covered(w, box[0], shape) for w in used) >= MIN_OBJECT_COVERED - 0.02


@pytest.fixture(autouse=True)
def _no_tf_noise(monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
