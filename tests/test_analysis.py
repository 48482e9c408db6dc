"""tf.Transform statistics in the conversion job (--analyze)."""

import functools
import io
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from PIL import Image

from helpers import IN_PROCESS, encode, read_examples, sorted_dataset, write
from imgshard.pipeline import run


def analyze(list_path, output, *flags):
    return run(
        [
            "--input",
            str(list_path),
            "--output",
            str(output),
            "--num-shards",
            "3",
            "--resize",
            "shorter:24",
            "--allow-upscale",
            "--analyze",
            "--analyze-image-size",
            "16",
            *flags,
            *IN_PROCESS,
        ]
    )


@pytest.fixture(scope="module")
def analyzed(tmp_path_factory):
    root = tmp_path_factory.mktemp("tft")
    list_path = sorted_dataset(str(root / "images"), classes=4, per_class=9, names=True)
    # a few real-looking, differently sized images so the statistics are not trivial
    rng = np.random.default_rng(0)
    with open(list_path, "a") as f:
        for i in range(6):
            pixels = rng.integers(0, 255, (20 + 3 * i, 30, 3), dtype=np.uint8)
            write(
                str(root / "images" / "n00000003" / f"extra{i}.png"),
                encode(Image.fromarray(pixels), "PNG"),
            )
            f.write(f"n00000003/extra{i}.png n00000003\n")
    out = root / "out"
    analyze(list_path, out)
    return list_path, out


def transform(output, image_bytes, class_names):
    transform_output = tft.TFTransformOutput(str(output / "transform_fn"))
    return transform_output.transform_raw_features(
        {"image_bytes": tf.constant(image_bytes), "class_name": tf.constant(class_names)},
        drop_unused_features=True,
    )


def test_analyzed_mean_and_std_equal_numpy_over_the_decoded_records(analyzed):
    _, out = analyzed
    pixels = np.concatenate(
        [
            np.asarray(
                Image.open(io.BytesIO(e["image/encoded"])).convert("RGB"), np.float64
            ).reshape(-1, 3)
            for e in read_examples(str(out))
        ]
    )
    outputs = transform(out, [read_examples(str(out))[0]["image/encoded"]], [b"n00000000"])
    np.testing.assert_allclose(outputs["mean"].numpy()[0], pixels.mean(axis=0), rtol=1e-4)
    np.testing.assert_allclose(outputs["std"].numpy()[0], pixels.std(axis=0), rtol=1e-3)
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["transform_fn"] == "transform_fn" and meta["settings"]["analyze"] is True
    assert not os.path.exists(out / ".tft-tmp")


def test_the_class_map_agrees_with_every_record(analyzed):
    _, out = analyzed
    examples = read_examples(str(out))
    outputs = transform(
        out, [e["image/encoded"] for e in examples], [e["image/class/synset"] for e in examples]
    )
    assert outputs["label"].numpy().tolist() == [e["image/class/label"] for e in examples]
    assert outputs["image_pixels"].shape == (len(examples), 16, 16, 3)
    # only what the trainer uses is in the graph (#17): no normalized copy, no size quantiles
    assert set(outputs) == {"image_pixels", "label", "mean", "std"}
    unknown = transform(out, [examples[0]["image/encoded"]], [b"n99999999"])
    assert unknown["label"].numpy().tolist() == [-1]


def test_a_labels_file_order_and_an_offset_are_respected(tmp_path):
    list_path = sorted_dataset(str(tmp_path / "images"), classes=3, per_class=4, names=True)
    labels = tmp_path / "labels.txt"
    labels.write_text("n00000002\nn00000000\nn00000001\n")  # not sorted
    out = tmp_path / "out"
    analyze(list_path, out, "--labels", str(labels), "--label-offset", "1")
    examples = read_examples(str(out))
    written = [e["image/class/label"] for e in examples]
    ids = {b"n00000002": 0, b"n00000000": 1, b"n00000001": 2}  # the labels file's order
    assert written == [ids[e["image/class/synset"]] + 1 for e in examples]
    outputs = transform(
        out, [e["image/encoded"] for e in examples], [e["image/class/synset"] for e in examples]
    )
    # the transform maps a class to its 0-based id; the records hold id + offset
    assert outputs["label"].numpy().tolist() == [label - 1 for label in written]


