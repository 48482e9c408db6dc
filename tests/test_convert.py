"""The conversion job end to end on DirectRunner, on generated data."""

import json
import os

import pytest

from helpers import (
    convert,
    encode,
    jpeg,
    labels_in_order,
    photo,
    read_examples,
    shard_files,
    sorted_dataset,
    write,
)
from imgshard.audit.mixing import distinct_ratio
from imgshard.pipeline import ConversionError
from imgshard.transforms import records


def shard_bytes(output) -> dict[str, bytes]:
    return {os.path.basename(p): open(p, "rb").read() for p in shard_files(str(output))}


@pytest.fixture(scope="module")
def sorted_list(tmp_path_factory):
    """20 classes x 50 images, listed class by class: the input that exposes the bug."""
    return sorted_dataset(str(tmp_path_factory.mktemp("sorted")), classes=20, per_class=50)


@pytest.fixture
def odd_inputs(tmp_path):
    """One of every awkward input, and the reason each should end with (None = a record)."""
    root = tmp_path / "images"
    cmyk = encode(photo(40, 30).convert("CMYK"), "JPEG")
    cases = {
        "ok/photo.JPEG": (jpeg(600, 400), None),
        "ok/cmyk.JPEG": (cmyk, None),
        "ok/gray.JPEG": (encode(photo(40, 30).convert("L"), "JPEG"), None),
        "ok/rgba.png": (encode(photo(40, 30).convert("RGBA"), "PNG"), None),
        "ok/png-named.JPEG": (encode(photo(40, 30), "PNG"), None),
        "bad/truncated.JPEG": (jpeg(300, 200)[:2000], records.CORRUPT_IMAGE),
        "bad/empty.JPEG": (b"", records.EMPTY_FILE),
        "bad/text.JPEG": (b"hello, I am text\n" * 20, records.NOT_AN_IMAGE),
    }
    lines = []
    for relative, (data, _) in cases.items():
        write(str(root / relative), data)
        lines.append(f"{relative} {relative.split('/')[0]}\n")
    lines += [
        "bad/missing.JPEG bad\n",  # no such file
        "ok/photo.JPEG ok\n",  # listed twice
        "just-one-token\n",  # malformed
    ]
    expected = {rel: reason for rel, (_, reason) in cases.items()}
    list_path = root / "train.txt"
    list_path.write_text("".join(lines))
    return list_path, expected


def test_every_input_is_a_record_or_a_rejected_line_with_its_reason(odd_inputs, tmp_path):
    list_path, expected = odd_inputs
    out = tmp_path / "out"
    result = convert(list_path, out, "--num-shards", "3", "--max-reject-fraction", "1")
    examples = read_examples(str(out))
    rejected = [
        json.loads(line) for line in (out / "train-rejected.jsonl").read_text().splitlines()
    ]
    listed = len(list_path.read_text().splitlines())

    assert len(examples) + len(rejected) == listed == 11
    written = sorted(e["image/filename"].decode() for e in examples)
    assert written == sorted(p for p, reason in expected.items() if reason is None)
    reasons = {r["path"]: r["reason"] for r in rejected}
    assert reasons == {
        **{p: reason for p, reason in expected.items() if reason},
        "bad/missing.JPEG": records.MISSING_FILE,
        "ok/photo.JPEG": records.DUPLICATE_PATH,
        "just-one-token": records.UNPARSEABLE_LINE,
    }
    assert [r["line"] for r in rejected] == sorted(r["line"] for r in rejected)
    duplicate = next(r for r in rejected if r["reason"] == records.DUPLICATE_PATH)
    assert duplicate["line"] == 10 and "line 1" in duplicate["detail"]
    meta = result.metadata
    assert meta["num_records"] == 5 and meta["num_rejected"] == 6 and meta["num_inputs"] == 11
    assert sum(meta["rejected"]["by_reason"].values()) == 6
    assert result.counters["records_written"] == 5


def test_every_record_decodes_to_its_recorded_shape(odd_inputs, tmp_path):
    import tensorflow as tf

    list_path, _ = odd_inputs
    out = tmp_path / "out"
    convert(
        list_path, out, "--num-shards", "2", "--max-reject-fraction", "1", "--resize", "shorter:24"
    )
    labels = (out / "labels.txt").read_text().split()
    examples = read_examples(str(out))
    assert examples
    for e in examples:
        image = tf.io.decode_image(e["image/encoded"]).numpy()
        assert image.shape == (e["image/height"], e["image/width"], e["image/channels"])
        assert min(image.shape[:2]) == 24 and e["image/channels"] == 3
        assert e["image/format"] == b"JPEG" and e["image/colorspace"] == b"RGB"
        assert labels[e["image/class/label"]] == e["image/class/synset"].decode()
    meta = json.loads((out / "dataset.json").read_text())
    assert [s["records"] for s in meta["shards"]] == [
        sum(1 for _ in tf.data.TFRecordDataset(str(out / s["name"]))) for s in meta["shards"]
    ]


