"""`imgshard audit` on good shards, on the classic failures, and on broken files."""

import json
import os
import subprocess
import sys

import apache_beam as beam
import numpy as np
import pytest
from PIL import Image

from helpers import IN_PROCESS, jpeg, read_examples, shard_files, sorted_dataset
from imgshard.audit import audit, default_readers
from imgshard.pipeline import run
from imgshard.transforms.example import encode_example
from imgshard.transforms.tfrecord import TFRecordWriter, iter_records

READERS = default_readers(cycle_length=4, shuffle_buffer=256, sequential_buffer=0)


def convert(list_path, output, *flags):
    run(
        [
            "--input",
            str(list_path),
            "--output",
            str(output),
            "--resize",
            "shorter:16",
            *flags,
            *IN_PROCESS,
        ]
    )
    return str(output)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A class-sorted list (16 classes x 60) converted both ways."""
    root = tmp_path_factory.mktemp("audit")
    list_path = sorted_dataset(str(root / "images"), classes=16, per_class=60)
    good = convert(list_path, root / "good", "--num-shards", "12")
    sorted_out = convert(list_path, root / "sorted", "--num-shards", "12", "--shuffle", "none")
    return list_path, good, sorted_out


def rewrite_shard(path, edit):
    with open(path, "rb") as f:
        records = list(iter_records(f))
    with open(path, "wb") as f:
        writer = TFRecordWriter(f)
        for record in edit(records):
            writer.write(record)


def test_our_shards_pass_every_check(dataset, tmp_path):
    list_path, good, _ = dataset
    plot = tmp_path / "audit.png"
    result = audit(good, list_file=list_path, decode=True, readers=READERS)
    report = result.report
    assert report["verdict"] == "PASS", report["failures"]
    assert report["records"] == 960 and report["shards"] == 12
    assert report["integrity"]["dataset_json"]["mismatches"] == []
    assert report["integrity"]["decoded"] is True
    assert report["integrity"]["list"]["ok"] and report["integrity"]["list"]["inputs"] == 960
    assert report["raw_order"]["window"] == 32  # 960 records: 256 shrinks to keep 16+ windows
    assert report["raw_order"]["distinct_ratio"] >= 0.95
    assert set(report["reader_order"]) == {"trainer", "sequential"}
    assert report["shard_skew"]["ratio"] < 1.5
    from imgshard.audit.report import plot_report

    plot_report(result, str(plot))
    image = Image.open(plot)
    assert image.format == "PNG" and image.size[0] > 1000


def test_class_sorted_shards_fail_raw_order_skew_and_a_sequential_reader(dataset):
    _, _, sorted_out = dataset
    report = audit(sorted_out, readers=READERS).report
    assert report["verdict"] == "FAIL"
    assert report["integrity"]["errors"] == {}
    assert report["raw_order"]["distinct_ratio"] < 0.3
    assert report["raw_order"]["max_label_count_ratio"] > 2
    assert report["reader_order"]["sequential"]["distinct_ratio"] < 0.95
    assert report["shard_skew"]["ratio"] > 3
    assert {f.split(":")[0] for f in report["failures"]} >= {
        "raw order",
        "reader order (sequential)",
        "per-shard skew",
    }


def test_beams_write_to_tfrecord_from_a_sorted_list_fails_raw_order(dataset, tmp_path):
    """Balanced shards, each sorted inside: invisible to per-shard skew, caught by raw order."""
    list_path, _, _ = dataset
    lines = open(list_path).read().splitlines()

    def to_example(line):
        path, label = line.split()
        return encode_example(
            {
                "image/encoded": b"x",
                "image/class/label": int(label),
                "image/filename": path.encode(),
            }
        )

    with beam.Pipeline(argv=IN_PROCESS) as p:
        _ = (
            p
            | beam.Create(lines)
            | beam.Map(to_example)
            | beam.io.WriteToTFRecord(str(tmp_path / "beam" / "train"), num_shards=8)
        )
    files = sorted(os.listdir(tmp_path / "beam"))
    assert len(files) == 8
    report = audit(str(tmp_path / "beam" / "train-*"), readers=[]).report
    assert report["records"] == 960
    assert report["verdict"] == "FAIL"
    assert report["raw_order"]["distinct_ratio"] < 0.95


def test_a_missing_and_a_duplicated_record_are_named(dataset, tmp_path):
    list_path, good, _ = dataset
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(good, copy)
    files = shard_files(str(copy))
    dropped = read_examples(str(copy))[0]["image/filename"].decode()
    rewrite_shard(files[0], lambda records: records[1:])
    rewrite_shard(files[1], lambda records: records + records[:1])
    report = audit(str(copy), list_file=list_path, readers=[]).report
    listed = report["integrity"]["list"]
    assert report["verdict"] == "FAIL"
    assert [m["path"] for m in listed["missing"]] == [dropped]
    assert listed["num_duplicated"] == 1 and listed["duplicated"][0]["found"] == 2
    mismatches = report["integrity"]["dataset_json"]["mismatches"]
    assert any(files[0].split("/")[-1] in m and "records" in m for m in mismatches)
    assert any("sha256" in m for m in mismatches)


def test_a_flipped_byte_is_a_crc_error(dataset, tmp_path):
    _, good, _ = dataset
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(good, copy)
    victim = shard_files(str(copy))[3]
    data = bytearray(open(victim, "rb").read())
    data[len(data) // 2] ^= 0x40
    open(victim, "wb").write(bytes(data))
    report = audit(str(copy), readers=[]).report
    assert report["verdict"] == "FAIL"
    assert report["integrity"]["errors"].get("crc") == 1
    assert report["integrity"]["first_errors"][0]["shard"].endswith(os.path.basename(victim))


def test_decode_catches_a_record_whose_image_does_not_match_its_size(tmp_path):
    out = tmp_path / "foreign"
    out.mkdir()
    with open(out / "data-00000-of-00001", "wb") as f:
        writer = TFRecordWriter(f)
        for i in range(40):
            writer.write(
                encode_example(
                    {
                        "image/encoded": jpeg(20, 10),
                        "image/height": 10,
                        "image/width": 20 if i else 21,
                        "image/class/label": i % 4,
                    }
                )
            )
    report = audit(str(out), decode=True, readers=[]).report
    assert report["integrity"]["errors"] == {"decode": 1}
    assert "recorded 21x10" in report["integrity"]["first_errors"][0]["detail"]


def test_foreign_shards_with_bytes_labels_and_basenames(tmp_path):
    """TPU-style shards: no dataset.json, no extension, synset labels, file names only."""
    out = tmp_path / "tpu"
    out.mkdir()
    rng = np.random.default_rng(0)
    items = [(f"n{c:08d}/n{c:08d}_{i}.JPEG", f"n{c:08d}") for c in range(8) for i in range(40)]
    order = rng.permutation(len(items))
    for shard in range(4):
        with open(out / f"train-{shard:05d}-of-00004", "wb") as f:
            writer = TFRecordWriter(f)
            for k in order[shard::4]:
                path, synset = items[k]
                writer.write(
                    encode_example(
                        {
                            "image/class/synset": synset.encode(),
                            "image/class/label": 0,
                            "image/filename": path.split("/")[1].encode(),
                            "image/encoded": b"x",
                        }
                    )
                )
    list_path = tmp_path / "train.txt"
    list_path.write_text("".join(f"{p} {s}\n" for p, s in items))
    report = audit(
        str(out), label_key="image/class/synset", list_file=str(list_path), readers=READERS
    ).report
    assert report["verdict"] == "PASS", report["failures"]
    assert report["labels"] == 8 and report["integrity"]["list"]["matched_by"] == "basename"


def test_cli_exit_codes_json_and_plot(dataset, tmp_path):
    _, good, sorted_out = dataset
    imgshard = os.path.join(os.path.dirname(sys.executable), "imgshard")
    passed = subprocess.run(
        [imgshard, "audit", good, "--json", "--plot", str(tmp_path / "p.png")],
        capture_output=True,
        text=True,
    )
    assert passed.returncode == 0, passed.stderr
    assert json.loads(passed.stdout)["verdict"] == "PASS"
    assert (tmp_path / "p.png").stat().st_size > 10_000
    failed = subprocess.run(
        [imgshard, "audit", sorted_out, "--no-reader-order"], capture_output=True, text=True
    )
    assert failed.returncode == 1
    assert "imgshard audit: FAIL" in failed.stdout and "raw order" in failed.stdout
    missing = subprocess.run(
        [imgshard, "audit", str(tmp_path / "nothing")], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "no shard files" in missing.stderr


def test_human_report_says_what_was_checked(dataset):
    from imgshard.audit.report import format_report

    _, good, sorted_out = dataset
    plain = format_report(audit(good, readers=[]).report)
    assert "PASS" in plain.splitlines()[0] and "decoded" not in plain
    decoded = format_report(audit(good, decode=True, readers=[]).report)
    assert "every image decoded to its recorded size" in decoded
    failed = format_report(audit(sorted_out, readers=[]).report).splitlines()
    assert failed[0].startswith("imgshard audit: FAIL")
    assert any(line.startswith("  FAIL raw order") for line in failed)
    assert any(line.startswith("  -> per-shard skew") for line in failed)
