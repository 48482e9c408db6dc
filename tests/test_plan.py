"""`imgshard convert --plan`: the shards' contents without reading an image."""

import collections
import os

from helpers import IN_PROCESS, convert, sorted_dataset
from imgshard.pipeline.cli import main
from imgshard.transforms.example import decode_example
from imgshard.transforms.tfrecord import iter_records


def planned_list(root) -> str:
    """4 classes x 10 images, one repeated path, one unparseable line, one missing image."""
    list_path = sorted_dataset(str(root / "d"), classes=4, per_class=10)
    with open(list_path, "a") as f:
        f.write("0/0_3.JPEG 0\n")  # a repeat: rejected as duplicate_path
        f.write("no-label-here\n")  # unparseable_line
    return list_path


def test_plan_equals_what_the_conversion_writes_and_reads_nothing(tmp_path):
    list_path = planned_list(tmp_path)
    flags = ["--num-shards", "3", "--seed", "4", "--max-reject-fraction", "1"]

    planned = convert(list_path, tmp_path / "plan-out", *flags, "--plan").plan

    assert not (tmp_path / "plan-out").exists()  # nothing written
    assert planned["num_records"] == 40 and planned["num_shards"] == 3
    assert planned["rejected_by_reason"] == {"duplicate_path": 1, "unparseable_line": 1}
    meta = convert(list_path, tmp_path / "out", *flags).metadata
    assert [s["name"] for s in planned["shards"]] == [s["name"] for s in meta["shards"]]
    assert [s["records"] for s in planned["shards"]] == [s["records"] for s in meta["shards"]]
    for shard in planned["shards"]:  # per class, read back from the written records
        with open(tmp_path / "out" / shard["name"], "rb") as f:
            labels = [decode_example(r)["image/class/label"][0] for r in iter_records(f)]
        assert shard["label_counts"] == dict(sorted(collections.Counter(labels).items()))


def test_plan_never_opens_an_image(tmp_path):
    list_path = planned_list(tmp_path)
    for folder, _, names in os.walk(tmp_path / "d"):
        for name in names:
            if name.endswith(".JPEG"):
                os.remove(os.path.join(folder, name))  # every image gone: the plan cannot tell
    planned = convert(list_path, tmp_path / "out", "--num-shards", "2", "--plan").plan
    assert planned["num_records"] == 40


def test_plan_prints_records_per_shard_and_class(tmp_path, capsys):
    list_path = planned_list(tmp_path)
    args = ["convert", "--input", list_path, "--output", str(tmp_path / "out"), "--plan"]
    assert main([*args, "--num-shards", "2", "--seed", "1", *IN_PROCESS]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("imgshard plan: 40 records in 2 shards (")
    assert "nothing was read or written" in printed[0]
    assert "    duplicate_path     1" in printed and "    unparseable_line   1" in printed
    header = next(line for line in printed if line.strip().startswith("shard"))
    assert header.split()[1:] == ["records", "0", "1", "2", "3"]
    rows = [line.split() for line in printed if line.strip().startswith("train-")]
    assert [row[0] for row in rows] == [
        "train-00000-of-00002.tfrecord",
        "train-00001-of-00002.tfrecord",
    ]
    assert sum(int(row[1]) for row in rows) == 40
    for column in range(2, 6):  # each class's 10 images, split between the shards
        assert sum(int(row[column]) for row in rows) == 10
    assert all(int(row[1]) == sum(int(c) for c in row[2:]) for row in rows)
