"""What the trainer takes from the conversion's tf.Transform output (`convert --analyze`).

The normalization constants and the class names come from the analysis of the data, not from
hard-coded ImageNet values. Evaluation and serving both preprocess through the transform graph
itself (`transform_images`, used by input_pipeline.py and export.py), so the two cannot drift
apart. Keras 3 models cannot nest TFT's `transform_features_layer()` (a tf_keras layer), so the
constants are baked into the model's first layer (training crops are random, not a transform
graph, and must meet the same normalization) and the layer is called by the evaluation input
and inside the serving signature's tf.function instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

__all__ = ["TransformInfo", "load_transform", "transform_images"]

CLASS_VOCABULARY = "class_frequencies"  # the name pipeline/analysis.py gives it


@dataclass
class TransformInfo:
    """Attributes:
    path: the transform_fn folder.
    output: the TFTransformOutput.
    layer: its transform_features_layer(), the one evaluation and serving call.
    mean, std: per-channel pixel statistics of the converted images (0-255 scale).
    class_names: class name of each label id.
    image_size: the side length its preprocessing produces.
    """

    path: str
    output: object
    layer: object
    mean: np.ndarray
    std: np.ndarray
    class_names: list[str]
    image_size: int


def load_transform(path: str) -> TransformInfo:
    import tensorflow_transform as tft

    output = tft.TFTransformOutput(path)
    # mean and std are constants of the graph (analyzer outputs): the graph returns them for
    # any input, so one run on an empty image reads them
    probe = output.transform_raw_features(
        {"image_bytes": tf.constant([b""]), "class_name": tf.constant([b""])},
        drop_unused_features=True,
    )
    with tf.io.gfile.GFile(output.vocabulary_file_by_name(CLASS_VOCABULARY)) as f:
        names = [line.rstrip("\n") for line in f if line.strip()]
    return TransformInfo(
        path,
        output,
        output.transform_features_layer(),
        probe["mean"].numpy()[0],
        probe["std"].numpy()[0],
        names,
        int(probe["image_pixels"].shape[1]),
    )


def transform_images(layer, image_bytes: tf.Tensor) -> tf.Tensor:
    """uint8 images [B, S, S, 3] of encoded images [B], through the transform graph."""
    features = layer({"image_bytes": image_bytes, "class_name": tf.fill(tf.shape(image_bytes), "")})
    return tf.cast(features["image_pixels"], tf.uint8)
