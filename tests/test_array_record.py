"""--format array_record: the same records, order, names, journal and dataset.json as the
TFRecord output, read back by Grain's ArrayRecordDataSource and by the audit."""

import hashlib
import os
import sys

import pytest

from helpers import all_files, convert, shard_files, sorted_dataset
from imgshard.audit import audit, default_readers
from imgshard.transforms.tfrecord import iter_records

FLAGS = ("--num-shards", "3", "--resize", "shorter:16")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return sorted_dataset(str(tmp_path_factory.mktemp("d")), classes=4, per_class=9)


@pytest.fixture(scope="module")
def outputs(dataset, tmp_path_factory):
    array_out, tfrecord_out = tmp_path_factory.mktemp("ar"), tmp_path_factory.mktemp("tfr")
    array_result = convert(dataset, array_out, *FLAGS, "--format", "array_record")
    convert(dataset, tfrecord_out, *FLAGS)
    return array_out, array_result, tfrecord_out


def array_shards(output):
    return sorted(str(output / n) for n in os.listdir(output) if n.endswith(".array_record"))


def test_grain_reads_every_record_the_tfrecord_output_holds(outputs):
    from grain.python import ArrayRecordDataSource

    array_out, result, tfrecord_out = outputs
    paths = array_shards(array_out)
    assert [os.path.basename(p) for p in paths] == [
        os.path.basename(p).replace(".tfrecord", ".array_record")
        for p in shard_files(str(tfrecord_out))
    ]
    expected = [r for p in shard_files(str(tfrecord_out)) for r in iter_records(open(p, "rb"))]
    source = ArrayRecordDataSource(paths)  # random access across all shards
    assert len(source) == len(expected) == result.metadata["num_records"] == 36
    assert [source[i] for i in range(len(source))] == expected
    assert source[len(expected) - 1] == expected[-1] and source[7] == expected[7]


def test_dataset_json_names_the_format_and_each_file_with_its_hash(outputs):
    array_out, result, _ = outputs
    meta = result.metadata
    assert meta["format"] == "array_record" and meta["settings"]["format"] == "array_record"
    for entry in meta["shards"]:
        data = (array_out / entry["name"]).read_bytes()
        assert entry["bytes"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()


def test_same_seed_same_bytes_and_resume_repairs_damaged_or_missing_files(
    dataset, outputs, tmp_path
):
    reference, _, _ = outputs
    out = tmp_path / "out"
    convert(dataset, out, *FLAGS, "--format", "array_record")
    assert all_files(out) == all_files(reference)
    paths = array_shards(out)
    with open(paths[0], "r+b") as f:
        f.seek(os.path.getsize(paths[0]) // 3)
        f.write(b"\x00\xff\x00")
    os.remove(paths[2])
    os.remove(out / "dataset.json")

    resumed = convert(dataset, out, *FLAGS, "--format", "array_record", "--resume")

    assert resumed.counters["shards_resumed"] == 1
    assert all_files(out) == all_files(reference)


def test_the_audit_reads_array_record_shards_and_catches_damage(outputs, tmp_path):
    import shutil

    array_out, _, _ = outputs
    report = audit(str(array_out), readers=default_readers(16, 10_000, 0)).report
    assert report["verdict"] == "PASS" and report["format"] == "array_record"
    assert report["reader_order"] == {} and "replay tf.data's TFRecord" in report["note"]
    assert report["records"] == 36 and report["integrity"]["dataset_json"]["mismatches"] == []

    from imgshard.audit.contact_sheet import draw_contact_sheet

    cells = draw_contact_sheet(audit(str(array_out)).shards, str(tmp_path / "sheet.png"), n=4)
    assert [c.caption[1] for c in cells] == ["16x16"] * 4  # read back from ArrayRecord

    damaged = tmp_path / "damaged"
    shutil.copytree(array_out, damaged)
    os.remove(damaged / "dataset.json")  # so only reading the file can find the damage
    shard = array_shards(damaged)[1]
    data = bytearray(open(shard, "rb").read())
    data[200:204] = b"\xde\xad\xbe\xef"  # inside the first records' chunk
    open(shard, "wb").write(bytes(data))
    report = audit(str(damaged)).report
    assert report["verdict"] == "FAIL"
    assert set(report["integrity"]["errors"]) & {"read", "parse", "label"}


def test_without_the_package_the_run_stops_before_it_starts(dataset, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "array_record.python", None)  # as if not installed
    with pytest.raises(ValueError, match=r"\.venv/bin/pip install -e '\.\[array-record\]'"):
        convert(dataset, tmp_path / "out", "--format", "array_record")
    assert not os.path.exists(tmp_path / "out")


def test_overwriting_with_another_format_leaves_no_old_shards(dataset, tmp_path):
    out = tmp_path / "out"
    convert(dataset, out, *FLAGS, "--index-files")
    convert(dataset, out, *FLAGS, "--format", "array_record", "--overwrite")
    left = sorted(n for n in os.listdir(out) if n.startswith("train-0"))
    assert left == [f"train-0000{i}-of-00003.array_record" for i in range(3)]


def test_a_writer_removes_the_temporary_folders_of_killed_processes(tmp_path, monkeypatch):
    import io
    import subprocess
    import tempfile

    from imgshard.transforms.array_record_output import ArrayRecordShardWriter

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process that ended: as a killed worker, its folder is left behind
    stale = tmp_path / f"imgshard-array-record-{gone.pid}-abc"
    live = tmp_path / f"imgshard-array-record-{os.getpid()}-def"  # a live writer's
    other = tmp_path / "someone-else-123"
    for folder in (stale, live, other):
        folder.mkdir()
        (folder / "shard.array_record").write_bytes(b"x" * 100)

    stream = io.BytesIO()
    with ArrayRecordShardWriter(stream) as writer:
        writer.write(b"record")
    assert not stale.exists()
    assert live.exists() and other.exists()
    assert writer.records == 1 and len(stream.getvalue()) == writer.bytes > 0
    # its own folder is gone too once it finished
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name])
