"""--index-files: `{shard}.idx` beside each shard, as DALI and the PyTorch `tfrecord` package
read them, written atomically with the shard, listed in dataset.json, checked by --resume and
the audit."""

import hashlib
import json
import os
import subprocess
import sys

import pytest

from helpers import all_files, convert, shard_files, sorted_dataset
from imgshard.audit import audit
from imgshard.transforms.example import decode_example
from imgshard.transforms.storage import TMP_MARKER
from imgshard.transforms.tfrecord import iter_records

FLAGS = ("--num-shards", "3", "--resize", "shorter:16")


def tfrecord_package(code: str, *args: str) -> str:
    """Runs `code` with the `tfrecord` package in a fresh interpreter: its example_pb2
    registers the same proto names as TensorFlow, which other tests load in this process."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


CREATE_INDEX = """
import sys
from tfrecord.tools.tfrecord2idx import create_index
create_index(sys.argv[1], sys.argv[2])
"""

READ_PART = """
import json, sys
from tfrecord.reader import tfrecord_loader
description = {"image/class/label": "int", "image/filename": "byte"}
part, parts = int(sys.argv[3]), int(sys.argv[4])
records = tfrecord_loader(sys.argv[1], sys.argv[2], description, shard=(part, parts))
print(json.dumps([[int(r["image/class/label"][0]), bytes(r["image/filename"]).decode()]
                  for r in records]))
"""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return sorted_dataset(str(tmp_path_factory.mktemp("d")), classes=4, per_class=9)


@pytest.fixture(scope="module")
def indexed(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("indexed")
    return out, convert(dataset, out, *FLAGS, "--index-files")


def test_index_files_equal_the_tfrecord_packages_byte_for_byte(indexed, tmp_path):
    out, result = indexed
    shards = shard_files(str(out))
    assert len(shards) == 3
    for shard in shards:
        theirs = tmp_path / (os.path.basename(shard) + ".theirs")
        # the package's tool reads the whole shard again, as DALI's does
        tfrecord_package(CREATE_INDEX, shard, str(theirs))
        ours = open(shard + ".idx", "rb").read()
        assert ours == theirs.read_bytes()
        assert len(ours.splitlines()) == sum(1 for _ in iter_records(open(shard, "rb")))


def test_dataset_json_lists_each_index_file_and_the_format(indexed):
    out, result = indexed
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["format"] == "tfrecord" and meta["settings"]["index_files"] is True
    for entry in meta["shards"]:
        index = entry["index"]
        assert index["name"] == entry["name"] + ".idx"
        data = (out / index["name"]).read_bytes()
        assert index["bytes"] == len(data)
        assert index["sha256"] == hashlib.sha256(data).hexdigest()


def test_the_tfrecord_package_reads_a_shard_through_our_index(indexed):
    out, _ = indexed
    shard = shard_files(str(out))[1]
    ours = [decode_example(r) for r in iter_records(open(shard, "rb"))]
    assert len(ours) >= 6
    # shard=(i, n): the package seeks to the i-th n-th of the records through the index
    for part in range(3):
        read = json.loads(tfrecord_package(READ_PART, shard, shard + ".idx", str(part), "3"))
        start, end = len(ours) * part // 3, len(ours) * (part + 1) // 3
        assert read == [
            [e["image/class/label"][0], e["image/filename"][0].decode()] for e in ours[start:end]
        ]


def test_the_shards_are_the_same_bytes_with_or_without_index_files(indexed, dataset, tmp_path):
    out, _ = indexed
    plain = tmp_path / "plain"
    convert(dataset, plain, *FLAGS)
    assert not [n for n in os.listdir(plain) if n.endswith(".idx")]
    for ours, theirs in zip(shard_files(str(out)), shard_files(str(plain)), strict=True):
        assert open(ours, "rb").read() == open(theirs, "rb").read()


def test_an_index_file_is_renamed_into_place_before_its_shard(dataset, tmp_path, monkeypatch):
    from apache_beam.io.filesystems import FileSystems

    renamed = []
    original = FileSystems.rename

    def spy(sources, destinations):
        assert all(TMP_MARKER in os.path.basename(s) for s in sources)  # written, then renamed
        renamed.extend(os.path.basename(d) for d in destinations)
        return original(sources, destinations)

    monkeypatch.setattr(FileSystems, "rename", staticmethod(spy))
    convert(dataset, tmp_path / "out", *FLAGS, "--index-files")
    shards = [n for n in renamed if n.endswith(".tfrecord")]
    assert len(shards) == 3
    for shard in shards:
        assert renamed.index(shard + ".idx") < renamed.index(shard)


def test_resume_rewrites_a_shard_whose_index_file_is_damaged_or_missing(dataset, tmp_path):
    reference = tmp_path / "reference"
    convert(dataset, reference, *FLAGS, "--index-files")
    out = tmp_path / "out"
    convert(dataset, out, *FLAGS, "--index-files")
    shards = shard_files(str(out))
    with open(shards[0] + ".idx", "r+b") as f:
        f.write(b"9")  # same size, another hash
    os.remove(shards[2] + ".idx")

    resumed = convert(dataset, out, *FLAGS, "--index-files", "--resume")

    assert resumed.counters["shards_resumed"] == 1
    assert all_files(out) == all_files(reference)


def test_overwriting_without_index_files_removes_the_old_ones(dataset, tmp_path):
    out = tmp_path / "out"
    convert(dataset, out, *FLAGS, "--index-files")
    convert(dataset, out, *FLAGS, "--overwrite")
    assert not [n for n in os.listdir(out) if n.endswith(".idx")]


def test_the_audit_checks_index_files_with_and_without_dataset_json(dataset, tmp_path):
    out = tmp_path / "out"
    convert(dataset, out, *FLAGS, "--index-files")
    report = audit(str(out)).report
    assert report["verdict"] == "PASS" and report["integrity"]["index_files"]["checked"] == 3

    shard = shard_files(str(out))[1]
    lines = open(shard + ".idx").read().splitlines()
    with open(shard + ".idx", "w") as f:  # one record dropped from the index
        f.write("\n".join(lines[:-1]) + "\n")
    report = audit(str(out)).report
    assert report["verdict"] == "FAIL"
    assert report["integrity"]["index_files"]["mismatches"] == [
        f"{os.path.basename(shard)}: its index file does not match the records read"
    ]

    os.remove(out / "dataset.json")  # foreign shards: an index beside a shard is checked too
    report = audit(str(out / "train-*")).report  # the glob matches the .idx files as well
    assert report["shards"] == 3 and report["integrity"]["index_files"]["checked"] == 3
    assert report["verdict"] == "FAIL"

    os.remove(shard + ".idx")
    with_json = tmp_path / "again"
    convert(dataset, with_json, *FLAGS, "--index-files")
    os.remove(with_json / (os.path.basename(shard) + ".idx"))
    report = audit(str(with_json)).report
    assert report["verdict"] == "FAIL"
    assert "is missing" in report["integrity"]["index_files"]["mismatches"][0]


def test_index_files_are_refused_for_array_record_output(dataset, tmp_path):
    with pytest.raises(ValueError, match="--index-files is for TFRecord shards"):
        convert(dataset, tmp_path / "out", "--index-files", "--format", "array_record")
