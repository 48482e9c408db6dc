"""Decode, normalize and resize one image; encode it as a JPEG record payload.

The format is taken from the bytes, never from the file name (ImageNet has PNGs and CMYK
JPEGs named `.JPEG`). For JPEG sources the decoder is asked for a DCT-domain downscale
(`Image.draft`) to the smallest 1/2, 1/4 or 1/8 scale that is still at least the target
size, so a 2048-px photo headed for 256 px is never decoded in full; the exact size is then
reached with a bicubic resize whose `reducing_gap` lets Pillow pre-shrink with a box filter.
"""

from __future__ import annotations

import functools
import io
import math
import re
import warnings
from dataclasses import dataclass
from typing import NamedTuple

from PIL import Image, ImageOps, UnidentifiedImageError

from imgshard.transforms import records

__all__ = [
    "image_library",
    "ImageRejected",
    "ImageSpec",
    "ProcessedImage",
    "ResizeSpec",
    "parse_resize",
    "plan_resize",
    "process_image",
]

# Pillow refuses images over 2 * MAX_IMAGE_PIXELS in open() and only warns above it; we
# apply our own, explicit limit (ImageSpec.max_pixels) from the header alone instead.
Image.MAX_IMAGE_PIXELS = None

_EXIF_ORIENTATION = 0x0112
_TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}  # those that swap width and height
# Magic numbers of the formats we decode: such a file that Pillow cannot open is corrupt,
# anything else is not an image at all.
_IMAGE_SIGNATURES = (
    b"\xff\xd8\xff",
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"RIFF",
    b"II*\x00",
    b"MM\x00*",
)
_RESAMPLE = Image.Resampling.BICUBIC
# Pillow first shrinks by an integer factor with a box filter while the image stays at least
# this many times the target, then resamples: much faster, and visually the same result.
_REDUCING_GAP = 3.0


