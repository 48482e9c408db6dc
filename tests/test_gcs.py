"""Lists, images and shards on gs:// through Beam's GCS filesystem, against a real GCS API."""

import json
import os

import pytest
from apache_beam.io.filesystems import FileSystems

from helpers import IN_PROCESS, read, shard_files, sorted_dataset, upload, write
from imgshard.audit import audit
from imgshard.pipeline import run
from imgshard.transforms.records import MISSING_FILE

pytestmark = pytest.mark.gcs


@pytest.fixture(scope="module")
def local_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("gcs")
    list_path = sorted_dataset(str(root / "images"), classes=6, per_class=20, names=True)
    with open(list_path, "a") as f:
        f.write("n00000000/not-uploaded.JPEG n00000000\n")
    return root, list_path


def test_gs_in_gs_out_matches_local_bytes_and_audits(gcs_bucket, local_dataset, tmp_path):
    root, list_path = local_dataset
    remote = f"gs://{gcs_bucket}/dataset"
    upload(str(root / "images"), remote)
    flags = ["--num-shards", "4", "--seed", "3", "--max-reject-fraction", "1", *IN_PROCESS]
    run(["--input", f"{remote}/train.txt", "--output", f"gs://{gcs_bucket}/out", *flags])
    run(["--input", list_path, "--output", str(tmp_path / "local"), *flags])

    names = sorted(os.path.basename(p) for p in shard_files(str(tmp_path / "local")))
    found = sorted(m.path for m in FileSystems.match([f"gs://{gcs_bucket}/out/*"])[0].metadata_list)
    assert found == sorted(
        f"gs://{gcs_bucket}/out/{n}"
        for n in [*names, "dataset.json", "labels.txt", "train-rejected.jsonl"]
    )
    for name in names:  # same relative paths and seed: the same bytes, whatever the filesystem
        assert read(f"gs://{gcs_bucket}/out/{name}") == (tmp_path / "local" / name).read_bytes()
    meta = json.loads(read(f"gs://{gcs_bucket}/out/dataset.json"))
    assert meta["num_records"] == 120 and meta["rejected"]["by_reason"] == {MISSING_FILE: 1}
    assert meta["input"]["uri"] == f"{remote}/train.txt"

    report = audit(
        f"gs://{gcs_bucket}/out", list_file=f"{remote}/train.txt", decode=True, readers=[]
    ).report
    assert report["verdict"] == "PASS", report["failures"]
    assert report["integrity"]["list"]["ok"] and report["integrity"]["list"]["rejected"] == 1


def test_gs_folder_tree_input(gcs_bucket, local_dataset, tmp_path):
    root, _ = local_dataset
    remote = f"gs://{gcs_bucket}/tree"
    for label in range(3):
        name = f"n{label:08d}"
        for i in range(5):
            local = root / "images" / name / f"{name}_{i}.JPEG"
            with FileSystems.create(f"{remote}/{name}/{name}_{i}.JPEG") as f:
                f.write(local.read_bytes())
    result = run(
        ["--input", remote, "--output", str(tmp_path / "out"), "--num-shards", "2", *IN_PROCESS]
    )
    assert result.metadata["num_records"] == 15
    assert (tmp_path / "out" / "labels.txt").read_text().split() == [
        "n00000000",
        "n00000001",
        "n00000002",
    ]


def test_rerun_into_gcs_rewrites_identical_bytes(gcs_bucket, local_dataset):
    root, _ = local_dataset
    remote = f"gs://{gcs_bucket}/rerun"
    write(
        str(root / "small" / "a.jpg"),
        (root / "images" / "n00000000" / "n00000000_0.JPEG").read_bytes(),
    )
    write(
        str(root / "small" / "b.jpg"),
        (root / "images" / "n00000001" / "n00000001_0.JPEG").read_bytes(),
    )
    (root / "small" / "train.txt").write_text("a.jpg 0\nb.jpg 1\n")
    upload(str(root / "small"), remote)
    args = [
        "--input",
        f"{remote}/train.txt",
        "--output",
        f"{remote}/out",
        "--num-shards",
        "2",
        *IN_PROCESS,
    ]
    run(args)
    first = {m.path: read(m.path) for m in FileSystems.match([f"{remote}/out/*"])[0].metadata_list}
    run([*args, "--overwrite"])
    second = {m.path: read(m.path) for m in FileSystems.match([f"{remote}/out/*"])[0].metadata_list}
    assert first == second and len(first) == 5  # no temp objects left behind
    assert "token" not in first[f"{remote}/out/dataset.json"].decode().lower()


def test_resume_and_overwrite_on_gcs(gcs_bucket, local_dataset):
    root, _ = local_dataset
    remote = f"gs://{gcs_bucket}/resume"
    upload(str(root / "images"), remote)
    args = ["--input", f"{remote}/train.txt", "--output", f"{remote}/out", *IN_PROCESS]
    args += ["--num-shards", "3", "--max-reject-fraction", "1"]
    first = run(args)
    shards = [f"{remote}/out/{s['name']}" for s in first.metadata["shards"]]
    FileSystems.delete([shards[1]])

    resumed = run([*args, "--resume"])

    assert resumed.counters["shards_resumed"] == 2
    assert resumed.counters["records_written"] == first.metadata["shards"][1]["records"]
    assert resumed.metadata == first.metadata
    journal = f"{remote}/out/.train-journal"
    entries = {m.path for m in FileSystems.match([f"{journal}/**"])[0].metadata_list}
    assert entries == {
        f"{journal}/run.json",
        *(f"{journal}/{s.split('/')[-1]}.json" for s in shards),
    }

    run([*args[:-4], "--num-shards", "2", "--max-reject-fraction", "1", "--overwrite"])
    entries = {m.path for m in FileSystems.match([f"{journal}/**"])[0].metadata_list}
    assert len(entries) == 3  # run.json and two shards: the old run's journal was removed
