"""Serving parity: the exported signature takes what the converter takes (EXIF orientation,
CMYK, grayscale, alpha PNG) and answers as the evaluation path answers for the converted
image."""

import io
import struct

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from helpers import encode, photo
from imgshard.trainer.decode import decode_upright_rgb, exif_orientation
from imgshard.trainer.export import export_serving_model
from imgshard.trainer.preprocessing import eval_image, serving_image
from imgshard.transforms.image import ImageSpec, parse_resize, process_image

REGIONS = ["top", "bottom", "left", "right"]


def _exif(orientation: int, big_endian: bool) -> bytes:
    """An APP1 payload holding only IFD0's orientation tag, in either TIFF byte order."""
    order = ">" if big_endian else "<"
    tiff = (b"MM" if big_endian else b"II") + struct.pack(order + "HI", 42, 8)
    entry = struct.pack(order + "HHI", 0x0112, 3, 1) + struct.pack(order + "HH", orientation, 0)
    # two entries, an unrelated one first (cameras write Make before Orientation), no next IFD
    make = struct.pack(order + "HHI", 0x010F, 2, 4) + b"ABC\x00"
    ifd = struct.pack(order + "H", 2) + make + entry + struct.pack(order + "I", 0)
    return b"Exif\x00\x00" + tiff + ifd


@pytest.mark.parametrize("big_endian", [False, True])
def test_exif_orientations_match_pillow(big_endian):
    source = photo(48, 32, seed=3)
    for orientation in range(1, 9):
        data = encode(source, "JPEG", quality=95, exif=_exif(orientation, big_endian))
        assert int(exif_orientation(tf.constant(data))) == orientation
        # Pillow's exif_transpose of the very pixels TensorFlow decodes (the two JPEG decoders
        # differ by a level or two), carried losslessly in a PNG with the same EXIF
        stored = tf.io.decode_jpeg(data, channels=3).numpy()
        png = encode(Image.fromarray(stored), "PNG", exif=_exif(orientation, big_endian))
        expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(png))))
        got = decode_upright_rgb(tf.constant(data)).numpy()
        assert got.shape == expected.shape and (got == expected).all(), orientation
    assert int(exif_orientation(tf.constant(encode(source, "JPEG")))) == 1  # no EXIF
    assert int(exif_orientation(tf.constant(b"\xff\xd8\xff\xe1\x00\x08Exif\x00\x00"))) == 1


def _red_region_model() -> keras.Model:
    """Logits: how red the top, bottom, left and right halves of the image are."""

    def regions(images):
        x = keras.ops.cast(images, "float32")
        red = x[..., 0] - (x[..., 1] + x[..., 2]) / 2
        halves = [red[:, :16, :], red[:, 16:, :], red[:, :, :16], red[:, :, 16:]]
        return keras.ops.stack([keras.ops.mean(h, axis=(1, 2)) for h in halves], axis=-1) / 50

    inputs = keras.Input((32, 32, 3), dtype="uint8")
    return keras.Model(inputs, keras.layers.Lambda(regions)(inputs))


def _half_red(size=(80, 60), half="top", mode="RGB") -> Image.Image:
    width, height = size
    image = Image.new("RGB", size, (128, 128, 128))
    box = {"top": (0, 0, width, height // 2), "left": (0, 0, width // 2, height)}[half]
    image.paste((220, 20, 20), box)
    return image.convert(mode)


def test_serving_answers_as_evaluation_does_for_the_converted_image(tmp_path):
    # red on top as stored; EXIF 6 turns it to the right as shown (and as converted)
    rotated = encode(_half_red(half="top"), "JPEG", quality=95, exif=_exif(6, False))
    cmyk = encode(_half_red(half="left", mode="CMYK"), "JPEG", quality=95)
    rgba = Image.new("RGBA", (60, 80), (220, 20, 20, 255))
    rgba.paste((220, 20, 20, 0), (0, 0, 60, 40))  # the top half transparent (red underneath)
    alpha_png = encode(rgba, "PNG")
    gray = encode(photo(70, 50).convert("L"), "JPEG", quality=95)
    inputs = {"right": rotated, "left": cmyk, "bottom": alpha_png}

    model = _red_region_model()
    path = export_serving_model(model, 32, REGIONS, str(tmp_path / "export"))
    served = tf.saved_model.load(path).signatures["serving_default"]
    spec = ImageSpec(resize=parse_resize("shorter:40"), quality=95, allow_upscale=True)
    for expected, raw in inputs.items():
        converted = process_image(raw, spec).encoded
        evaluated = model(eval_image(tf.constant(converted), 32)[None]).numpy()
        assert REGIONS[int(evaluated.argmax())] == expected
        out = served(image_bytes=tf.constant([raw]))
        assert out["class_name"].numpy()[0].decode() == expected
        if raw is not cmyk:  # TensorFlow's own decoder turns this CMYK JPEG into RGB too
            # a decode that ignores EXIF and alpha would not have answered that
            naive = model(eval_image(tf.constant(raw), 32)[None]).numpy()
            assert REGIONS[int(naive.argmax())] != expected

    for raw in (*inputs.values(), gray):  # pixels too, within JPEG re-encoding noise
        converted = process_image(raw, spec).encoded
        want = eval_image(tf.constant(converted), 32).numpy().astype(int)
        got = serving_image(tf.constant(raw), 32).numpy().astype(int)
        assert np.abs(got - want).mean() < 6
    # one batch mixing all of them serves (a CMYK JPEG no longer fails its batch)
    batch = served(image_bytes=tf.constant([*inputs.values(), gray]))
    assert batch["probabilities"].shape == (4, 4)
