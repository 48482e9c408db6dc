"""The audit's reader views, computed from the scanned labels: element for element the order
tf.data yields on the same seed, and available wherever the scan can read (gs:// included)."""

import random
import subprocess
import sys

import pytest
from apache_beam.io.filesystems import FileSystems

from imgshard.audit import audit, default_readers
from imgshard.audit.reader_simulation import reader_order, shuffled
from imgshard.transforms.example import encode_example
from imgshard.transforms.tfrecord import TFRecordWriter

READERS = default_readers(cycle_length=4, shuffle_buffer=256, sequential_buffer=0)
LABEL = "image/class/label"
SIZES = [5, 9, 1, 13, 7, 0, 8, 11, 30]  # an empty shard and a single-record one included


def write_shards(folder: str, labels: list[list[int]]) -> list[str]:
    paths = []
    for shard, shard_labels in enumerate(labels):
        path = FileSystems.join(folder, f"train-{shard:05d}-of-{len(labels):05d}")
        with FileSystems.create(path) as f:
            writer = TFRecordWriter(f)
            for label in shard_labels:
                writer.write(encode_example({LABEL: label}))
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def numbered_shards(tmp_path_factory):
    """Every record's label is its own number, so an order is a permutation to compare."""
    labels, n = [], 0
    for size in SIZES:
        labels.append(list(range(n, n + size)))
        n += size
    return write_shards(str(tmp_path_factory.mktemp("numbered")), labels), labels


def tf_order(dataset, limit):
    import tensorflow as tf

    spec = {LABEL: tf.io.FixedLenFeature([], tf.int64)}
    parsed = dataset.take(limit).map(lambda r: tf.io.parse_single_example(r, spec)[LABEL])
    return [int(x) for x in parsed.as_numpy_iterator()]


@pytest.fixture()
def tf_global_seed():
    """Sets TensorFlow's global seed for one test and clears it after (an earlier test in the
    same process may have set one, which changes every seeded shuffle)."""
    import tensorflow as tf

    yield tf.random.set_seed
    tf.random.set_seed(None)


@pytest.mark.parametrize("global_seed", [None, 0, 7])
def test_shuffle_equals_tf_data_shuffle(tf_global_seed, global_seed):
    import tensorflow as tf

    tf_global_seed(global_seed)
    for n, buffer, seed in [(10, 4, 0), (100, 7, 1), (300, 300, 12345)]:
        expected = list(tf.data.Dataset.range(n).shuffle(buffer, seed=seed).as_numpy_iterator())
        assert list(shuffled(range(n), buffer, seed, global_seed)) == expected


@pytest.mark.parametrize(
    ("cycle", "buffer", "seed", "limit"),
    [(3, 5, 0, 200), (4, 16, 2, 30), (16, 1, 1, 200), (2, 100, 5, 200), (4, 256, 0, 80)],
)
def test_reader_orders_equal_tf_data_on_the_same_seed(
    numbered_shards, tf_global_seed, cycle, buffer, seed, limit
):
    from imgshard.trainer.input_pipeline import (
        ReaderSettings,
        record_dataset,
        sequential_record_dataset,
    )

    paths, labels = numbered_shards
    tf_global_seed(seed)  # as imgshard-train does (keras.utils.set_random_seed)
    settings = ReaderSettings(cycle, buffer, seed=seed, deterministic=True)
    common = {"shuffle_buffer": buffer, "seed": seed, "limit": limit, "global_seed": seed}
    trainer = reader_order(labels, interleave=True, cycle_length=cycle, **common)
    assert trainer == tf_order(record_dataset(paths, settings), limit)
    sequential = reader_order(labels, interleave=False, cycle_length=1, **common)
    assert sequential == tf_order(sequential_record_dataset(paths, buffer, seed=seed), limit)
    assert trainer != sequential


def shuffled_labels(count: int = 512, classes: int = 8, shards: int = 4) -> list[list[int]]:
    labels = [i % classes for i in range(count)]
    random.Random(0).shuffle(labels)
    return [labels[i::shards] for i in range(shards)]


@pytest.mark.gcs
def test_reader_views_on_gs_equal_the_local_ones(gcs_bucket, tmp_path):
    """TF's GCS client cannot reach the emulator; the views no longer need it."""
    labels = shuffled_labels()
    write_shards(f"gs://{gcs_bucket}/readers", labels)
    write_shards(str(tmp_path), labels)
    remote = audit(f"gs://{gcs_bucket}/readers", readers=READERS, batch_size=16).report
    local = audit(str(tmp_path), readers=READERS, batch_size=16).report
    assert set(remote["reader_order"]) == {"trainer", "sequential"}
    assert remote["reader_order"] == local["reader_order"]
    assert remote["verdict"] == "PASS", remote["failures"]


def test_the_audit_does_not_import_tensorflow(tmp_path):
    write_shards(str(tmp_path), shuffled_labels())
    probe = (
        "import sys; from imgshard.audit import audit, default_readers; "
        f"r = audit({str(tmp_path)!r}, readers=default_readers(4, 256, 0), batch_size=16); "
        "print(sorted(r.report['reader_order']), 'tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[0] == "['sequential', 'trainer'] False"
