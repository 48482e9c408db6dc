"""Reruns into an existing output: refused, resumed or replaced, never silently mixed."""

import json
import os

import pytest

from helpers import all_files, convert, jpeg, shard_files, sorted_dataset, write
from imgshard.pipeline import ConversionError, existing_output
from imgshard.pipeline.journal import journal_dir
from imgshard.transforms.storage import TMP_MARKER


@pytest.fixture
def dataset(tmp_path):
    """6 classes x 8 images plus one corrupt image, so a shard also journals a rejection."""
    list_path = sorted_dataset(str(tmp_path / "d"), classes=6, per_class=8)
    write(str(tmp_path / "d" / "bad" / "cut.JPEG"), jpeg(300, 200)[:1500])
    with open(list_path, "a") as f:
        f.write("bad/cut.JPEG 0\n")
    return list_path


FLAGS = ("--num-shards", "5", "--max-reject-fraction", "0.1")


def test_a_non_empty_output_is_refused_without_resume_or_overwrite(dataset, tmp_path):
    out = tmp_path / "out"
    write(str(out / "notes.txt"), b"my own file")
    with pytest.raises(ConversionError, match="is not empty: it holds other files.*notes.txt"):
        convert(dataset, out, *FLAGS)
    with pytest.raises(ConversionError, match="holds no journal.*--overwrite"):
        convert(dataset, out, *FLAGS, "--resume")
    assert os.listdir(out) == ["notes.txt"]  # nothing was written next to it
    convert(dataset, out, *FLAGS, "--overwrite")
    assert (out / "notes.txt").read_bytes() == b"my own file"  # replaced ours, kept theirs
    with pytest.raises(ConversionError, match="holds a finished conversion"):
        convert(dataset, out, *FLAGS)
    with pytest.raises(ValueError, match="exclude each other"):
        convert(dataset, out, *FLAGS, "--resume", "--overwrite")


def test_resume_into_an_empty_output_is_a_fresh_run(dataset, tmp_path):
    result = convert(dataset, tmp_path / "out", *FLAGS, "--resume")
    assert result.metadata["num_records"] == 48 and result.metadata["num_rejected"] == 1
    assert result.counters.get("shards_resumed", 0) == 0


@pytest.mark.parametrize(
    "changed_flags,change",
    [
        (("--seed", "7"), "settings.seed: 0 -> 7"),
        (("--num-shards", "4"), "settings.num_shards: 5 -> 4"),
        (("--resize", "fixed:32x32"), "settings.image.resize: 'shorter:256' -> 'fixed:32x32'"),
        (("--quality", "80"), "settings.image.quality: 90 -> 80"),
    ],
)
def test_a_different_configuration_is_never_resumed_into(dataset, tmp_path, changed_flags, change):
    out = tmp_path / "out"
    convert(dataset, out, *FLAGS)
    before = all_files(out)
    flags = dict(zip(FLAGS[::2], FLAGS[1::2], strict=True))
    flags.update(dict(zip(changed_flags[::2], changed_flags[1::2], strict=True)))
    with pytest.raises(ConversionError, match="different configuration") as refused:
        convert(dataset, out, *[x for kv in flags.items() for x in kv], "--resume")
    assert change in str(refused.value)
    assert all_files(out) == before


def test_another_image_library_build_is_never_resumed_into(dataset, tmp_path, monkeypatch):
    """Another Pillow release or pillow-simd gives other pixels: its shards would mix with
    the first build's. dataset.json names the build that wrote the shards."""
    out = tmp_path / "out"
    convert(dataset, out, *FLAGS)
    with open(out / "dataset.json") as f:
        assert json.load(f)["tool"]["image_library"].startswith(("Pillow ", "pillow-simd "))
    before = all_files(out)
    monkeypatch.setattr(existing_output, "image_library", lambda: "pillow-simd 12.1.1.post0")
    with pytest.raises(ConversionError, match="image_library: 'Pillow .*' -> 'pillow-simd"):
        convert(dataset, out, *FLAGS, "--resume")
    assert all_files(out) == before


def test_a_changed_input_list_is_never_resumed_into(dataset, tmp_path):
    out = tmp_path / "out"
    convert(dataset, out, *FLAGS)
    with open(dataset, "a") as f:
        f.write("0/0_0.JPEG 1\n")
    with pytest.raises(ConversionError, match=r"input\.size: \d+ -> \d+"):
        convert(dataset, out, *FLAGS, "--resume")


