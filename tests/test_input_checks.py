"""Refusals before the job starts: a misconfigured input and a mistyped flag."""

import os
import subprocess

import pytest

from helpers import IMGSHARD, IN_PROCESS, convert, sorted_dataset
from imgshard.pipeline import ConversionError
from imgshard.transforms import records


@pytest.fixture()
def dataset(tmp_path):
    """40 images in tmp/images with a relative `path label` list beside them."""
    list_path = sorted_dataset(str(tmp_path / "images"), classes=4, per_class=10, names=True)
    return list_path, tmp_path / "images"


def _relist(list_path, target, transform) -> str:
    """The same entries, each path rewritten by `transform`, in a list at `target`."""
    with open(list_path) as f:
        lines = [line.split() for line in f]
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "w") as f:
        f.writelines(f"{transform(path)} {label}\n" for path, label in lines)
    return str(target)


def test_absolute_paths_outside_the_list_folder_stop_the_run_with_the_fix(dataset, tmp_path):
    list_path, images = dataset
    # a Caffe-style list kept elsewhere, naming every image by its absolute path
    moved = _relist(list_path, tmp_path / "lists" / "train.txt", lambda p: f"{images}/{p}")
    out = tmp_path / "out"
    with pytest.raises(ConversionError) as info:
        convert(moved, out)
    message = str(info.value)
    assert f"40 of 40 entries sampled across {moved}" in message
    assert records.OUTSIDE_ROOT in message and "absolute paths" in message
    assert f"--image-root {images}" in message and "--allow-outside-root" in message
    assert not out.exists()  # stopped before anything was prepared or written
    # the advice works
    result = convert(moved, out, "--image-root", str(images))
    assert result.metadata["num_records"] == 40


def test_a_wrong_image_root_stops_the_run_as_missing_files(dataset, tmp_path):
    list_path, images = dataset
    elsewhere = tmp_path / "empty-root"
    elsewhere.mkdir()
    with pytest.raises(ConversionError) as info:
        convert(list_path, tmp_path / "out", "--image-root", str(elsewhere))
    message = str(info.value)
    assert "40 of 40 entries sampled" in message and records.MISSING_FILE in message
    assert f"do not exist under --image-root {elsewhere}" in message
    assert not (tmp_path / "out").exists()


def test_a_labels_file_with_other_names_stops_the_run(dataset, tmp_path):
    list_path, _ = dataset
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n")
    with pytest.raises(ConversionError) as info:
        convert(list_path, tmp_path / "out", "--labels", str(labels))
    message = str(info.value)
    assert records.UNKNOWN_LABEL in message and "'n00000000'" in message
    assert f"--labels {labels}" in message


def test_a_minority_of_bad_entries_is_left_to_the_job(dataset, tmp_path):
    list_path, images = dataset
    for name in ("n00000000/n00000000_1.JPEG", "n00000002/n00000002_3.JPEG"):
        os.remove(images / name)
    result = convert(list_path, tmp_path / "out", "--max-reject-fraction", "1")
    assert result.metadata["num_records"] == 38
    assert result.metadata["rejected"]["by_reason"] == {records.MISSING_FILE: 2}


def test_the_sample_counts_only_what_it_checked(dataset, tmp_path):
    """Half the sample missing is not "most": the run goes on and reports every one."""
    list_path, images = dataset
    for label in range(2):
        for i in range(10):
            os.remove(images / f"n{label:08d}" / f"n{label:08d}_{i}.JPEG")
    result = convert(list_path, tmp_path / "out", "--max-reject-fraction", "1")
    assert result.metadata["rejected"]["by_reason"] == {records.MISSING_FILE: 20}