def test_analysis_is_deterministic(analyzed, tmp_path):
    list_path, out = analyzed
    again = tmp_path / "again"
    analyze(list_path, again)
    image = [read_examples(str(out))[0]["image/encoded"]]
    first, second = transform(out, image, [b"n00000001"]), transform(again, image, [b"n00000001"])
    for key in ("mean", "std", "image_pixels", "label"):
        np.testing.assert_array_equal(first[key].numpy(), second[key].numpy())


def test_trainer_uses_the_analysis_and_serving_matches_the_evaluation_path(tmp_path):
    from imgshard.trainer.input_pipeline import InputSettings, dataset_files, image_dataset
    from imgshard.trainer.preprocessing import eval_image
    from imgshard.trainer.train import run as train
    from imgshard.trainer.transform import load_transform, transform_images

    list_path = sorted_dataset(str(tmp_path / "images"), classes=4, per_class=16, names=True)
    shards = tmp_path / "shards"
    run(
        [
            "--input",
            list_path,
            "--output",
            str(shards),
            "--num-shards",
            "4",
            "--resize",
            "shorter:32",
            "--allow-upscale",
            "--analyze",
            "--analyze-image-size",
            "32",
            *IN_PROCESS,
        ]
    )
    result = train(
        [
            "--data",
            str(shards),
            "--model-dir",
            str(tmp_path / "run"),
            "--epochs",
            "1",
            "--image-size",
            "32",
            "--alpha",
            "0.25",
            "--batch-size",
            "16",
        ]
    )
    model = result["model"]
    normalize = model.get_layer("normalize")
    analyzed = transform(shards, [b""], [b""])
    np.testing.assert_allclose(np.ravel(normalize.mean), analyzed["mean"].numpy()[0], rtol=1e-6)
    np.testing.assert_allclose(
        np.sqrt(np.ravel(normalize.variance)), analyzed["std"].numpy()[0], rtol=1e-5
    )

    served = tf.saved_model.load(result["export"]).signatures["serving_default"]
    examples = read_examples(str(shards))[:10]
    jpegs = [e["image/encoded"] for e in examples]
    out = served(image_bytes=tf.constant(jpegs))

    # the training-time evaluation input: the transform graph, the one serving runs. One more
    # record holds a transparent PNG (black under alpha 0): the graph puts it on white, as the
    # converter does, where eval_image alone would keep the black, so the two paths differ.
    transform_info = load_transform(str(shards / "transform_fn"))
    settings = InputSettings(image_size=32, batch_size=len(examples) + 1, num_classes=4)
    clear = np.zeros((40, 40, 4), np.uint8)
    clear[:, :20] = (200, 30, 30, 255)
    png = encode(Image.fromarray(clear, "RGBA"), "PNG")
    records = tmp_path / "first.tfrecord"
    with tf.io.TFRecordWriter(str(records)) as writer:
        for record in list(tf.data.TFRecordDataset(dataset_files(str(shards))))[:10]:
            writer.write(record.numpy())
        feature = {
            "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[png])),
            "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[0])),
        }
        writer.write(
            tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
        )
    batch, _ = next(
        iter(
            image_dataset(
                [str(records)],
                settings,
                training=False,
                eval_images=functools.partial(transform_images, transform_info.layer),
            )
        )
    )
    graph = transform(shards, [*jpegs, png], [b""] * (len(jpegs) + 1))["image_pixels"].numpy()
    np.testing.assert_array_equal(batch.numpy(), graph.astype(np.uint8))
    assert batch.numpy()[-1][:, -8:].min() > 200  # on white, through the graph
    assert eval_image(tf.constant(png), 32).numpy()[:, -8:].max() < 50  # eval_image alone
    # on converted records the graph does what eval_image does (it is built from it), so a model
    # trained without tf.Transform is evaluated the same way
    images = batch[:-1]
    direct = tf.stack([eval_image(tf.constant(b), 32) for b in jpegs]).numpy()
    np.testing.assert_array_equal(images.numpy(), direct)
    expected = tf.nn.softmax(model(images, training=False)).numpy()
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-6)
    names = (shards / "labels.txt").read_text().split()
    assert [n.decode() for n in out["class_name"].numpy()] == [
        names[i] for i in expected.argmax(axis=1)
    ]
