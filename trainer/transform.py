"""What the trainer takes from the conversion's tf.Transform output (`convert --analyze`).

The normalization constants and the class names come from the analysis of the data, not from
hard-coded ImageNet values; the serving model runs the transform graph itself (see export.py).
Keras 3 models cannot nest TFT's `transform_features_layer()` (a tf_keras layer), so the
constants are baked into the model's first layer and the layer is called inside the serving
signature's tf.function instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

__all__ = ["TransformInfo", "load_transform"]

CLASS_VOCABULARY = "class_frequencies"  # the name transforms/analysis.py gives it


@dataclass
class TransformInfo:
    """Attributes:
    path: the transform_fn folder.
    output: the TFTransformOutput.
    mean, std: per-channel pixel statistics of the converted images (0-255 scale).
    class_names: class name of each label id.
    image_size: the side length its preprocessing produces.
    """

    path: str
    output: object
    mean: np.ndarray
    std: np.ndarray
    class_names: list[str]
    image_size: int


def load_transform(path: str) -> TransformInfo:
    import tensorflow_transform as tft

    output = tft.TFTransformOutput(path)
    # the constants are graph constants: evaluate the graph once on an empty input
    probe = output.transform_raw_features(
        {"image_bytes": tf.constant([b""]), "class_name": tf.constant([b""])},
        drop_unused_features=True,
    )
    with tf.io.gfile.GFile(output.vocabulary_file_by_name(CLASS_VOCABULARY)) as f:
        names = [line.rstrip("\n") for line in f if line.strip()]
    return TransformInfo(
        path,
        output,
        probe["mean"].numpy()[0],
        probe["std"].numpy()[0],
        names,
        int(probe["image_pixels"].shape[1]),
    )
