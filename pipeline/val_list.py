"""`imgshard val-list`: the ILSVRC2012 validation folder as downloaded -> a `path synset` list
that `imgshard convert --labels TRAIN/labels.txt` turns into validation shards with the train
split's class ids.

    imgshard val-list --images val/ --ground-truth LOC_val_solution.csv \\
        --train-labels out/imagenet/train --output val.txt

The list is written whole or not at all, one `ILSVRC2012_val_00000001.JPEG n01751748` line
per image in file-name order, paths relative to --images (convert's --image-root). Nothing is
written when a label source, an image or a class does not match (transforms/val_labels.py).
"""

from __future__ import annotations

import argparse
import collections
import sys

from imgshard.transforms.storage import atomic_output
from imgshard.transforms.val_labels import (
    ValLabelsError,
    check_vocabulary,
    image_ids,
    match_images,
    read_val_labels,
    train_vocabulary,
)

__all__ = ["main", "val_list"]


def val_list(
    images: str,
    ground_truth: str,
    train_labels: str,
    output: str,
    meta: str | None = None,
    allow_missing_classes: bool = False,
) -> list[tuple[str, str]]:
    """Writes the list; returns its (file name, synset) rows. Raises ValLabelsError."""
    vocabulary = train_vocabulary(train_labels)
    labels = read_val_labels(ground_truth, meta)
    rows = match_images(image_ids(images), labels)
    check_vocabulary(labels, vocabulary, allow_missing_classes)
    with atomic_output(output) as f:
        f.write("".join(f"{name} {synset}\n" for name, synset in rows).encode("utf-8"))
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="imgshard val-list", description=__doc__.split("\n")[0], allow_abbrev=False
    )
    parser.add_argument(
        "--images", required=True, help="the flat folder of ILSVRC2012_val_*.JPEG images"
    )
    parser.add_argument(
        "--ground-truth",
        required=True,
        help="Kaggle's LOC_val_solution.csv, the folder of validation bounding-box XML files, "
        "or the devkit's ILSVRC2012_validation_ground_truth.txt (with --meta)",
    )
    parser.add_argument(
        "--meta",
        default=None,
        help="the devkit's data/meta.mat: maps the ground truth's ids (meta.mat order) to synsets",
    )
    parser.add_argument(
        "--train-labels",
        required=True,
        help="the train output folder or its labels.txt: the class ids to share",
    )
    parser.add_argument("--output", required=True, help="the list to write (local or gs://)")
    parser.add_argument(
        "--allow-missing-classes",
        action="store_true",
        help="accept train classes that no validation image has (refused by default)",
    )
    args = parser.parse_args(argv)
    try:
        rows = val_list(
            args.images,
            args.ground_truth,
            args.train_labels,
            args.output,
            args.meta,
            args.allow_missing_classes,
        )
    except ValLabelsError as e:
        print(f"imgshard val-list: error: {e}", file=sys.stderr)
        return 2
    per_class = collections.Counter(synset for _, synset in rows)
    labels = args.train_labels
    if not labels.endswith(".txt"):
        labels = labels.rstrip("/") + "/labels.txt"
    print(
        f"imgshard val-list: {len(rows):,} images of {len(per_class):,} classes "
        f"({min(per_class.values())}-{max(per_class.values())} each) -> {args.output}\n"
        f"next: imgshard convert --input {args.output} --image-root {args.images} "
        f"--labels {labels} --split validation --output OUT/validation"
    )
    return 0
