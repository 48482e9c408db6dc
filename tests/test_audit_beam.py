"""The audit's scan as a Beam job keyed by shard: the same report as the in-process scan."""

import json
import random

import pytest
from apache_beam.io.filesystems import FileSystems

from imgshard.audit import audit, default_readers, main
from imgshard.audit.scan_graph import SumCounts
from imgshard.transforms.example import Floats, encode_example
from imgshard.transforms.tfrecord import TFRecordWriter

READERS = default_readers(cycle_length=4, shuffle_buffer=256, sequential_buffer=0)
LABEL = "image/class/label"
TWO_THREADS = ["--direct_num_workers=2", "--direct_running_mode=multi_threading"]


def record(i: int, label) -> bytes:
    box = Floats([0.1]) if i % 5 else Floats([0.9])  # every 5th box has no area: an error
    return encode_example(
        {
            LABEL: label,
            "image/filename": f"n{i % 7}/img_{i}.jpg".encode(),
            "image/object/bbox/xmin": box,
            "image/object/bbox/xmax": Floats([0.5]),
            "image/object/bbox/ymin": Floats([0.1]),
            "image/object/bbox/ymax": Floats([0.5]),
        }
    )


def write_dataset(folder, shards: int = 6, count: int = 600) -> str:
    """Shards of shuffled records with bytes and int labels mixed in per shard order, one
    damaged record, one frame cut short; and the list of their file names (plus one more)."""
    labels = [f"class{i % 9}".encode() if i % 3 else i % 4 for i in range(count)]
    random.Random(1).shuffle(labels)
    for shard in range(shards):
        with open(folder / f"train-{shard:05d}-of-{shards:05d}", "wb") as f:
            writer = TFRecordWriter(f)
            for i in range(shard, count, shards):
                writer.write(b"\x0b" if i == 7 else record(i, labels[i]))
            if shard == 2:
                f.write(b"\x01\x02")
    list_path = folder.parent / "list.txt"
    list_path.write_text("".join(f"n{i % 7}/img_{i}.jpg 0\n" for i in range(count + 1)))
    return str(list_path)


def test_the_beam_scan_gives_the_in_process_report(tmp_path):
    (tmp_path / "shards").mkdir()
    list_path = write_dataset(tmp_path / "shards")
    kwargs = {"readers": READERS, "batch_size": 16, "list_file": list_path, "decode": False}
    local = audit(str(tmp_path / "shards"), **kwargs)
    from apache_beam.options.pipeline_options import PipelineOptions

    work = tmp_path / "work"
    work.mkdir()
    beam = audit(
        str(tmp_path / "shards"),
        pipeline_options=PipelineOptions(TWO_THREADS),
        work_folder=str(work),
        **kwargs,
    )
    assert beam.report == local.report
    assert (beam.histograms == local.histograms).all() and beam.shards == local.shards
    errors = local.report["integrity"]["errors"]
    assert errors["parse"] == 1 and errors["crc"] == 1 and errors["boxes"] > 0
    assert local.report["integrity"]["list"]["num_missing"] == 2  # the damaged record + 1
    assert list(work.iterdir()) == []  # the shard summaries are removed


def test_the_cli_runs_the_scan_as_a_beam_job_when_given_beam_options(tmp_path, capsys):
    (tmp_path / "shards").mkdir()
    write_dataset(tmp_path / "shards")
    target = str(tmp_path / "shards")
    flags = ["--json", "--batch-size", "16", "--label-key", LABEL]
    assert main([target, *flags]) == 1
    in_process = json.loads(capsys.readouterr().out)
    assert main([target, *flags, "--runner", "DirectRunner", *TWO_THREADS]) == 1
    assert json.loads(capsys.readouterr().out) == in_process


def test_a_remote_runner_needs_a_temp_location(tmp_path, capsys):
    (tmp_path / "shards").mkdir()
    write_dataset(tmp_path / "shards")
    assert main([str(tmp_path / "shards"), "--runner", "DataflowRunner"]) == 2
    assert "--temp_location is needed with DataflowRunner" in capsys.readouterr().err


def test_sum_counts_adds_numbers_and_dicts_key_by_key():
    combine = SumCounts()
    a = combine.add_input(combine.create_accumulator(), {"records": 2, "errors": {"crc": 1}})
    b = combine.add_input(combine.create_accumulator(), {"records": 3, "errors": {"parse": 2}})
    c = combine.add_input(combine.create_accumulator(), {"errors": {"crc": 4}})
    merged = combine.merge_accumulators([a, combine.merge_accumulators([b, c])])
    assert combine.extract_output(merged) == {"records": 5, "errors": {"crc": 5, "parse": 2}}


@pytest.mark.gcs
def test_shards_and_summaries_on_gs(gcs_bucket, tmp_path, capsys):
    (tmp_path / "shards").mkdir()
    write_dataset(tmp_path / "shards")
    remote = f"gs://{gcs_bucket}/beam-audit"
    for path in sorted((tmp_path / "shards").iterdir()):
        with FileSystems.create(f"{remote}/{path.name}") as f:
            f.write(path.read_bytes())
    flags = ["--json", "--batch-size", "16"]
    assert main([str(tmp_path / "shards"), *flags]) == 1
    local = json.loads(capsys.readouterr().out)
    temp = f"gs://{gcs_bucket}/beam-audit-tmp"
    assert main([remote, *flags, "--runner", "DirectRunner", f"--temp_location={temp}"]) == 1
    report = json.loads(capsys.readouterr().out)
    for key in ("integrity", "raw_order", "reader_order", "shard_skew", "failures"):
        assert json.dumps(report[key]).replace(remote, "L") == json.dumps(local[key]).replace(
            str(tmp_path / "shards"), "L"
        )
    assert FileSystems.match([f"{temp}/**"])[0].metadata_list == []
