"""`make bench-image`: per-image decode + resize paths, speed against fidelity.

Every candidate turns the same JPEG bytes into the same output size (`--resize shorter:256`,
as the converter plans it); each is timed in CPU seconds of this one process (single-threaded
libraries, so the shared machine's load disturbs it less than wall time), alternately, several
rounds. Fidelity is the median PSNR of each candidate's pixels, before JPEG encoding, against a
reference: a full decode (no DCT scaling) resized with Pillow's Lanczos filter.

  pillow         today's path (transforms/image.py): Pillow draft decode (DCT scaling by
                 1/2, 1/4, 1/8 while still >= the target), bicubic resize, reducing_gap 3
  opencv-gauss   Pillow draft decode; OpenCV Gaussian prefilter (sigma 0.3/scale; a smoothing
                 kernel, so OpenCV computes it in fixed point) + INTER_CUBIC resize
  opencv-bicubic Pillow draft decode; OpenCV prefilter with Pillow's own stretched bicubic
                 kernel (negative lobes: floating point) + INTER_CUBIC resize
  opencv-area    Pillow draft decode; OpenCV INTER_AREA resize
  simplejpeg-dct libjpeg-turbo DCT scaling by M/8 to just above the target (simplejpeg), then
                 Pillow's bicubic resize
  pillow-simd    today's path under pillow-simd (the same algorithm, vectorized), measured in
                 the venv of `make simd-venv` (a subprocess, timed the same way, the rounds
                 alternating with the others); its pixels are scored against this venv's reference
Writes benchmarks/RESULTS-image.md. Needs the bench extra (opencv-python-headless, simplejpeg).
"""

from __future__ import annotations

import argparse
import io
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(__file__))

from corpus import build_corpus  # noqa: E402

BICUBIC = Image.Resampling.BICUBIC
REDUCING_GAP = 3.0  # as transforms/image.py


def target_size(width: int, height: int, side: int = 256) -> tuple[int, int]:
    """shorter:256 without upscaling, as imgshard.transforms.image.plan_resize computes it."""
    scale = side / min(width, height)
    if scale >= 1:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def _draft_decode(data: bytes) -> tuple[Image.Image, tuple[int, int]]:
    image = Image.open(io.BytesIO(data))
    size = target_size(*image.size)
    image.draft("RGB", size)
    image.load()
    return image.convert("RGB"), size


def pillow(data: bytes) -> np.ndarray:
    image, size = _draft_decode(data)
    if image.size != size:
        image = image.resize(size, BICUBIC, reducing_gap=REDUCING_GAP)
    return np.asarray(image)


def _opencv():
    import cv2

    cv2.setNumThreads(1)  # one core per image, as in the converter's workers
    return cv2


def _gauss(scale: float) -> np.ndarray:
    sigma = 0.3 / scale
    x = np.arange(-math.ceil(3 * sigma), math.ceil(3 * sigma) + 1)
    kernel = np.exp(-(x * x) / (2 * sigma * sigma))
    return (kernel / kernel.sum()).astype(np.float32)


def _bicubic_kernel(scale: float, a: float = -0.5) -> np.ndarray:
    x = np.abs(np.arange(-math.ceil(2 / scale), math.ceil(2 / scale) + 1) * scale)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    kernel = np.where(x < 1, near, np.where(x < 2, far, 0.0))
    return (kernel / kernel.sum()).astype(np.float32)


def _prefiltered(data: bytes, kernel) -> np.ndarray:
    cv2 = _opencv()
    image, size = _draft_decode(data)
    pixels = np.asarray(image)
    if image.size == size:
        return pixels
    kx, ky = kernel(size[0] / image.width), kernel(size[1] / image.height)
    smooth = cv2.sepFilter2D(pixels, -1, kx, ky, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(smooth, size, interpolation=cv2.INTER_CUBIC)


def opencv_gauss(data: bytes) -> np.ndarray:
    return _prefiltered(data, _gauss)


def opencv_bicubic(data: bytes) -> np.ndarray:
    return _prefiltered(data, _bicubic_kernel)


def opencv_area(data: bytes) -> np.ndarray:
    cv2 = _opencv()
    image, size = _draft_decode(data)
    pixels = np.asarray(image)
    return pixels if image.size == size else cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)


def simplejpeg_dct(data: bytes) -> np.ndarray:
    import simplejpeg

    height, width, _, _ = simplejpeg.decode_jpeg_header(data)
    size = target_size(width, height)
    pixels = simplejpeg.decode_jpeg(data, colorspace="RGB", min_width=size[0], min_height=size[1])
    image = Image.fromarray(pixels)
    if image.size != size:
        image = image.resize(size, BICUBIC, reducing_gap=REDUCING_GAP)
    return np.asarray(image)


CANDIDATES = {
    "pillow": pillow,
    "opencv-gauss": opencv_gauss,
    "opencv-bicubic": opencv_bicubic,
    "opencv-area": opencv_area,
    "simplejpeg-dct": simplejpeg_dct,
}


