"""What the trainer knows about its data: record count, classes, validation shards.

imgshard's shards carry it in `dataset.json`. Shards written by other tools (tf/models'
`build_imagenet_data.py`, TFDS exports; the ImageNet schema: `image/encoded`,
`image/class/label`) come as a glob: the classes are then given by flag and the records are
counted once (one read of the framing, cached in the model dir) unless --num-examples says.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field

import tensorflow as tf

from imgshard.trainer.errors import TrainError
from imgshard.trainer.input_pipeline import dataset_files

__all__ = ["DataInfo", "count_records", "data_info", "validation_source"]


@dataclass(frozen=True)
class DataInfo:
    """Attributes:
    files: the shards.
    records: how many records they hold.
    num_classes, label_offset: labels run from label_offset to label_offset + num_classes - 1.
    names: class names by label id (may be empty).
    transform_fn: the tf.Transform output named in dataset.json, or None.
    """

    files: list[str]
    records: int
    num_classes: int
    label_offset: int = 0
    names: list[str] = field(default_factory=list)
    transform_fn: str | None = None


def _metadata(data: str) -> dict | None:
    path = data.rstrip("/") + "/dataset.json"
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "rb") as f:
        return json.loads(f.read())


def data_info(
    data: str,
    num_classes: int = 0,
    label_offset: int = 0,
    num_examples: int = 0,
    cache_dir: str | None = None,
) -> DataInfo:
    """From dataset.json when `data` is imgshard's folder; else `data` is a glob of foreign
    shards, `num_classes` is required and the records are `num_examples` or counted."""
    files = dataset_files(data)
    meta = _metadata(data)
    if meta is not None:
        labels = meta["labels"]
        transform = meta.get("transform_fn")
        return DataInfo(
            files,
            meta["num_records"],
            labels["num_classes"],
            labels["offset"],
            labels.get("names", []),
            data.rstrip("/") + "/" + transform if transform else None,
        )
    if num_classes < 1:
        raise TrainError(
            f"{data} has no dataset.json (not imgshard's shards): pass --num-classes (and "
            "--label-offset 1 for tf/models' ImageNet shards, whose labels run 1-1000)"
        )
    records = num_examples or count_records(files, cache_dir)
    return DataInfo(files, records, num_classes, label_offset)


def count_records(files: list[str], cache_dir: str | None = None) -> int:
    """Counts the records of `files` (reads their framing once); the count is kept in
    `cache_dir`/num_examples-{hash of the file list}.json."""
    digest = hashlib.sha256("\n".join(files).encode()).hexdigest()[:16]
    cache = f"{cache_dir.rstrip('/')}/num_examples-{digest}.json" if cache_dir else None
    if cache and tf.io.gfile.exists(cache):
        with tf.io.gfile.GFile(cache) as f:
            return int(json.loads(f.read())["records"])
    dataset = tf.data.TFRecordDataset(files, num_parallel_reads=min(16, len(files)))
    records = int(dataset.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))
    if records == 0:
        raise TrainError(f"the {len(files)} files hold no records")
    if cache:
        tf.io.gfile.makedirs(cache_dir)
        tmp = f"{cache}.tmp-{os.getpid()}"  # every worker counts; each renames its own file
        with tf.io.gfile.GFile(tmp, "w") as f:
            f.write(json.dumps({"files": files, "records": records}))
        tf.io.gfile.rename(tmp, cache, overwrite=True)
    return records


def validation_source(data: str, val_data: str) -> str | None:
    """The validation shards for `--val-data` (`auto`, `none` or a folder/glob).

    auto: imgshard writes one split per folder, so beside `.../train` it looks for
    `.../validation` (with its dataset.json); for a glob of foreign shards `.../train-*` it
    looks for `.../validation-*` in the same folder (tf/models' layout). None if not there.
    """
    if val_data == "none":
        return None
    if val_data != "auto":
        return val_data
    stripped = data.rstrip("/")
    parent, _, name = stripped.rpartition("/")
    if _metadata(stripped) is not None:
        candidate = f"{parent}/validation" if name == "train" and parent else None
        return candidate if candidate and _metadata(candidate) is not None else None
    if name.startswith("train-"):
        candidate = f"{parent}/validation-{name[len('train-') :]}"
        return candidate if tf.io.gfile.glob(candidate) else None
    return None
