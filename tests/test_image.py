"""Decode/resize/encode of single images: odd formats, geometry, and refusals."""

import io
import struct
import sys
import threading
import tracemalloc
import warnings

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from helpers import encode, jpeg, photo, png_bomb
from imgshard.transforms import records
from imgshard.transforms.image import (
    ImageRejected,
    ImageSpec,
    ResizeSpec,
    parse_resize,
    plan_resize,
    process_image,
)

KEEP_SIZE = ImageSpec(resize=ResizeSpec("none"))


def decoded(result) -> np.ndarray:
    image = Image.open(io.BytesIO(result.encoded))
    assert image.format == "JPEG"
    assert image.size == (result.width, result.height)
    assert len(image.getbands()) == result.channels
    return np.asarray(image)


def solid(mode, size, color) -> Image.Image:
    return Image.new(mode, size, color)


def test_cmyk_jpeg_becomes_rgb_with_the_right_colors():
    cmyk = solid("RGB", (32, 32), (200, 30, 40)).convert("CMYK")
    data = encode(cmyk, "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    result = process_image(data, ImageSpec())
    pixel = decoded(result)[16, 16].astype(int)
    assert result.channels == 3
    assert np.abs(pixel - [200, 30, 40]).max() < 12


def test_grayscale_becomes_rgb_or_stays_one_channel_on_request():
    data = encode(solid("L", (20, 10), 77), "JPEG")
    rgb = process_image(data, ImageSpec())
    assert rgb.channels == 3 and decoded(rgb).shape == (10, 20, 3)
    gray = process_image(data, ImageSpec(keep_grayscale=True))
    assert gray.channels == 1 and decoded(gray).shape == (10, 20)


def test_rgba_png_is_composited_on_the_background():
    rgba = solid("RGBA", (16, 16), (255, 0, 0, 128))
    result = process_image(encode(rgba, "PNG"), ImageSpec())
    assert result.source_format == "PNG"
    assert np.abs(decoded(result)[8, 8].astype(int) - [255, 127, 127]).max() < 8
    on_black = process_image(encode(rgba, "PNG"), ImageSpec(background=(0, 0, 0)))
    assert np.abs(decoded(on_black)[8, 8].astype(int) - [128, 0, 0]).max() < 8


def test_palette_png_with_a_transparent_index():
    palette = solid("P", (16, 16), 1)
    palette.putpalette([0, 0, 0, 10, 200, 10] + [0] * 762)
    palette.info["transparency"] = 0
    palette.putpixel((0, 0), 0)
    result = process_image(encode(palette, "PNG", transparency=0), ImageSpec())
    pixels = decoded(result).astype(int)
    assert np.abs(pixels[8, 8] - [10, 200, 10]).max() < 10
    assert pixels[0, 0].min() > 150  # the transparent pixel shows the white background


def test_sixteen_bit_png_is_scaled_not_clipped():
    array = np.full((8, 8), 32768, dtype=np.uint16)
    data = encode(Image.fromarray(array), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    value = decoded(process_image(data, ImageSpec()))[4, 4]
    assert np.abs(value.astype(int) - 128).max() <= 2


def test_png_named_jpeg_is_handled_by_content():
    result = process_image(encode(photo(30, 20), "PNG"), ImageSpec())
    assert result.source_format == "PNG"
    assert decoded(result).shape == (20, 30, 3)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "BMP", "TIFF"])
def test_other_formats_decode(fmt):
    result = process_image(encode(photo(30, 20), fmt), ImageSpec())
    assert result.source_format == fmt
    assert decoded(result).shape == (20, 30, 3)


def test_multi_frame_gif_takes_the_first_frame():
    frames = [solid("RGB", (10, 10), c) for c in [(250, 0, 0), (0, 0, 250)]]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:])
    pixel = decoded(process_image(out.getvalue(), ImageSpec()))[5, 5].astype(int)
    assert pixel[0] > 200 and pixel[2] < 50


def test_exif_orientation_is_applied():
    image = photo(60, 40)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = encode(image, "JPEG", exif=exif)
    result = process_image(data, ImageSpec())
    assert (result.width, result.height) == (40, 60)
    # resize targets the displayed shape: shorter side 20 is the width after rotation
    small = process_image(data, ImageSpec(resize=ResizeSpec("shorter", 20, 20)))
    assert (small.width, small.height) == (20, 30)


@pytest.mark.parametrize(
    "spec,source,expected",
    [
        ("shorter:256", (1024, 768), (341, 256)),
        ("shorter:256", (768, 1024), (256, 341)),
        ("longer:100", (1024, 768), (100, 75)),
        ("shorter:256", (200, 100), (200, 100)),  # never upscale
        ("fixed:64x48", (1000, 1000), (64, 48)),
        ("fixed:64x48", (20, 10), (64, 48)),  # fixed means exactly WxH
        ("none", (123, 45), (123, 45)),
    ],
)
def test_output_sizes(spec, source, expected):
    result = process_image(jpeg(*source), ImageSpec(resize=parse_resize(spec)))
    assert (result.width, result.height) == expected
    assert decoded(result).shape[:2] == expected[::-1]


def test_upscale_only_when_asked():
    spec = ImageSpec(resize=parse_resize("shorter:64"), allow_upscale=True)
    result = process_image(jpeg(40, 30), spec)
    assert (result.width, result.height) == (85, 64)


def test_fixed_size_crops_the_center():
    array = np.zeros((100, 300, 3), np.uint8)
    array[:, 100:200] = 255  # a white middle third
    result = process_image(
        encode(Image.fromarray(array), "PNG"), ImageSpec(resize=parse_resize("fixed:50x50"))
    )
    pixels = decoded(result)
    assert pixels[:, 5:45].min() > 200  # the crop is the white middle
    assert plan_resize(300, 100, ResizeSpec("fixed", 50, 50), False)[1] == (100, 0, 200, 100)


