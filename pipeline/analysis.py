"""Dataset statistics with tf.Transform, in the conversion job, from per-image summaries.

The shard writer emits one small summary per written record (per-channel sums and sums of
squares of the decoded output JPEG); tf.Transform's analyzers reduce them to the dataset's
per-channel mean and standard deviation, build the class vocabulary in label-id order (below),
and write a `transform_fn` whose graph is the evaluation and serving preprocessing: encoded
bytes -> center crop -> resize (`image_pixels`), class name -> `label`, plus the analyzed
`mean` and `std`. The trainer evaluates and serves through that one graph
(trainer/transform.py); normalizing stays in the model's first layer, with those constants, so
training crops (random, not a tf.Transform graph) and the graph's output meet the same
normalization.

Image bytes never reach the analysis, so it is not a second pass over the data. TensorFlow is
imported only here, lazily, and only when --analyze asks for it: it costs seconds per process.

Class ids: `tft.vocabulary` orders by decreasing (weighted) frequency, so over the images
themselves (ILSVRC2012's classes have unequal counts) its order could not equal the ids written
in the records. It discards empty tokens, though, and takes weights. So image summaries carry an
empty class name, and one extra summary per class, with no pixels and vocabulary weight
num_classes - id, makes the analyzed vocabulary list the classes exactly in id order, whatever
that order is (sorted names, integer ids, a --labels file). tests/test_analysis.py proves the
map agrees with every record's image/class/label.
"""

from __future__ import annotations

import io

import apache_beam as beam
import numpy as np
from PIL import Image, ImageStat

__all__ = ["AnalyzeImages", "class_summaries", "image_summary"]

TRANSFORM_DIR = "transform_fn"
CLASS_VOCABULARY = "class_frequencies"  # its order is the label ids', not frequencies


def image_summary(encoded: bytes) -> dict:
    """The per-record summary the analyzers reduce; from the pixels a reader decodes."""
    image = Image.open(io.BytesIO(encoded)).convert("RGB")
    stat = ImageStat.Stat(image)
    return {
        "channel_sum": np.asarray(stat.sum, np.float32),
        "channel_sum_squares": np.asarray(stat.sum2, np.float32),
        "pixels": np.float32(image.width * image.height),
        "vocabulary_weight": np.float32(0.0),
        "class_name": b"",  # ignored by tft.vocabulary: see the module docstring
        "image_bytes": b"",  # the serving input; the analysis does not need it
    }


def class_summaries(names) -> list[dict]:
    """One summary per class, weighted so that the vocabulary lists the classes in id order."""
    zeros = np.zeros(3, np.float32)
    return [
        {
            "channel_sum": zeros,
            "channel_sum_squares": zeros,
            "pixels": np.float32(0),
            "vocabulary_weight": np.float32(len(names) - i),
            "class_name": name.encode("utf-8"),
            "image_bytes": b"",
        }
        for i, name in enumerate(names)
    ]


def _feature_spec():
    import tensorflow as tf

    return {
        "channel_sum": tf.io.FixedLenFeature([3], tf.float32),
        "channel_sum_squares": tf.io.FixedLenFeature([3], tf.float32),
        "pixels": tf.io.FixedLenFeature([], tf.float32),
        "vocabulary_weight": tf.io.FixedLenFeature([], tf.float32),
        "class_name": tf.io.FixedLenFeature([], tf.string),
        "image_bytes": tf.io.FixedLenFeature([], tf.string),
    }


def make_preprocessing_fn(image_size: int):
    """The serving preprocessing (serving_image: what evaluation does to converted records,
    plus EXIF orientation and alpha for client images), its constants from the analyzers."""

    def preprocessing_fn(inputs):
        import tensorflow as tf
        import tensorflow_transform as tft

        from imgshard.trainer.preprocessing import serving_image

        pixels = tft.sum(inputs["pixels"])
        mean = tft.sum(inputs["channel_sum"], reduce_instance_dims=False) / pixels
        second = tft.sum(inputs["channel_sum_squares"], reduce_instance_dims=False) / pixels
        std = tf.sqrt(tf.maximum(second - tf.square(mean), 0.0))
        classes = tft.vocabulary(
            inputs["class_name"],
            weights=inputs["vocabulary_weight"],
            vocab_filename=CLASS_VOCABULARY,
        )

        def one_image(encoded):
            # tf.Transform runs this graph over the summaries too, whose image_bytes are empty
            return tf.cond(
                tf.strings.length(encoded) > 0,
                lambda: serving_image(encoded, image_size),
                lambda: tf.zeros([image_size, image_size, 3], tf.uint8),
            )

        images = tf.map_fn(
            one_image,
            inputs["image_bytes"],
            fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.uint8),
        )
        label = tft.apply_vocabulary(inputs["class_name"], classes, default_value=-1)
        batch = tf.shape(inputs["image_bytes"])[0]

        def per_example(value):
            return tf.tile(tf.reshape(tf.cast(value, tf.float32), [1, -1]), [batch, 1])

        return {
            # 0-255 pixels: the model normalizes them itself with `mean` and `std`
            # (tf.Transform outputs cannot be uint8; the values are integers, so a cast back
            # is exact)
            "image_pixels": tf.cast(images, tf.float32),
            "label": label,
            "mean": per_example(mean),
            "std": per_example(std),
        }

    return preprocessing_fn


class AnalyzeImages(beam.PTransform):
    """image summaries -> {output}/transform_fn (tf.Transform's SavedModel + metadata)."""

    def __init__(self, output: str, image_size: int, temp_dir: str):
        super().__init__()
        self._output = output
        self._image_size = image_size
        self._temp_dir = temp_dir

    def expand(self, summaries):
        import tensorflow_transform.beam as tft_beam
        from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

        metadata = dataset_metadata.DatasetMetadata(
            schema_utils.schema_from_feature_spec(_feature_spec())
        )
        with tft_beam.Context(temp_dir=self._temp_dir, force_tf_compat_v1=False):
            transform_fn = (summaries, metadata) | "Analyze" >> tft_beam.AnalyzeDataset(
                make_preprocessing_fn(self._image_size)
            )
            return transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(
                f"{self._output}/{TRANSFORM_DIR}"
            )