@pytest.mark.parametrize(
    "typo, expected",
    [
        (["--sed", "4"], "unknown flag --sed (did you mean --seed?)"),
        (["--num_shards", "4"], "unknown flag --num_shards (did you mean --num-shards?)"),
        (
            ["--direct_num_worker=2"],
            "unknown flag --direct_num_worker (did you mean --direct_num_workers?)",
        ),
        (["--zzzzz"], "unknown flag --zzzzz."),
    ],
)
def test_a_mistyped_flag_stops_the_run_with_the_closest_flag(dataset, tmp_path, typo, expected):
    list_path, _ = dataset
    out = tmp_path / "out"
    with pytest.raises(ValueError) as info:
        convert(list_path, out, *typo)
    assert expected in str(info.value)
    assert not out.exists()


def test_the_command_line_exits_2_on_a_mistyped_flag_and_can_pass_it_on(dataset, tmp_path):
    list_path, _ = dataset
    out = str(tmp_path / "out")
    args = [IMGSHARD, "convert", "--input", list_path, "--output", out, *IN_PROCESS]
    refused = subprocess.run([*args, "--sed", "4"], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2, refused.stderr
    assert "did you mean --seed?" in refused.stderr and "Traceback" not in refused.stderr
    assert not os.path.exists(out)
    passed = subprocess.run(
        [*args, "--some_runner_option=1", "--allow-unknown-flags"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert passed.returncode == 0, passed.stderr
    assert "40 records" in passed.stdout


def test_an_abbreviated_flag_is_refused_not_expanded(dataset, tmp_path):
    """argparse would read `--se 4` as `--seed 4`: spelled out or refused, never guessed."""
    list_path, _ = dataset
    with pytest.raises(ValueError, match="unknown flag --se "):
        convert(list_path, tmp_path / "out", "--se", "4")


def test_a_list_whose_start_is_fine_but_most_of_it_is_not_stops_the_run(tmp_path):
    """The sample is spread over the list: a class-sorted list whose first classes are in
    place and the rest under another root is refused before the job (a sample of its first
    thousand lines saw only the good ones)."""
    list_path = sorted_dataset(str(tmp_path / "images"), classes=5, per_class=300)
    with open(list_path) as f:
        entries = f.readlines()
    with open(list_path, "w") as f:
        f.writelines(entries[:1000])
        f.writelines(f"moved/{line}" for line in entries[1000:] * 3)
    with pytest.raises(ConversionError, match=f"entries sampled across {list_path}.*missing_file"):
        convert(list_path, tmp_path / "out")


def test_the_sample_of_a_list_is_a_thousand_entries_spread_over_it(tmp_path):
    list_path = sorted_dataset(str(tmp_path / "images"), classes=2, per_class=600)
    with open(list_path) as f:
        entries = f.readlines()
    with open(list_path, "w") as f:
        f.writelines(f"/elsewhere/{line}" for line in entries)
    with pytest.raises(ConversionError, match="1000 of 1000 entries sampled"):
        convert(list_path, tmp_path / "out")


def test_an_unreadable_labels_file_is_a_clear_error(dataset, tmp_path):
    list_path, _ = dataset
    with pytest.raises(ConversionError, match="--labels .*nope.txt cannot be read"):
        convert(list_path, tmp_path / "out", "--labels", str(tmp_path / "nope.txt"))


def test_relative_paths_that_lead_out_are_named_so_and_the_fix_is_normalized(dataset, tmp_path):
    list_path, images = dataset
    moved = _relist(list_path, tmp_path / "lists" / "train.txt", lambda p: f"../images/{p}")
    with pytest.raises(ConversionError) as info:
        convert(moved, tmp_path / "out")
    message = str(info.value)
    assert "absolute paths" not in message and "40 of 40" in message
    assert f"--image-root {images} or --allow-outside-root" in message  # no "lists/.." in it


def test_the_audit_refuses_a_mistyped_flag_too(dataset, tmp_path):
    list_path, _ = dataset
    convert(list_path, tmp_path / "out")
    done = subprocess.run(
        [IMGSHARD, "audit", str(tmp_path / "out"), "--sed", "4"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "unknown flag --sed (did you mean --seed?)" in done.stderr
    assert "--allow-unknown-flags" not in done.stderr  # the audit has no such flag