def test_large_jpeg_is_decoded_in_draft_mode_and_looks_like_a_full_decode(monkeypatch):
    scales = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        before = self.size
        result = original(self, mode, size)
        scales.append(before[0] // self.size[0])
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    data = jpeg(2048, 1536, quality=92)
    result = process_image(data, ImageSpec(resize=parse_resize("shorter:256")))
    assert scales == [4]  # 1536 / 4 = 384 >= 256, 1536 / 8 = 192 < 256
    reference = (
        Image.open(io.BytesIO(data))
        .convert("RGB")
        .resize((result.width, result.height), Image.Resampling.LANCZOS)
    )
    difference = np.abs(decoded(result).astype(int) - np.asarray(reference).astype(int))
    assert difference.mean() < 4


def test_none_keeps_the_original_bytes_of_an_rgb_jpeg():
    data = jpeg(50, 40)
    assert process_image(data, KEEP_SIZE).encoded == data
    png = encode(photo(50, 40), "PNG")
    reencoded = process_image(png, KEEP_SIZE)
    assert reencoded.encoded != png and decoded(reencoded).shape == (40, 50, 3)


@pytest.mark.parametrize(
    "data,reason",
    [
        (b"", records.EMPTY_FILE),
        (b"this is a text file, not an image\n" * 10, records.NOT_AN_IMAGE),
        (jpeg(200, 150)[:1500], records.CORRUPT_IMAGE),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, records.CORRUPT_IMAGE),
    ],
)
def test_bad_bytes_are_rejected_with_a_reason(data, reason):
    for spec in (ImageSpec(), KEEP_SIZE):
        with pytest.raises(ImageRejected) as info:
            process_image(data, spec)
        assert info.value.reason == reason


def _jpeg_declaring(width: int, height: int) -> bytes:
    data = bytearray(jpeg(16, 16))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


@pytest.mark.parametrize("data", [png_bomb(60_000, 60_000), _jpeg_declaring(65_000, 65_000)])
def test_decompression_bombs_are_refused_from_the_header(data):
    tracemalloc.start()
    with pytest.raises(ImageRejected) as info:
        process_image(data, ImageSpec(max_pixels=50_000_000))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert info.value.reason == records.TOO_MANY_PIXELS
    assert peak < 5_000_000  # nothing near 60000^2 pixels was allocated


@pytest.mark.parametrize("text", ["shorter:0", "fixed:10", "biggest:3", "longer:-1", ""])
def test_bad_resize_flags_explain_the_accepted_forms(text):
    with pytest.raises(ValueError, match="shorter:S"):
        parse_resize(text)


def test_spec_validation():
    with pytest.raises(ValueError, match="quality"):
        ImageSpec(quality=0)


def test_shorter_and_longer_have_a_side_and_fixed_a_width_and_height():
    assert parse_resize("shorter:256").side == 256 and parse_resize("longer:300").side == 300
    fixed = parse_resize("fixed:40x30")
    assert (fixed.width, fixed.height) == (40, 30)
    for no_side in (fixed, parse_resize("none")):
        with pytest.raises(ValueError, match="no side length"):
            _ = no_side.side
    assert [str(parse_resize(t)) for t in ("shorter:8", "longer:9", "fixed:4x3", "none")] == [
        "shorter:8",
        "longer:9",
        "fixed:4x3",
        "none",
    ]


def test_the_shard_count_estimate_reads_each_resize_by_its_own_sizes():
    from imgshard.transforms.sharding import estimated_record_bytes

    # ~0.4 bytes per pixel: a 4:3 photo with S as its shorter or its longer side, or W x H
    assert estimated_record_bytes(parse_resize("shorter:300")) == int(300 * 400 * 0.4)
    assert estimated_record_bytes(parse_resize("longer:400")) == int(400 * 300 * 0.4)
    assert estimated_record_bytes(parse_resize("fixed:500x100")) == int(500 * 100 * 0.4)
    assert estimated_record_bytes(parse_resize("none")) == 110_000


def _ico_of_the_wrong_size() -> bytes:
    """An ICO whose directory says 32x32 around a 16x16 PNG: Pillow warns, then decodes it."""
    png = encode(solid("RGB", (16, 16), (200, 10, 10)), "PNG")
    header = struct.pack("<HHH", 0, 1, 1) + struct.pack(
        "<BBBBHHII", 32, 32, 0, 0, 1, 32, len(png), 22
    )
    return header + png


def test_pillows_warnings_are_silenced_and_no_other_warning_is():
    data = _ico_of_the_wrong_size()
    with warnings.catch_warnings(record=True) as caught:
        warnings.resetwarnings()  # no filter of ours either: the call must put it back
        warnings.simplefilter("always")
        result = process_image(data, KEEP_SIZE)
        warnings.warn("not Pillow's", UserWarning, stacklevel=1)
    assert (result.width, result.height) == (16, 16)
    assert [str(w.message) for w in caught] == ["not Pillow's"]


def test_writers_in_threads_leave_the_warning_filters_as_they_were():
    """Several writers in one process (Beam's multi_threading): no thread may leave an
    "ignore everything" filter behind, as per-image catch_warnings() blocks did when their
    exits interleaved."""
    process_image(jpeg(), ImageSpec())  # the one filter of ours is in place from here on
    before = list(warnings.filters)
    images = [jpeg(320, 240, seed=s) for s in range(4)]

    def work(seed: int) -> None:
        for _ in range(150):
            process_image(images[seed], ImageSpec())

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch often: interleavings are tried, not hoped for
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert warnings.filters == before
