"""The audit's tf.data reader views when TensorFlow cannot replay the shards: skipped with the
reason, and every other check still judged."""

import random

import pytest
from apache_beam.io.filesystems import FileSystems

from imgshard.pipeline.audit import audit, default_readers
from imgshard.pipeline.audit_report import format_report
from imgshard.transforms.example import encode_example
from imgshard.transforms.tfrecord import TFRecordWriter

READERS = default_readers(cycle_length=4, shuffle_buffer=256, sequential_buffer=0)
LABEL = "image/class/label"


def write_shards(folder: str, records: list[bytes], shards: int) -> None:
    for shard in range(shards):
        path = FileSystems.join(folder, f"train-{shard:05d}-of-{shards:05d}")
        with FileSystems.create(path) as f:
            writer = TFRecordWriter(f)
            for record in records[shard::shards]:
                writer.write(record)


def shuffled_records(count: int = 512, classes: int = 8) -> list[bytes]:
    labels = [i % classes for i in range(count)]
    random.Random(0).shuffle(labels)
    return [encode_example({LABEL: label}) for label in labels]


@pytest.mark.gcs
def test_gs_shards_tensorflow_cannot_reach_skip_the_reader_views_only(gcs_bucket):
    """TF's GCS client ignores STORAGE_EMULATOR_HOST, so it cannot read the emulator's objects;
    Beam's filesystem (the scan) can."""
    folder = f"gs://{gcs_bucket}/readers"
    write_shards(folder, shuffled_records(), shards=4)
    report = audit(folder, readers=READERS, batch_size=16).report
    assert report["reader_order"] == {}
    assert report["note"].startswith("reader views skipped: tf.data could not replay the shards")
    assert "the other checks stand" in report["note"]
    assert report["records"] == 512 and report["raw_order"]["distinct_ratio"] > 0.95
    assert report["verdict"] == "PASS", report["failures"]
    assert "reader views skipped" in format_report(report)


def test_records_tf_data_cannot_parse_skip_the_views_and_keep_the_integrity_failure(tmp_path):
    records = shuffled_records()
    records[100] = encode_example({"image/filename": b"no-label.jpg"})  # TF's parser refuses it
    write_shards(str(tmp_path), records, shards=4)
    report = audit(str(tmp_path), readers=READERS, batch_size=16).report
    assert report["reader_order"] == {}
    assert "InvalidArgumentError" in report["note"]
    assert "\n" not in report["note"] and "{{" not in report["note"]
    assert report["failures"] == ["integrity: 1 label error"]
    assert report["verdict"] == "FAIL"
