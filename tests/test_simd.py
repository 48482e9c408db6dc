"""pillow-simd (make install-simd, deploy/Dockerfile --build-arg PILLOW=...) through the
very same transforms/image.py: the same sizes and channels, pixels within JPEG noise of
Pillow's, and bytes that are the same on every run of one build.

Runs in the small venv `make simd-venv` builds (make test builds it where it can: AVX2, a C
compiler, libjpeg and zlib headers); skipped without it.
"""

import io
import json
import os
import subprocess

import numpy as np
import pytest
from PIL import Image

from helpers import encode, jpeg, photo
from imgshard.transforms.image import ImageSpec, image_library, parse_resize, process_image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIMD_VENV = os.path.join(ROOT, os.environ.get("SIMD_VENV", ".venv-simd"))
SIMD_PYTHON = os.path.join(SIMD_VENV, "bin", "python")

pytestmark = pytest.mark.skipif(  # the stamp: a half-built venv does not count
    not os.path.exists(os.path.join(SIMD_VENV, ".installed")),
    reason="no pillow-simd venv: make simd-venv builds it",
)

RESIZES = ("shorter:256", "fixed:224x224")

# Writes process_image's output for every (file, spec) in argv[1] (JSON) to argv[2].
_RUN = """
import json, sys
from imgshard.transforms.image import ImageSpec, image_library, parse_resize, process_image
jobs = json.load(open(sys.argv[1]))
out = {"library": image_library(), "images": {}}
for name, path, resize in jobs:
    spec = ImageSpec(resize=parse_resize(resize))
    result = process_image(open(path, "rb").read(), spec)
    out["images"][name] = [result.encoded.hex(), result.width, result.height, result.channels]
json.dump(out, open(sys.argv[2], "w"))
"""


def _sources() -> dict[str, bytes]:
    with_orientation = Image.Exif()
    with_orientation[0x0112] = 6
    rgba = photo(300, 200, seed=3).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((300, 200)))
    return {
        "photo.jpg": jpeg(500, 375, seed=1),
        "large.jpg": jpeg(1600, 1200, seed=2),  # draft-decoded at 1/2, then resized
        "rotated.jpg": jpeg(640, 480, seed=4, exif=with_orientation),
        "cmyk.jpg": encode(photo(400, 300, seed=5).convert("CMYK"), "JPEG", quality=90),
        "gray.jpg": encode(photo(400, 300, seed=6).convert("L"), "JPEG", quality=90),
        "alpha.png": encode(rgba, "PNG"),
    }


def _run_simd(jobs_file: str, out_file: str) -> dict:
    subprocess.run([SIMD_PYTHON, "-c", _RUN, jobs_file, out_file], check=True, cwd=ROOT)
    with open(out_file) as f:
        return json.load(f)


def _psnr(a: bytes, b: bytes) -> float:
    x, y = (np.asarray(Image.open(io.BytesIO(d)).convert("RGB"), np.float64) for d in (a, b))
    mse = np.mean((x - y) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def test_pillow_simd_writes_what_pillow_writes_within_jpeg_noise_and_the_same_bytes_every_run(
    tmp_path,
):
    jobs = []
    for name, data in _sources().items():
        path = tmp_path / name
        path.write_bytes(data)
        jobs += [(f"{name} {resize}", str(path), resize) for resize in RESIZES]
    jobs_file = tmp_path / "jobs.json"
    jobs_file.write_text(json.dumps(jobs))

    first = _run_simd(str(jobs_file), str(tmp_path / "first.json"))
    again = _run_simd(str(jobs_file), str(tmp_path / "again.json"))
    assert first["library"].startswith("pillow-simd ")
    assert image_library().startswith("Pillow ")  # this venv: the comparison is real
    assert again["images"] == first["images"]  # deterministic for one build

    differ = 0
    for name, path, resize in jobs:
        with open(path, "rb") as f:
            ours = process_image(f.read(), ImageSpec(resize=parse_resize(resize)))
        encoded, w, h, channels = first["images"][name]
        simd = bytes.fromhex(encoded)
        assert (w, h, channels) == (ours.width, ours.height, ours.channels), name
        differ += simd != ours.encoded
        # Same algorithm, vectorized: pixels differ by rounding, far below JPEG q90's own loss
        assert _psnr(simd, ours.encoded) > 40, name
    assert differ  # other bytes than Pillow's: why the build is part of a run's identity