def reference(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    return np.asarray(image.resize(target_size(*image.size), Image.Resampling.LANCZOS))


def psnr(pixels: np.ndarray, ref: np.ndarray) -> float:
    mse = float(np.mean((pixels.astype(np.float64) - ref.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * math.log10(255**2 / mse)


def encode_ms(images: list[np.ndarray]) -> float:
    started = time.process_time()
    for pixels in images:
        Image.fromarray(pixels).save(io.BytesIO(), format="JPEG", quality=90)
    return (time.process_time() - started) / len(images) * 1000


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIMD_PYTHON = os.path.join(ROOT, ".venv-simd", "bin", "python")


def _pillow_ms(corpus: list[bytes]) -> float:
    started = time.process_time()
    for data in corpus:
        pillow(data)
    return (time.process_time() - started) / len(corpus) * 1000


def _simd(work: str, *args: str) -> str:
    """Runs this script's --as-simd-worker mode under SIMD_PYTHON; returns its stdout."""
    return subprocess.run(
        [SIMD_PYTHON, os.path.abspath(__file__), "--work", work, "--as-simd-worker", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def _simd_worker(corpus: list[bytes], task: str, work: str) -> None:
    """In the pillow-simd venv: `pixels` saves the pillow path's output, `time` prints the
    CPU ms of one round of it, `encode` the encode's."""
    if task == "pixels":
        np.savez(os.path.join(work, "simd-pixels.npz"), *[pillow(d) for d in corpus])
    elif task == "time":
        print(_pillow_ms(corpus))
    else:
        print(encode_ms([pillow(d) for d in corpus]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--as-simd-worker", choices=["pixels", "time", "encode"], help=argparse.SUPPRESS
    )
    parser.add_argument("--images", type=int, default=400, help="corpus size")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", nargs="*", default=list(CANDIDATES), choices=list(CANDIDATES))
    parser.add_argument(
        "--work", default=os.path.join(tempfile.gettempdir(), "imgshard-bench-image")
    )
    parser.add_argument(
        "--results", default=os.path.join(os.path.dirname(__file__), "RESULTS-image.md")
    )
    args = parser.parse_args(argv)

    list_path = os.path.join(args.work, "train.txt")
    if not os.path.exists(list_path):
        build_corpus(args.work, args.images)
    with open(list_path) as f:
        paths = [os.path.join(args.work, line.split()[0]) for line in f]
    corpus = []
    for path in paths:
        with open(path, "rb") as f:
            corpus.append(f.read())
    if args.as_simd_worker:
        _simd_worker(corpus, args.as_simd_worker, args.work)
        return 0
    candidates = {name: CANDIDATES[name] for name in args.only}
    simd = os.path.exists(os.path.join(ROOT, ".venv-simd", ".installed"))  # make simd-venv

    refs = [reference(data) for data in corpus]
    fidelity = {
        name: statistics.median(psnr(fn(data), ref) for data, ref in zip(corpus, refs, strict=True))
        for name, fn in candidates.items()
    }
    if simd:
        _simd(args.work, "pixels")
        with np.load(os.path.join(args.work, "simd-pixels.npz")) as saved:
            pixels = [saved[f"arr_{i}"] for i in range(len(corpus))]
        fidelity["pillow-simd"] = statistics.median(
            psnr(p, ref) for p, ref in zip(pixels, refs, strict=True)
        )
    rounds: dict[str, list[float]] = {name: [] for name in fidelity}
    for _ in range(args.rounds):
        for name, fn in candidates.items():
            started = time.process_time()
            for data in corpus:
                fn(data)
            rounds[name].append((time.process_time() - started) / len(corpus) * 1000)
        if simd:
            rounds["pillow-simd"].append(float(_simd(args.work, "time")))
    encode = encode_ms([pillow(data) for data in corpus])
    encodes = {name: encode for name in rounds}
    if simd:
        encodes["pillow-simd"] = float(_simd(args.work, "encode"))
    base = statistics.median(rounds["pillow"]) + encode if "pillow" in rounds else None

    import PIL

    lines = [
        "# Per-image decode + resize paths (`make bench-image`)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, Pillow {PIL.__version__}; {len(corpus)} corpus photos "
        f"(`benchmarks/corpus.py`), `shorter:256`; CPU ms per image, {args.rounds} alternating "
        "rounds; PSNR before encoding against a full decode + Lanczos resize.",
        "",
        "| path | median PSNR dB | decode+resize CPU ms (median) | rounds "
        "| with encode, speed vs pillow |",
        "|---|---|---|---|---|",
    ]
    for name in rounds:
        median = statistics.median(rounds[name])
        speed = f"{base / (median + encodes[name]):.2f}x" if base else "-"
        per_round = ", ".join(f"{x:.2f}" for x in rounds[name])
        lines.append(f"| {name} | {fidelity[name]:.2f} | {median:.2f} | {per_round} | {speed} |")
    lines += [
        "",
        f"JPEG q90 encode of the output: {encode:.2f} CPU ms per image with Pillow"
        + (f", {encodes['pillow-simd']:.2f} with pillow-simd." if simd else "."),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    with open(args.results, "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
