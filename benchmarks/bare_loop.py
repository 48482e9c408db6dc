"""The bare per-image loop that `imgshard convert` is measured against: read + process_image
(draft decode, resize, JPEG encode) for every listed image in a pool of one process per core,
writing nothing. Timed from outside, start-up included, as a user's own script would be.

Usage: python benchmarks/bare_loop.py LIST IMAGE_ROOT [--resize shorter:256]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os

_SPEC = None


def _init(resize: str) -> None:
    global _SPEC
    from imgshard.transforms.image import ImageSpec, ResizeSpec

    mode, _, size = resize.partition(":")
    _SPEC = ImageSpec(resize=ResizeSpec(mode, int(size)))


def _one(path: str) -> int:
    from imgshard.transforms.image import process_image

    with open(path, "rb") as f:
        return len(process_image(f.read(), _SPEC).encoded)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("list")
    parser.add_argument("image_root")
    parser.add_argument("--resize", default="shorter:256")
    args = parser.parse_args()
    with open(args.list) as f:
        paths = [os.path.join(args.image_root, line.split()[0]) for line in f if line.strip()]
    with multiprocessing.Pool(os.cpu_count(), _init, (args.resize,)) as pool:
        encoded = sum(pool.imap_unordered(_one, paths, chunksize=16))
    print(f"{len(paths)} images, {encoded} bytes encoded")


if __name__ == "__main__":
    main()
