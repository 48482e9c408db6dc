"""The trainer's tf.data input: which files, in which order, and how records are mixed.

Order of operations (each matters for mixing or throughput):
  file list -> shard per input pipeline (before reading: each replica reads its own files)
            -> shuffle all file names (buffer = number of files, reshuffled every epoch)
            -> repeat (after the file shuffle, so an epoch boundary never drains the buffer)
            -> interleave TFRecordDatasets (cycle_length files at once, one record each)
            -> shuffle serialized records (cheap: before decoding)
            -> parse + decode + augment in parallel (uint8 out) -> batch -> prefetch
No Beam import here: the trainer must not pay for it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import tensorflow as tf

from imgshard.trainer.errors import TrainError
from imgshard.trainer.preprocessing import eval_image, train_image

__all__ = [
    "InputSettings",
    "ReaderSettings",
    "dataset_files",
    "files_read",
    "image_dataset",
    "parse_record",
    "parse_training_record",
    "record_dataset",
    "sequential_record_dataset",
]


@dataclass(frozen=True)
class ReaderSettings:
    """Attributes:
    cycle_length: files read concurrently by the interleave.
    shuffle_buffer: serialized records held by the record shuffle.
    read_buffer_bytes: read-ahead buffer per open file.
    seed: seeds the file and record shuffles (None: a fresh order each run).
    deterministic: keep element order fixed in parallel stages (reproducible, a bit slower).
    """

    cycle_length: int = 16
    shuffle_buffer: int = 10_000
    read_buffer_bytes: int = 8 * 2**20
    seed: int | None = 0
    deterministic: bool = False

    def __post_init__(self):
        if self.cycle_length < 1:
            raise TrainError(f"--cycle-length must be >= 1, got {self.cycle_length}")
        if self.shuffle_buffer < 1:
            raise TrainError(f"--shuffle-buffer must be >= 1, got {self.shuffle_buffer}")


def dataset_files(data: str, split: str = "train") -> list[str]:
    """Shard paths from `data`: a folder holding dataset.json, or a glob."""
    meta_path = data.rstrip("/") + "/dataset.json"
    if tf.io.gfile.exists(meta_path):
        with tf.io.gfile.GFile(meta_path, "rb") as f:
            meta = json.loads(f.read())
        kind = meta.get("format", "tfrecord")
        if kind != "tfrecord":  # read as TFRecords, the first step would fail: corrupted record
            raise TrainError(
                f'{data} holds {kind} shards (dataset.json "format"); the trainer reads '
                "TFRecord shards: convert again without --format (the default, tfrecord) to "
                "train on them"
            )
        return [data.rstrip("/") + "/" + s["name"] for s in meta["shards"]]
    files = sorted(tf.io.gfile.glob(data))
    if not files:
        raise TrainError(f"no dataset.json in {data} and no file matches it as a glob")
    return files


def record_dataset(
    files: list[str],
    settings: ReaderSettings = ReaderSettings(),
    input_context: tf.distribute.InputContext | None = None,
    repeat: bool = False,
    skip_files: int = 0,
) -> tf.data.Dataset:
    """Serialized records, mixed across files; see the module docstring for the order.

    `skip_files` drops that many names from the start of the (repeated, shuffled) file order:
    a resumed run continues the file order where the killed run had got to, instead of
    replaying epoch 0's order. Skipping names costs nothing; skipping records would read them.
    """
    dataset = tf.data.Dataset.from_tensor_slices(files)
    if input_context is not None and input_context.num_input_pipelines > 1:
        dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    dataset = dataset.shuffle(len(files), seed=settings.seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    if skip_files:
        dataset = dataset.skip(skip_files)
    dataset = dataset.interleave(
        lambda path: tf.data.TFRecordDataset(path, buffer_size=settings.read_buffer_bytes),
        cycle_length=min(settings.cycle_length, len(files)),
        block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=settings.deterministic,
    )
    return dataset.shuffle(settings.shuffle_buffer, seed=settings.seed)


def sequential_record_dataset(
    files: list[str], shuffle_buffer: int, seed: int | None = 0, repeat: bool = False
) -> tf.data.Dataset:
    """The classic reader that badly written shards defeat, kept to measure that failure:
    file names shuffled (string_input_producer(shuffle=True)), files read one after another,
    records through a small shuffle queue. Not used for training."""
    names = tf.data.Dataset.from_tensor_slices(files).shuffle(
        len(files), seed=seed, reshuffle_each_iteration=True
    )
    if repeat:
        names = names.repeat()
    return tf.data.TFRecordDataset(names).shuffle(shuffle_buffer, seed=seed)


@dataclass(frozen=True)
class InputSettings:
    """Attributes:
    image_size: model input side, in pixels.
    batch_size: examples per batch of this input pipeline (per replica under a strategy).
    num_classes: labels are one-hot encoded to this many classes.
    label_offset: subtracted from image/class/label (dataset.json's labels.offset).
    reader: file and record mixing.
    threads: tf.data private thread pool size (0: tf.data's default).
    """

    image_size: int = 224
    batch_size: int = 256
    num_classes: int = 1000
    label_offset: int = 0
    reader: ReaderSettings = ReaderSettings()
    threads: int = 0


_FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/class/label": tf.io.FixedLenFeature([], tf.int64),
}
# ILSVRC object boxes as tf/models' converter writes them: optional, so shards without them
# (or with empty lists) parse too
_BOX_KEYS = ("ymin", "xmin", "ymax", "xmax")
_BOX_FEATURES = {f"image/object/bbox/{key}": tf.io.VarLenFeature(tf.float32) for key in _BOX_KEYS}


def parse_record(record: tf.Tensor, label_offset: int = 0) -> tuple[tf.Tensor, tf.Tensor]:
    """(encoded image bytes, 0-based int32 label) of one serialized Example."""
    features = tf.io.parse_single_example(record, _FEATURES)
    return features["image/encoded"], tf.cast(
        features["image/class/label"] - label_offset, tf.int32
    )


def parse_training_record(
    record: tf.Tensor, label_offset: int = 0
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(encoded image bytes, 0-based int32 label, object boxes [N, 4] as (ymin, xmin, ymax,
    xmax) in [0, 1], N >= 0) of one serialized Example."""
    features = tf.io.parse_single_example(record, {**_FEATURES, **_BOX_FEATURES})
    coordinates = [tf.sparse.to_dense(features[f"image/object/bbox/{key}"]) for key in _BOX_KEYS]
    boxes = tf.stack(coordinates, axis=1)
    label = tf.cast(features["image/class/label"] - label_offset, tf.int32)
    return features["image/encoded"], label, boxes


def image_dataset(
    files: list[str],
    settings: InputSettings,
    training: bool,
    input_context: tf.distribute.InputContext | None = None,
    start_step: int = 0,
    records_per_file: float = 0.0,
    eval_images=None,
) -> tf.data.Dataset:
    """Batches of (uint8 images [B, S, S, 3], one-hot float32 labels [B, C]).

    Training repeats forever with random crops and flips; evaluation reads each record once,
    in file order, with a center crop, and keeps the last partial batch. A training input
    resumed at `start_step` skips the files its earlier steps read (`records_per_file` on
    average) and draws fresh augmentation seeds. `eval_images` (encoded images [B] -> uint8
    images) replaces evaluation's per-record center crop, e.g. by the tf.Transform graph that
    serving runs too (trainer/transform.py).
    """
    classes = settings.num_classes
    if training:
        skip = files_read(start_step, settings.batch_size, input_context, records_per_file)
        records = record_dataset(
            files, settings.reader, input_context, repeat=True, skip_files=skip
        )
        seed = settings.reader.seed
        seeds = tf.data.Dataset.random(
            seed=None if seed is None else seed + start_step * 1_000_003
        ).batch(2)
        examples = tf.data.Dataset.zip((records, seeds)).map(
            lambda record, seed: _train_example(record, seed, settings),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=settings.reader.deterministic,
        )
    else:
        names = tf.data.Dataset.from_tensor_slices(files)
        if input_context is not None and input_context.num_input_pipelines > 1:
            names = names.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        records = tf.data.TFRecordDataset(
            names,
            buffer_size=settings.reader.read_buffer_bytes,
            num_parallel_reads=tf.data.AUTOTUNE,
        )
        if eval_images is None:
            examples = records.map(
                lambda record: _eval_example(record, settings), num_parallel_calls=tf.data.AUTOTUNE
            )
        else:  # a batch of encoded images goes through the graph at once, decoded after
            examples = records.map(
                lambda record: parse_record(record, settings.label_offset),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
    batches = examples.batch(
        settings.batch_size, drop_remainder=training, num_parallel_calls=tf.data.AUTOTUNE
    )
    if eval_images is not None and not training:
        batches = batches.map(
            lambda encoded, labels: (eval_images(encoded), labels),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    batches = batches.map(lambda images, labels: (images, _one_hot(labels, classes)))
    options = tf.data.Options()
    options.autotune.enabled = True
    options.experimental_optimization.map_parallelization = True
    options.deterministic = settings.reader.deterministic or not training
    if settings.threads:
        options.threading.private_threadpool_size = settings.threads
    return batches.with_options(options).prefetch(tf.data.AUTOTUNE)


def _one_hot(labels: tf.Tensor, classes: int) -> tf.Tensor:
    """One-hot labels; a label outside [0, classes) stops the run (tf.one_hot would silently
    make it an all-zero target, e.g. tf/models' 1-based labels read without --label-offset 1)."""
    checks = [
        tf.debugging.assert_non_negative(labels, message="label below the label offset"),
        tf.debugging.assert_less(
            labels, classes, message=f"label >= {classes} classes after the label offset"
        ),
    ]
    with tf.control_dependencies(checks):
        return tf.one_hot(labels, classes)


def files_read(
    steps: int,
    batch_size: int,
    input_context: tf.distribute.InputContext | None,
    records_per_file: float,
) -> int:
    """How many whole files one input pipeline has read after `steps` steps of `batch_size`
    per replica (the records of the files open at that moment are read again)."""
    if not steps or records_per_file <= 0:
        return 0
    replicas = 1
    if input_context is not None:
        replicas = input_context.num_replicas_in_sync // input_context.num_input_pipelines
    return int(steps * batch_size * replicas // records_per_file)


def _train_example(record, seed, settings: InputSettings):
    encoded, label, boxes = parse_training_record(record, settings.label_offset)
    return train_image(encoded, settings.image_size, seed, boxes), label


def _eval_example(record, settings: InputSettings):
    encoded, label = parse_record(record, settings.label_offset)
    return eval_image(encoded, settings.image_size), label