class ImageRejected(Exception):
    """The bytes cannot become a record; `reason` is one of `records.REASONS`."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class ResizeSpec(NamedTuple):
    """How to size the output: `shorter:S`, `longer:S`, `fixed:WxH` or `none`.

    `width` and `height` are the size of `fixed:`; read S of `shorter:`/`longer:` as `side`
    (parse_resize stores it in both).
    """

    mode: str
    width: int = 0
    height: int = 0

    @property
    def side(self) -> int:
        """S of `shorter:S` or `longer:S`."""
        if self.mode not in ("shorter", "longer"):
            raise ValueError(f"--resize {self} has no side length S; it is not shorter:/longer:")
        return self.width

    def __str__(self) -> str:
        if self.mode == "none":
            return "none"
        if self.mode == "fixed":
            return f"fixed:{self.width}x{self.height}"
        return f"{self.mode}:{self.side}"


def parse_resize(text: str) -> ResizeSpec:
    """Parses a `--resize` value; raises ValueError with the accepted forms."""
    text = text.strip().lower()
    if text == "none":
        return ResizeSpec("none")
    if m := re.fullmatch(r"(shorter|longer):(\d+)", text):
        side = int(m.group(2))
        if side > 0:
            return ResizeSpec(m.group(1), side, side)
    if m := re.fullmatch(r"fixed:(\d+)x(\d+)", text):
        width, height = int(m.group(1)), int(m.group(2))
        if width > 0 and height > 0:
            return ResizeSpec("fixed", width, height)
    raise ValueError(
        f"--resize {text!r} is not understood; use shorter:S, longer:S, fixed:WxH or none "
        "(S, W, H positive integers), e.g. shorter:256"
    )


@dataclass(frozen=True)
class ImageSpec:
    """What every record's image should look like.

    Attributes:
      resize: the output size rule.
      quality: JPEG quality (1-95) of re-encoded images.
      allow_upscale: let shorter/longer grow images smaller than the target (fixed always
        produces exactly WxH, since an exact size is what was asked for).
      keep_grayscale: write grayscale sources as 1-channel JPEGs instead of RGB.
      background: RGB color that transparent pixels are composited onto.
      max_pixels: width*height above which an image is rejected from its header alone.
    """

    resize: ResizeSpec = ResizeSpec("shorter", 256, 256)
    quality: int = 90
    allow_upscale: bool = False
    keep_grayscale: bool = False
    background: tuple[int, int, int] = (255, 255, 255)
    max_pixels: int = 100_000_000

    def __post_init__(self):
        if not 1 <= self.quality <= 95:
            raise ValueError(
                f"--quality must be in 1..95 (Pillow's useful range), got {self.quality}"
            )
        if self.max_pixels < 1:
            raise ValueError(f"--max-pixels must be positive, got {self.max_pixels}")


class ProcessedImage(NamedTuple):
    encoded: bytes
    width: int
    height: int
    channels: int
    source_format: str  # what the input bytes were, e.g. "JPEG", "PNG"
    # The geometry applied to the stored pixels, which bounding boxes must follow:
    orientation: int = 1  # the EXIF orientation undone (1: none)
    crop: tuple[float, float, float, float] | None = None  # kept part, normalized (fixed:)


def plan_resize(
    width: int, height: int, spec: ResizeSpec, allow_upscale: bool
) -> tuple[tuple[int, int], tuple[float, float, float, float] | None]:
    """Returns the output (width, height) and, for fixed sizes, the source crop box."""
    if spec.mode == "none":
        return (width, height), None
    if spec.mode == "fixed":
        scale = max(spec.width / width, spec.height / height)
        crop_w, crop_h = spec.width / scale, spec.height / scale
        left, top = (width - crop_w) / 2, (height - crop_h) / 2
        return (spec.width, spec.height), (left, top, left + crop_w, top + crop_h)
    side = min(width, height) if spec.mode == "shorter" else max(width, height)
    scale = spec.side / side
    if scale >= 1 and not allow_upscale:
        return (width, height), None
    return (max(1, round(width * scale)), max(1, round(height * scale))), None


@functools.cache  # ~45 ms the first time: the installed distributions are looked up
def image_library() -> str:
    """The build that decodes, resizes and encodes, e.g. "Pillow 12.3.0, libjpeg-turbo 3.1.4.1".

    Pixels, hence the output's bytes, differ between builds: two Pillow releases, or
    pillow-simd, whose vectorized resampling rounds differently (`make install-simd`). Same
    inputs, seed and build give the same bytes; a run is only resumed by the same build.
    """
    import importlib.metadata

    from PIL import __version__, features

    try:  # PIL's own version tells which files are in place if both were ever installed
        simd = importlib.metadata.version("pillow-simd") == __version__
    except importlib.metadata.PackageNotFoundError:
        simd = False
    build = f"pillow-simd {__version__}" if simd else f"Pillow {__version__}"
    jpeg = features.version_feature("libjpeg_turbo")
    return (
        f"{build}, libjpeg-turbo {jpeg}" if jpeg else f"{build}, libjpeg {features.version('jpg')}"
    )


# Pillow's own warnings ("Corrupt EXIF data", "Image was not the expected size") are ignored:
# an image is judged by decoding it. A process-wide filter on warnings raised inside PIL, put
# back whenever something restored the filters (pytest does, per test), rather than
# warnings.catch_warnings() around every image: that is not thread-safe (Beam's
# multi_threading mode runs several writers in a process, and one thread's exit restores the
# filters another thread is inside of) and it rebuilds the filter list for every image, ~2%
# of a Beam worker's time (py-spy), whose filter list is long.
_PILLOW_MODULES = r"PIL(\.|$)"
_PILLOW_FILTER = ("ignore", None, Warning, re.compile(_PILLOW_MODULES), 0)


def _silence_pillow_warnings() -> None:
    if _PILLOW_FILTER not in warnings.filters:
        warnings.filterwarnings("ignore", module=_PILLOW_MODULES)


def process_image(data: bytes, spec: ImageSpec) -> ProcessedImage:
    """Turns the bytes of any image file into a record's JPEG payload.

    Raises:
      ImageRejected: the bytes are empty, not an image, corrupt or too large.
    """
    if not data:
        raise ImageRejected(records.EMPTY_FILE, "the file is empty (0 bytes)")
    _silence_pillow_warnings()
    try:
        return _process(data, spec)
    except ImageRejected:
        raise
    except UnidentifiedImageError:
        if data.startswith(_IMAGE_SIGNATURES):
            raise ImageRejected(
                records.CORRUPT_IMAGE, "has an image signature but its header cannot be read"
            ) from None
        raise ImageRejected(
            records.NOT_AN_IMAGE, "no image format recognizes these bytes"
        ) from None
    except MemoryError:
        raise ImageRejected(records.TOO_MANY_PIXELS, "decoding ran out of memory") from None
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError, struct.error ...
        raise ImageRejected(records.CORRUPT_IMAGE, f"{type(e).__name__}: {e}") from None


def _process(data: bytes, spec: ImageSpec) -> ProcessedImage:
    img = Image.open(io.BytesIO(data))
    source_format = img.format or "unknown"
    width, height = img.size
    if width < 1 or height < 1:
        raise ImageRejected(records.CORRUPT_IMAGE, f"declares a {width}x{height} size")
    if width * height > spec.max_pixels:
        raise ImageRejected(
            records.TOO_MANY_PIXELS,
            f"{width}x{height} = {width * height:,} pixels > --max-pixels {spec.max_pixels:,}",
        )
    orientation = _orientation(img)
    transposed = orientation in _TRANSPOSING_ORIENTATIONS
    shown_w, shown_h = (height, width) if transposed else (width, height)
    out_size, crop = plan_resize(shown_w, shown_h, spec.resize, spec.allow_upscale)

    if _keeps_original_bytes(img, spec, orientation):
        _verify_decodes(img)
        return ProcessedImage(data, width, height, 3, source_format)

    if source_format == "JPEG":
        draft_w, draft_h = out_size
        if crop is not None:  # the crop is what must keep at least out_size pixels
            draft_w = math.ceil(out_size[0] * shown_w / (crop[2] - crop[0]))
            draft_h = math.ceil(out_size[1] * shown_h / (crop[3] - crop[1]))
        if transposed:
            draft_w, draft_h = draft_h, draft_w
        img.draft(img.mode, (draft_w, draft_h))
    img.load()  # decodes the first frame of multi-frame files; raises on truncated data

    img = ImageOps.exif_transpose(img) if orientation != 1 else img
    img = _to_output_mode(img, spec)
    if crop is not None or img.size != out_size:
        box = None
        if crop is not None:  # the crop box was computed at full size; draft may have shrunk
            sx, sy = img.width / shown_w, img.height / shown_h
            box = (crop[0] * sx, crop[1] * sy, crop[2] * sx, crop[3] * sy)
        img = img.resize(out_size, _RESAMPLE, box=box, reducing_gap=_REDUCING_GAP)

    out = io.BytesIO()
    img.save(out, format="JPEG", quality=spec.quality)
    kept = None
    if crop is not None:
        kept = (crop[0] / shown_w, crop[1] / shown_h, crop[2] / shown_w, crop[3] / shown_h)
    return ProcessedImage(
        out.getvalue(),
        img.width,
        img.height,
        len(img.getbands()),
        source_format,
        orientation,
        kept,
    )


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # unreadable EXIF: show the pixels as stored
        return 1
    return value if value in range(1, 9) else 1


def _keeps_original_bytes(img: Image.Image, spec: ImageSpec, orientation: int) -> bool:
    # A decoder that ignores EXIF (tf.io.decode_jpeg does) must see the same pixels we record.
    return (
        spec.resize.mode == "none"
        and img.format == "JPEG"
        and img.mode == "RGB"
        and orientation == 1
        and getattr(img, "n_frames", 1) == 1
    )


def _verify_decodes(img: Image.Image) -> None:
    """Decodes the entropy-coded data at 1/8 scale: cheap, and catches truncation."""
    img.draft(img.mode, (max(1, img.width // 8), max(1, img.height // 8)))
    img.load()


def _to_output_mode(img: Image.Image, spec: ImageSpec) -> Image.Image:
    """Any mode (CMYK, palette, alpha, 16-bit, ...) -> "RGB", or "L" with keep_grayscale."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit samples: scale to 8 bits (a plain convert("L") would clip at 255)
        img = img.convert("I").point(lambda v: v * (1 / 256)).convert("L")
        mode = "L"
    elif mode == "F":
        img = img.convert("L")
        mode = "L"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*spec.background, 255))
        img = Image.alpha_composite(background, rgba)
        grayscale = mode in ("LA", "La") or (mode == "L")
        if grayscale and spec.keep_grayscale:
            return img.convert("L")
        return img.convert("RGB")
    if mode in ("L", "1") and spec.keep_grayscale:
        return img.convert("L")
    return img if mode == "RGB" else img.convert("RGB")
