"""The trainer's tf.data input: which files, in which order, and how records are mixed.

Order of operations (each matters for mixing or throughput):
  file list -> shard per input pipeline (before reading: each replica reads its own files)
            -> shuffle all file names (buffer = number of files, reshuffled every epoch)
            -> repeat (after the file shuffle, so an epoch boundary never drains the buffer)
            -> interleave TFRecordDatasets (cycle_length files at once, one record each)
            -> shuffle serialized records (cheap: before decoding)
No Beam import here: the trainer must not pay for it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import tensorflow as tf

__all__ = ["ReaderSettings", "dataset_files", "record_dataset", "sequential_record_dataset"]


@dataclass(frozen=True)
class ReaderSettings:
    """Attributes:
    cycle_length: files read concurrently by the interleave.
    shuffle_buffer: serialized records held by the record shuffle.
    read_buffer_bytes: read-ahead buffer per open file.
    seed: seeds the file and record shuffles (None: a fresh order each run).
    """

    cycle_length: int = 16
    shuffle_buffer: int = 10_000
    read_buffer_bytes: int = 8 * 2**20
    seed: int | None = 0

    def __post_init__(self):
        if self.cycle_length < 1:
            raise ValueError(f"cycle_length must be >= 1, got {self.cycle_length}")
        if self.shuffle_buffer < 1:
            raise ValueError(f"shuffle_buffer must be >= 1, got {self.shuffle_buffer}")


def dataset_files(data: str, split: str = "train") -> list[str]:
    """Shard paths from `data`: a folder holding dataset.json, or a glob."""
    meta_path = data.rstrip("/") + "/dataset.json"
    if tf.io.gfile.exists(meta_path):
        with tf.io.gfile.GFile(meta_path, "rb") as f:
            meta = json.loads(f.read())
        return [data.rstrip("/") + "/" + s["name"] for s in meta["shards"]]
    files = sorted(tf.io.gfile.glob(data))
    if not files:
        raise ValueError(f"no dataset.json in {data} and no file matches it as a glob")
    return files


def record_dataset(
    files: list[str],
    settings: ReaderSettings = ReaderSettings(),
    input_context: tf.distribute.InputContext | None = None,
    repeat: bool = False,
    deterministic: bool = False,
) -> tf.data.Dataset:
    """Serialized records, mixed across files; see the module docstring for the order."""
    dataset = tf.data.Dataset.from_tensor_slices(files)
    if input_context is not None and input_context.num_input_pipelines > 1:
        dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    dataset = dataset.shuffle(len(files), seed=settings.seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.interleave(
        lambda path: tf.data.TFRecordDataset(path, buffer_size=settings.read_buffer_bytes),
        cycle_length=min(settings.cycle_length, len(files)),
        block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
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
