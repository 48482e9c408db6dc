"""Export: a SavedModel that takes raw encoded images and returns class probabilities.

Serving applies `serving_image`: `eval_image`, the very function evaluation uses, on the image
as the converter would have stored it (upright by EXIF, alpha on white, CMYK as RGB), so a
client sends the bytes of a JPEG (or PNG) and gets the predictions evaluation measured. With a
tf.Transform output, evaluation and serving both run its transform graph (`serving_image`
again, built into the graph by the converter) instead.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from imgshard.trainer.preprocessing import serving_image
from imgshard.trainer.transform import transform_images

__all__ = ["ServingModule", "export_serving_model"]


class ServingModule(tf.Module):
    def __init__(
        self, model: keras.Model, image_size: int, class_names: list[str], transform_layer=None
    ):
        super().__init__()
        self.model = model
        self.image_size = image_size
        self.class_names = tf.constant(class_names)
        self.transform_layer = transform_layer

    def _images(self, image_bytes):
        if self.transform_layer is not None:
            return transform_images(self.transform_layer, image_bytes)
        size = self.image_size
        return tf.map_fn(
            lambda encoded: serving_image(encoded, size),
            image_bytes,
            fn_output_signature=tf.TensorSpec([size, size, 3], tf.uint8),
        )

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve(self, image_bytes):
        images = self._images(image_bytes)
        logits = self.model(images, training=False)
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32))
        top = tf.argmax(probabilities, axis=-1)
        return {
            "probabilities": probabilities,
            "class_id": top,
            "class_name": tf.gather(self.class_names, top),
        }


def export_serving_model(
    model: keras.Model, image_size: int, class_names: list[str], path: str, transform_layer=None
) -> str:
    module = ServingModule(model, image_size, class_names, transform_layer)
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    return path
