"""Image preprocessing for training and evaluation, on encoded bytes; uint8 out.

Training takes the fused path: read the JPEG header (`extract_jpeg_shape`), pick a random
crop (`sample_distorted_bounding_box`: 8-100% of the area, aspect 3/4-4/3, covering at least
10% of one of the record's ILSVRC object boxes when it has any, as tf/models' Inception
preprocessing does; the whole image counts as the box otherwise) and decode only that window
(`decode_and_crop_jpeg`), so most of the image is never decoded. Other formats
(PNG) decode in full and crop the same way. Evaluation takes a center crop of 87.5% of the
shorter side, as the ImageNet reference readers do. Images stay uint8 until the model's
first layer normalizes them (on the accelerator, and 4x less data to move).
"""

from __future__ import annotations

import tensorflow as tf

from imgshard.trainer.decode import decode_upright_rgb, exif_orientation

__all__ = [
    "EVAL_CROP_FRACTION",
    "eval_image",
    "serving_image",
    "train_crop_window",
    "train_image",
]

EVAL_CROP_FRACTION = 0.875
AREA_RANGE = (0.08, 1.0)
ASPECT_RANGE = (3 / 4, 4 / 3)


def _resize_uint8(image: tf.Tensor, size: int) -> tf.Tensor:
    """Bilinear resize; antialiased only when shrinking more than 2x.

    Antialiasing costs 3x the resize (benchmarks/RESULTS-input.md) and only matters for large
    reductions: crops of 256-px shards are at most ~1.5x the 224-px output, while a photo sent
    to the serving model may be 20x it. One rule for training, evaluation and serving.
    """
    shrink = tf.reduce_max(tf.shape(image)[:2]) > 2 * size
    resized = tf.cond(
        shrink,
        lambda: tf.image.resize(image, (size, size), method="bilinear", antialias=True),
        lambda: tf.image.resize(image, (size, size), method="bilinear"),
    )
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def _decode_full(encoded: tf.Tensor) -> tf.Tensor:
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def _crop(encoded: tf.Tensor, window: tf.Tensor) -> tf.Tensor:
    """Decodes [offset_y, offset_x, height, width] of the image, JPEG or not."""
    return tf.cond(
        tf.io.is_jpeg(encoded),
        lambda: tf.image.decode_and_crop_jpeg(encoded, window, channels=3),
        lambda: tf.image.crop_to_bounding_box(_decode_full(encoded), *tf.unstack(window)),
    )


def _shape(encoded: tf.Tensor) -> tf.Tensor:
    return tf.cond(
        tf.io.is_jpeg(encoded),
        lambda: tf.image.extract_jpeg_shape(encoded)[:2],
        lambda: tf.shape(_decode_full(encoded))[:2],
    )


def train_crop_window(
    shape: tf.Tensor, seed: tuple[int, int] | tf.Tensor, boxes: tf.Tensor | None = None
) -> tf.Tensor:
    """[offset_y, offset_x, height, width] of a random training crop of an image of `shape`
    ([height, width]). `boxes` [N, 4] are (ymin, xmin, ymax, xmax) in [0, 1]; with N = 0 or
    None the whole image stands in for the object."""
    if boxes is None:
        boxes = tf.zeros([0, 4], tf.float32)
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.concat([shape, [3]], axis=0),
        bounding_boxes=tf.reshape(tf.cast(boxes, tf.float32), [1, -1, 4]),
        seed=seed,
        min_object_covered=0.1,
        aspect_ratio_range=ASPECT_RANGE,
        area_range=AREA_RANGE,
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    return tf.stack([begin[0], begin[1], crop_size[0], crop_size[1]])


def train_image(
    encoded: tf.Tensor,
    size: int,
    seed: tuple[int, int] | tf.Tensor,
    boxes: tf.Tensor | None = None,
) -> tf.Tensor:
    """A random-area, random-aspect crop resized to size x size, randomly flipped (uint8);
    see `train_crop_window` for `boxes`."""
    window = train_crop_window(_shape(encoded), seed, boxes)
    image = _resize_uint8(_crop(encoded, window), size)
    return tf.image.stateless_random_flip_left_right(image, seed=seed)


def _center_window(shape: tf.Tensor) -> tf.Tensor:
    side = tf.cast(tf.cast(tf.reduce_min(shape), tf.float32) * EVAL_CROP_FRACTION, tf.int32)
    side = tf.maximum(side, 1)
    return tf.stack([(shape[0] - side) // 2, (shape[1] - side) // 2, side, side])


def eval_image(encoded: tf.Tensor, size: int) -> tf.Tensor:
    """The center 87.5% square of the shorter side, resized to size x size (uint8)."""
    window = _center_window(_shape(encoded))
    return _resize_uint8(_crop(encoded, window), size)


def serving_image(encoded: tf.Tensor, size: int) -> tf.Tensor:
    """`eval_image` of a client's image as the converter would have stored it: upright by its
    EXIF orientation, alpha composited onto white, CMYK and grayscale as RGB (decode.py).
    Plain JPEGs take `eval_image`'s fused path itself."""
    plain_jpeg = tf.logical_and(tf.io.is_jpeg(encoded), tf.equal(exif_orientation(encoded), 1))

    def converted():
        image = decode_upright_rgb(encoded)
        window = _center_window(tf.shape(image)[:2])
        return _resize_uint8(tf.image.crop_to_bounding_box(image, *tf.unstack(window)), size)

    return tf.cond(plain_jpeg, lambda: eval_image(encoded, size), converted)