def test_same_seed_gives_byte_identical_shards_and_another_seed_another_order(
    sorted_list, tmp_path
):
    convert(sorted_list, tmp_path / "a", "--num-shards", "4", "--seed", "5")
    convert(sorted_list, tmp_path / "b", "--num-shards", "4", "--seed", "5")
    convert(sorted_list, tmp_path / "c", "--num-shards", "4", "--seed", "6")
    a, b, c = (shard_bytes(tmp_path / x) for x in "abc")
    assert len(a) == 4 and a == b
    assert a != c
    order_a = [e["image/filename"] for e in read_examples(str(tmp_path / "a"))]
    order_c = [e["image/filename"] for e in read_examples(str(tmp_path / "c"))]
    assert sorted(order_a) == sorted(order_c) and order_a != order_c
    for name in ("dataset.json", "labels.txt", "train-rejected.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


@pytest.mark.slow
def test_worker_processes_do_not_change_a_byte(sorted_list, tmp_path):
    convert(sorted_list, tmp_path / "one", "--num-shards", "5")
    convert(
        sorted_list,
        tmp_path / "two",
        "--num-shards",
        "5",
        runner=["--direct_num_workers=2", "--direct_running_mode=multi_processing"],
    )
    assert shard_bytes(tmp_path / "one") == shard_bytes(tmp_path / "two")


def test_shards_of_a_class_sorted_list_are_mixed_like_an_iid_sample(sorted_list, tmp_path):
    convert(sorted_list, tmp_path / "global", "--num-shards", "8")
    labels = labels_in_order(str(tmp_path / "global"))
    assert len(labels) == 1000
    assert distinct_ratio(labels, 32) >= 0.97


def test_list_order_output_fails_the_same_mixing_check(sorted_list, tmp_path):
    convert(sorted_list, tmp_path / "none", "--num-shards", "8", "--shuffle", "none")
    labels = labels_in_order(str(tmp_path / "none"))
    assert labels == sorted(labels)  # list order, the bug reproduced
    assert distinct_ratio(labels, 32) < 0.2


def test_shuffle_none_rejects_duplicates_across_shards(tmp_path):
    root = tmp_path / "d"
    write(str(root / "x.jpg"), jpeg(20, 20))
    write(str(root / "y.jpg"), jpeg(20, 20, seed=1))
    (root / "train.txt").write_text("x.jpg 0\ny.jpg 0\ny.jpg 0\nx.jpg 1\n")
    result = convert(
        root / "train.txt",
        tmp_path / "out",
        "--shuffle",
        "none",
        "--num-shards",
        "2",
        "--max-reject-fraction",
        "1",
    )
    assert result.metadata["num_records"] == 2
    assert result.metadata["rejected"]["by_reason"] == {records.DUPLICATE_PATH: 2}


def test_folder_tree_and_csv_inputs_write_the_same_records_as_the_list(sorted_list, tmp_path):
    root = os.path.dirname(sorted_list)
    entries = [line.split() for line in open(sorted_list)]
    csv_path = tmp_path / "train.csv"
    csv_path.write_text("filename,label\n" + "".join(f"{p},{lbl}\n" for p, lbl in entries))
    convert(sorted_list, tmp_path / "list", "--num-shards", "3")
    convert(csv_path, tmp_path / "csv", "--num-shards", "3", "--image-root", root)
    assert shard_bytes(tmp_path / "list") == shard_bytes(tmp_path / "csv")
    # a folder tree's class names are folder names ("0".."19", sorted as text)
    folder_root = tmp_path / "tree"
    for path, _ in entries[::10]:
        write(str(folder_root / path), open(os.path.join(root, path), "rb").read())
    result = convert(folder_root, tmp_path / "folder", "--num-shards", "2")
    names = (tmp_path / "folder" / "labels.txt").read_text().split()
    assert names == sorted(str(c) for c in range(20)) and result.metadata["num_records"] == 100
    for e in read_examples(str(tmp_path / "folder")):
        assert names[e["image/class/label"]] == e["image/filename"].decode().split("/")[0]


def test_class_names_get_sorted_ids_and_an_offset(tmp_path):
    list_path = sorted_dataset(str(tmp_path / "d"), classes=3, per_class=4, names=True)
    result = convert(list_path, tmp_path / "out", "--num-shards", "2", "--label-offset", "1")
    names = (tmp_path / "out" / "labels.txt").read_text().split()
    assert names == ["n00000000", "n00000001", "n00000002"]
    for e in read_examples(str(tmp_path / "out")):
        assert names[e["image/class/label"] - 1] == e["image/class/synset"].decode()
    assert result.metadata["labels"]["counts"] == [4, 4, 4]


def test_labels_file_rejects_unknown_classes(tmp_path):
    list_path = sorted_dataset(str(tmp_path / "d"), classes=3, per_class=2, names=True)
    labels = tmp_path / "labels.txt"
    labels.write_text("n00000002\nn00000000\n")
    result = convert(
        list_path, tmp_path / "out", "--labels", str(labels), "--max-reject-fraction", "1"
    )
    assert result.metadata["rejected"]["by_reason"] == {records.UNKNOWN_LABEL: 2}
    for e in read_examples(str(tmp_path / "out")):
        assert e["image/class/label"] == {b"n00000002": 0, b"n00000000": 1}[e["image/class/synset"]]


def test_too_many_rejects_fail_the_run_after_writing_the_report(odd_inputs, tmp_path):
    list_path, _ = odd_inputs
    out = tmp_path / "out"
    with pytest.raises(ConversionError, match="more than --max-reject-fraction") as info:
        convert(list_path, out, "--num-shards", "2")
    assert info.value.result.metadata["num_rejected"] == 6
    assert len((out / "train-rejected.jsonl").read_text().splitlines()) == 6


def test_a_list_with_no_usable_image_is_an_error(tmp_path):
    (tmp_path / "train.txt").write_text("missing.jpg 0\n")
    with pytest.raises(ConversionError, match="no record was written.*missing_file"):
        convert(tmp_path / "train.txt", tmp_path / "out", "--max-reject-fraction", "1")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ConversionError, match="no record was written from 0 inputs"):
        convert(tmp_path / "empty.txt", tmp_path / "out2")


