"""The embedded demo dataset: scikit-learn's 1,797 handwritten digits as JPEG files.

Written as `root/<digit>/<n>.jpg` plus a *class-sorted* `train.txt` (all 0s, then all 1s,
...), which is how ILSVRC2012's train.txt arrives and exactly the input that produces badly
mixed shards when a converter does not shuffle globally. The digits ship inside the
scikit-learn package, so nothing is downloaded.

Beside it, `<root>-boxes/<digit>/<n>.xml`: one Pascal-VOC annotation per image, laid out like
the ILSVRC bbox release, boxing the digit's ink, for `imgshard convert --boxes`. (Not inside
`root`, where a folder input would take it for a class.)
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from PIL import Image

__all__ = ["boxes_folder", "ink_box", "voc_xml", "write_digits"]

# The 8x8 originals are enlarged so that the conversion's resize has something to do.
IMAGE_SIDE = 64
# Cells of the 8x8 original darker than this (of 16) are background, not the digit's ink.
_INK = 4


def boxes_folder(root: str) -> str:
    return root.rstrip("/") + "-boxes"


def ink_box(cells: np.ndarray, side: int) -> tuple[int, int, int, int]:
    """(xmin, ymin, xmax, ymax) in pixels of a side x side image: the cells holding ink."""
    rows = np.flatnonzero((cells > _INK).any(axis=1))
    cols = np.flatnonzero((cells > _INK).any(axis=0))
    scale = side / cells.shape[0]
    return (
        round(cols[0] * scale),
        round(rows[0] * scale),
        round((cols[-1] + 1) * scale),
        round((rows[-1] + 1) * scale),
    )


def voc_xml(name: str, label: str, width: int, height: int, box: tuple[int, ...]) -> str:
    """A Pascal-VOC annotation as the ILSVRC bbox release writes them (one object)."""
    xmin, ymin, xmax, ymax = box
    return (
        f"<annotation><folder>{label}</folder><filename>{name}</filename>"
        f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"
        f"<object><name>{label}</name><bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin>"
        f"<xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object></annotation>\n"
    )


def write_digits(
    root: str, side: int = IMAGE_SIDE, quality: int = 95, per_class: int | None = None
) -> str:
    """Writes the digits under `root` (all, or the first `per_class` of each class) and their
    boxes under boxes_folder(root); returns the path of the class-sorted train.txt."""
    from sklearn.datasets import load_digits  # the data is part of the package

    digits = load_digits()
    order = np.argsort(digits.target, kind="stable")
    if per_class is not None:
        order = np.concatenate([order[digits.target[order] == c][:per_class] for c in range(10)])
    lines = []
    for n, index in enumerate(order):
        label = int(digits.target[index])
        pixels = (digits.images[index] * (255.0 / 16.0)).round().astype(np.uint8)
        image = Image.fromarray(pixels, mode="L").resize((side, side), Image.Resampling.BICUBIC)
        relative = f"{label}/{n:04d}.jpg"
        os.makedirs(os.path.join(root, str(label)), exist_ok=True)
        image.convert("RGB").save(os.path.join(root, relative), quality=quality)
        lines.append(f"{relative} {label}\n")
        box_dir = os.path.join(boxes_folder(root), str(label))
        os.makedirs(box_dir, exist_ok=True)
        with open(os.path.join(box_dir, f"{n:04d}.xml"), "w") as f:
            box = ink_box(digits.images[index], side)
            f.write(voc_xml(f"{n:04d}", str(label), side, side, box))
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
    print(
        f"demo dataset: {count} images in 10 classes, class-sorted list {list_path}, "
        f"boxes in {boxes_folder(args.output)}"
    )
    return 0
