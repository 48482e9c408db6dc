"""The embedded demo dataset: scikit-learn's 1,797 handwritten digits as JPEG files.

Written as `root/<digit>/<n>.jpg` plus a *class-sorted* `train.txt` (all 0s, then all 1s,
...), which is how ILSVRC2012's train.txt arrives and exactly the input that produces badly
mixed shards when a converter does not shuffle globally. The digits ship inside the
scikit-learn package, so nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from PIL import Image

__all__ = ["write_digits"]

# The 8x8 originals are enlarged so that the conversion's resize has something to do.
IMAGE_SIDE = 64


def write_digits(root: str, side: int = IMAGE_SIDE, quality: int = 95) -> str:
    """Writes the digits under `root` and returns the path of the class-sorted train.txt."""
    from sklearn.datasets import load_digits  # the data is part of the package

    digits = load_digits()
    order = np.argsort(digits.target, kind="stable")
    lines = []
    for n, index in enumerate(order):
        label = int(digits.target[index])
        pixels = (digits.images[index] * (255.0 / 16.0)).round().astype(np.uint8)
        image = Image.fromarray(pixels, mode="L").resize((side, side), Image.Resampling.BICUBIC)
        relative = f"{label}/{n:04d}.jpg"
        os.makedirs(os.path.join(root, str(label)), exist_ok=True)
        image.convert("RGB").save(os.path.join(root, relative), quality=quality)
        lines.append(f"{relative} {label}\n")
    list_path = os.path.join(root, "train.txt")
    with open(list_path, "w") as f:
        f.writelines(lines)
    return list_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imgshard demo-data", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--output", default="data/demo", help="folder to write (default: data/demo)"
    )
    args = parser.parse_args(argv)
    list_path = write_digits(args.output)
    with open(list_path) as f:
        count = sum(1 for _ in f)
    print(f"demo dataset: {count} images in 10 classes, class-sorted list {list_path}")
    return 0