def test_existing_output_is_refused_unless_overwritten(sorted_list, tmp_path):
    out = tmp_path / "out"
    convert(sorted_list, out, "--num-shards", "6")
    with pytest.raises(ConversionError, match="--overwrite"):
        convert(sorted_list, out, "--num-shards", "3")
    assert len(shard_files(str(out))) == 6
    convert(sorted_list, out, "--num-shards", "3", "--overwrite")
    names = sorted(os.listdir(out))
    assert names == [
        ".train-journal",
        "dataset.json",
        "labels.txt",
        "train-00000-of-00003.tfrecord",
        "train-00001-of-00003.tfrecord",
        "train-00002-of-00003.tfrecord",
        "train-rejected.jsonl",
    ]


def test_overwrite_with_another_split_is_refused_and_keeps_the_output(sorted_list, tmp_path):
    out = tmp_path / "imagenet" / "train"
    convert(sorted_list, out, "--num-shards", "2")
    before = sorted(os.listdir(out))
    with pytest.raises(ConversionError, match="holds the 'train' split.*validation"):
        convert(sorted_list, out, "--num-shards", "2", "--split", "validation", "--overwrite")
    assert sorted(os.listdir(out)) == before  # dataset.json and the shards are untouched
    assert json.loads((out / "dataset.json").read_text())["split"] == "train"


def test_more_shards_than_images_still_writes_every_shard(tmp_path):
    list_path = sorted_dataset(str(tmp_path / "d"), classes=2, per_class=2)
    result = convert(list_path, tmp_path / "out", "--num-shards", "10")
    files = shard_files(str(tmp_path / "out"))
    assert len(files) == 10 and result.metadata["num_records"] == 4
    assert sum(1 for f in files if os.path.getsize(f) == 0) >= 6


def test_dataset_json_describes_the_output(sorted_list, tmp_path):
    import hashlib

    from imgshard.transforms.tfrecord import iter_records

    out = tmp_path / "out"
    convert(sorted_list, out, "--num-shards", "4", "--seed", "3")
    meta = json.loads((out / "dataset.json").read_text())
    # every figure recomputed from the files themselves
    files = shard_files(str(out))
    assert [s["name"] for s in meta["shards"]] == [os.path.basename(p) for p in files]
    for shard, path in zip(meta["shards"], files, strict=True):
        with open(path, "rb") as f:
            data = f.read()
        assert len(data) == shard["bytes"]
        assert hashlib.sha256(data).hexdigest() == shard["sha256"]
        with open(path, "rb") as f:
            assert sum(1 for _ in iter_records(f)) == shard["records"]
    assert meta["bytes"] == sum(os.path.getsize(p) for p in files)
    examples = read_examples(str(out))
    labels = [e["image/class/label"] for e in examples]
    assert meta["num_records"] == len(labels) == 1000
    assert meta["labels"]["counts"] == [labels.count(i) for i in range(20)] == [50] * 20
    assert meta["labels"]["names"] == [str(i) for i in range(20)]
    with open(sorted_list, "rb") as f:
        listed = f.read()
    assert meta["num_inputs"] == len(listed.splitlines()) == 1000
    assert meta["input"] == {
        "uri": str(sorted_list),
        "kind": "list",
        "sha256": hashlib.sha256(listed).hexdigest(),
    }
    assert set(meta["schema"]) == set(examples[0])
    assert meta["settings"]["seed"] == 3 and meta["settings"]["image"]["resize"] == "shorter:256"