def test_a_list_rewritten_with_the_same_size_is_never_resumed_into(dataset, tmp_path):
    out = tmp_path / "out"
    convert(dataset, out, *FLAGS)
    data = open(dataset, "rb").read()
    open(dataset, "wb").write(data.replace(b"0/0_0.JPEG 0", b"0/0_0.JPEG 1", 1))
    os.utime(dataset, ns=(0, os.stat(dataset).st_mtime_ns + 1_000_000_000))
    with pytest.raises(ConversionError, match=r"input\.updated"):
        convert(dataset, out, *FLAGS, "--resume")


def test_resume_keeps_verified_shards_and_rewrites_damaged_or_missing_ones(dataset, tmp_path):
    reference = tmp_path / "reference"
    convert(dataset, reference, *FLAGS)
    out = tmp_path / "out"
    convert(dataset, out, *FLAGS)
    shards = shard_files(str(out))
    damaged = bytearray(open(shards[1], "rb").read())
    damaged[len(damaged) // 2] ^= 0xFF  # same size, different hash
    open(shards[1], "wb").write(bytes(damaged))
    os.remove(shards[3])
    os.remove(out / "dataset.json")

    resumed = convert(dataset, out, *FLAGS, "--resume")

    assert resumed.counters["shards_resumed"] == 3
    redone = [
        s
        for s in resumed.metadata["shards"]
        if s["name"] in {"train-00001-of-00005.tfrecord", "train-00003-of-00005.tfrecord"}
    ]
    assert resumed.counters["records_written"] == sum(s["records"] for s in redone)
    assert all_files(out) == all_files(
        reference
    )  # rejections of skipped shards came from the journal
    assert resumed.metadata["num_rejected"] == 1


def test_overwrite_clears_the_old_run_first(dataset, tmp_path, monkeypatch):
    out = tmp_path / "out"
    convert(dataset, out, *FLAGS)
    old_journal = json.loads(open(os.path.join(journal_dir(str(out), "train"), "run.json")).read())
    convert(dataset, out, "--num-shards", "2", "--max-reject-fraction", "0.1", "--overwrite")
    names = sorted(os.path.basename(p) for p in shard_files(str(out)))
    assert names == ["train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
    journal = sorted(os.listdir(journal_dir(str(out), "train")))
    assert journal == ["run.json", *(f"{n}.json" for n in names)]  # no entry of the old run
    new_journal = json.loads(open(os.path.join(journal_dir(str(out), "train"), "run.json")).read())
    assert new_journal["fingerprint"] != old_journal["fingerprint"]


def test_a_list_that_changes_during_the_run_fails_it(dataset, tmp_path, monkeypatch):
    # The list is edited after the driver recorded its metadata, before Finalize checks it.
    recorded = existing_output.input_identity

    def then_edited(uri, kind):
        identity = recorded(uri, kind)
        with open(dataset, "a") as f:
            f.write("0/0_1.JPEG 0\n")
        return identity

    monkeypatch.setattr(existing_output, "input_identity", then_edited)
    with pytest.raises(Exception, match=r"changed while it was converted \(size \d+ -> \d+"):
        convert(dataset, tmp_path / "out", *FLAGS)
    assert not (tmp_path / "out" / "dataset.json").exists()


def test_a_run_killed_as_it_started_leaves_nothing_that_blocks_a_plain_rerun(dataset, tmp_path):
    out = tmp_path / "out"
    # killed while writing its run.json: only a temporary file in an otherwise empty journal
    write(os.path.join(journal_dir(str(out), "train"), f".run.json{TMP_MARKER}0123"), b"{")
    result = convert(dataset, out, *FLAGS)
    assert result.metadata["num_records"] == 48
    assert not [n for n in os.listdir(journal_dir(str(out), "train")) if TMP_MARKER in n]


def test_an_output_inside_a_folder_input_is_refused(tmp_path):
    write(str(tmp_path / "images" / "cat" / "a.JPEG"), jpeg(40, 30))
    with pytest.raises(ConversionError, match="inside the --input folder"):
        convert(tmp_path / "images", tmp_path / "images" / "shards")
    assert not (tmp_path / "images" / "shards").exists()
