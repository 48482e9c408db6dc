"""Client images decoded the way the converter decodes them, in the serving graph.

The converter (Pillow, transforms/image.py) turns a JPEG upright by its EXIF orientation,
composites transparent pixels onto white and makes CMYK and grayscale RGB. TensorFlow's
decoders ignore EXIF and drop alpha, so a phone photo taken upright would be served sideways.
Here the orientation tag is read from the JPEG's APP1 segment with tensor ops (no Python, so
the SavedModel serves anywhere), and PNG/GIF/BMP alpha is composited onto white.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["BACKGROUND", "decode_upright_rgb", "exif_orientation"]

BACKGROUND = 255.0  # the converter's default --background (white)
_HEAD = 65536 + 4  # an APP1 segment holds at most 64 KiB, right after SOI (and maybe APP0)
_MAX_ENTRIES = 64  # IFD0 entries searched for the orientation tag
_ORIENTATION_TAG = 0x0112


def _uint(data: tf.Tensor, at: tf.Tensor, size: int, little: tf.Tensor) -> tf.Tensor:
    """Unsigned `size`-byte integer(s) at byte offset(s) `at`, in the TIFF's byte order."""
    at = tf.convert_to_tensor(at, tf.int32)
    indices = tf.clip_by_value(at[..., None] + tf.range(size), 0, tf.size(data) - 1)
    raw = tf.cast(tf.gather(data, indices), tf.int64)
    weights_be = tf.constant([256 ** (size - 1 - i) for i in range(size)], tf.int64)
    weights = tf.where(little, tf.reverse(weights_be, [0]), weights_be)
    return tf.reduce_sum(raw * weights, axis=-1)


def exif_orientation(encoded: tf.Tensor) -> tf.Tensor:
    """The EXIF orientation (1-8) of a JPEG's APP1 segment; 1 when absent or malformed."""
    head = tf.strings.substr(encoded, 0, _HEAD)
    data = tf.io.decode_raw(head, tf.uint8)
    n = tf.size(data)
    signature = tf.constant([0x45, 0x78, 0x69, 0x66, 0, 0], tf.uint8)  # "Exif\0\0"
    length = tf.maximum(n - 5, 0)
    hits = tf.ones([length], tf.bool)
    for i in range(6):
        hits = tf.logical_and(hits, tf.equal(data[i : i + length], signature[i]))
    # the signature must open an APP1 segment: FF E1, then the 2-byte segment length
    at = tf.range(length)
    hits = tf.logical_and(hits, at >= 4)
    marker_ff = tf.equal(tf.gather(data, tf.maximum(at - 4, 0)), 0xFF)
    marker_e1 = tf.equal(tf.gather(data, tf.maximum(at - 3, 0)), 0xE1)
    hits = tf.logical_and(hits, tf.logical_and(marker_ff, marker_e1))
    found = tf.reduce_any(hits)
    tiff = tf.cast(tf.argmax(tf.cast(hits, tf.int32)), tf.int32) + 6
    little = tf.equal(tf.gather(data, tf.minimum(tiff, tf.maximum(n - 1, 0))), 0x49)  # "II"
    ifd = tiff + tf.cast(_uint(data, tiff + 4, 4, little), tf.int32)
    count = _uint(data, ifd, 2, little)
    entries = ifd + 2 + 12 * tf.range(_MAX_ENTRIES)
    tags = _uint(data, entries, 2, little)
    is_orientation = tf.logical_and(
        tf.equal(tags, _ORIENTATION_TAG), tf.range(_MAX_ENTRIES, dtype=tf.int64) < count
    )
    value = _uint(data, entries + 8, 2, little)
    orientation = tf.reduce_max(tf.where(is_orientation, value, 0))
    valid = tf.logical_and(found, tf.logical_and(orientation >= 1, orientation <= 8))
    valid = tf.logical_and(valid, ifd + 2 < n)
    return tf.where(valid, tf.cast(orientation, tf.int32), 1)


def _orient(image: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """Pillow's ImageOps.exif_transpose for orientations 1-8."""
    transpose = lambda x: tf.transpose(x, [1, 0, 2])  # noqa: E731
    branches = [
        lambda: image,  # 1
        lambda: image[:, ::-1],  # 2: mirrored
        lambda: image[::-1, ::-1],  # 3: rotated 180
        lambda: image[::-1],  # 4: flipped
        lambda: transpose(image),  # 5: transposed
        lambda: tf.image.rot90(image, k=3),  # 6: rotate 90 clockwise to view
        lambda: transpose(image)[::-1, ::-1],  # 7: transversed
        lambda: tf.image.rot90(image, k=1),  # 8: rotate 90 counterclockwise to view
    ]
    return tf.switch_case(orientation - 1, branches)


def decode_upright_rgb(encoded: tf.Tensor) -> tf.Tensor:
    """uint8 [H, W, 3] as the converter sees the image: upright, alpha on white, RGB."""

    def jpeg():
        image = tf.io.decode_jpeg(encoded, channels=3)  # CMYK and grayscale come out RGB
        return _orient(image, exif_orientation(encoded))

    def other():
        rgba = tf.io.decode_image(encoded, channels=4, expand_animations=False)
        rgba.set_shape([None, None, 4])
        alpha = tf.cast(rgba[..., 3:], tf.float32) / 255.0
        rgb = tf.cast(rgba[..., :3], tf.float32)
        composited = rgb * alpha + BACKGROUND * (1.0 - alpha)
        return tf.cast(tf.clip_by_value(tf.round(composited), 0, 255), tf.uint8)

    image = tf.cond(tf.io.is_jpeg(encoded), jpeg, other)
    image.set_shape([None, None, 3])
    return image
