"""imgshard audit on WebDataset tars: PASS for ours, FAIL for shards written in folder order by
the common `wds.ShardWriter` loop, damage found, and the WebDataset reader view equal to what
the `webdataset` package yields, sample for sample."""

import io
import json
import os
import random
import shutil
import tarfile

import pytest

from helpers import class_color_jpeg, convert, sorted_dataset
from imgshard.audit import audit, webdataset_readers
from imgshard.audit.webdataset_reader import buffer_shuffled, webdataset_order

CLASSES, PER_CLASS = 10, 40
READERS = webdataset_readers(0)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return sorted_dataset(
        str(tmp_path_factory.mktemp("d")), classes=CLASSES, per_class=PER_CLASS, names=True
    )


@pytest.fixture(scope="module")
def ours(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("ours")
    convert(dataset, out, "--num-shards", "8", "--resize", "shorter:16", "--format", "webdataset")
    return out


def shard_writer_loop(root, out, maxcount):
    """What the usual scripts do: walk root/*/* in order, one ShardWriter, samples as they come."""
    import webdataset as wds

    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    os.makedirs(out, exist_ok=True)
    with wds.ShardWriter(os.path.join(out, "shard-%06d.tar"), maxcount=maxcount) as sink:
        for label, name in enumerate(classes):
            for file in sorted(os.listdir(os.path.join(root, name))):
                with open(os.path.join(root, name, file), "rb") as f:
                    data = f.read()
                sink.write({"__key__": file.split(".")[0], "jpg": data, "cls": label})
    return out


def test_our_shards_pass_with_every_image_decoded(ours):
    report = audit(str(ours), decode=True, readers=READERS, batch_size=32).report
    assert report["verdict"] == "PASS", report["failures"]
    assert report["format"] == "webdataset" and report["records"] == CLASSES * PER_CLASS
    checks = report["integrity"]["webdataset"]
    assert checks["duplicate_keys"] == 0 and checks["label_range"] == []
    assert checks["reader_files"] == {
        "checked": ["_info.json", "train.wids.json"],
        "mismatches": [],
    }
    assert set(report["reader_order"]) == {"webdataset", "timm"}
    assert report["integrity"]["dataset_json"]["mismatches"] == []


def test_the_contact_sheet_reads_tars(ours, tmp_path):
    from imgshard.audit.contact_sheet import draw_contact_sheet

    cells = draw_contact_sheet(audit(str(ours)).shards, str(tmp_path / "sheet.png"), n=6)
    assert [c.caption[1] for c in cells] == ["16x16"] * 6  # width and height from the .json
    assert all(c.caption[0].startswith("n0000") for c in cells)  # class names from the .json


def test_folder_order_shard_writer_output_fails(dataset, tmp_path):
    root = os.path.dirname(dataset)
    out = shard_writer_loop(root, str(tmp_path / "wds"), maxcount=50)
    report = audit(out, decode=True, readers=READERS, batch_size=32).report
    assert report["verdict"] == "FAIL"
    assert report["integrity"]["errors"] == {}  # intact, just not mixed
    assert report["raw_order"]["distinct_ratio"] < 0.5
    assert report["reader_order"]["webdataset"]["distinct_ratio"] < 0.95
    assert any(f.startswith("raw order") for f in report["failures"])
    assert any(f.startswith("reader order (webdataset)") for f in report["failures"])
    assert report["shard_skew"]["ratio"] > 1.5


def test_the_reader_view_is_what_webdataset_yields(dataset, tmp_path):
    import webdataset as wds
    from webdataset.filters import _shuffle

    for bufsize, initial in [(1, 1), (7, 3), (50, 100), (1000, 100)]:
        items = list(range(237))
        ours = list(buffer_shuffled(items, bufsize, initial, random.Random(5)))
        theirs = list(_shuffle(iter(items), bufsize, initial, rng=random.Random(5)))
        assert ours == theirs

    root = os.path.dirname(dataset)
    out = shard_writer_loop(root, str(tmp_path / "wds"), maxcount=37)
    urls = sorted(os.path.join(out, n) for n in os.listdir(out))
    keys = [[s["__key__"] for s in wds.WebDataset(u, shardshuffle=False)] for u in urls]
    for shard_buffer, sample_buffer, initial in [(100, 64, 10), (3, 500, 100), (500, 8192, 2048)]:
        read = wds.WebDataset(urls, shardshuffle=shard_buffer, seed=11).shuffle(
            sample_buffer, initial=initial, seed=12
        )
        expected = [s["__key__"] for s in read]
        computed = webdataset_order(
            keys,
            shard_buffer=shard_buffer,
            shard_initial=min(100, shard_buffer),
            sample_buffer=sample_buffer,
            sample_initial=initial,
            seed=11,
            limit=10**6,
        )
        assert computed == expected and len(expected) == CLASSES * PER_CLASS


def write_tar(path, samples):
    """samples: [(member name, bytes)]."""
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as archive:
        for name, data in samples:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def test_damage_is_found_and_named(ours, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(ours, damaged)
    tars = sorted(p for p in os.listdir(damaged) if p.endswith(".tar"))
    first = damaged / tars[0]
    first.write_bytes(first.read_bytes()[:1500])  # truncated in its first sample
    info = json.loads((damaged / "_info.json").read_text())
    info["splits"]["train"]["shard_lengths"][3] += 1
    (damaged / "_info.json").write_text(json.dumps(info))
    report = audit(str(damaged)).report
    assert report["verdict"] == "FAIL"
    assert report["integrity"]["errors"].get("tar") == 1
    problems = report["integrity"]["webdataset"]["reader_files"]["mismatches"]
    assert any(tars[3] in p and "_info.json" in p for p in problems)
    assert any("num_samples" in p for p in problems)


def _member_offsets(path) -> list[int]:
    with tarfile.open(path) as archive:
        return [member.offset for member in archive]


def test_a_corrupt_header_inside_a_tar_fails_instead_of_ending_it_early(ours, tmp_path):
    """Python's tarfile reads a bad header past the first as the archive's end: the rest of
    the shard would vanish from the audit without a word."""
    copy = tmp_path / "corrupt"
    shutil.copytree(ours, copy)
    os.remove(copy / "dataset.json")  # the counts cannot give it away
    shard = copy / sorted(p for p in os.listdir(copy) if p.endswith(".tar"))[0]
    data = bytearray(shard.read_bytes())
    header = _member_offsets(shard)[6]  # the third sample's .jpg
    data[header + 148 : header + 152] = b"9999"  # its checksum field
    shard.write_bytes(bytes(data))
    report = audit(str(copy)).report
    assert report["verdict"] == "FAIL"
    assert report["integrity"]["errors"].get("tar") == 1
    assert "bad tar header" in json.dumps(report["integrity"])


def test_a_tar_cut_at_a_member_boundary_fails(ours, tmp_path):
    copy = tmp_path / "cut"
    shutil.copytree(ours, copy)
    os.remove(copy / "dataset.json")
    shard = copy / sorted(p for p in os.listdir(copy) if p.endswith(".tar"))[0]
    shard.write_bytes(shard.read_bytes()[: _member_offsets(shard)[6]])
    report = audit(str(copy)).report
    assert report["verdict"] == "FAIL" and report["integrity"]["errors"].get("tar") == 1


def test_reader_files_that_list_a_shard_that_does_not_exist_fail(ours, tmp_path):
    copy = tmp_path / "phantom"
    shutil.copytree(ours, copy)
    info = json.loads((copy / "_info.json").read_text())
    split = info["splits"]["train"]
    split["filenames"].append("train-00008-of-00008.tar")
    split["shard_lengths"].append(10)
    split["num_samples"] += 10
    (copy / "_info.json").write_text(json.dumps(info))
    index = json.loads((copy / "train.wids.json").read_text())
    index["shardlist"].append({"url": "train-00009-of-00008.tar", "nsamples": 10})
    (copy / "train.wids.json").write_text(json.dumps(index))
    report = audit(str(copy)).report
    assert report["verdict"] == "FAIL"
    problems = report["integrity"]["webdataset"]["reader_files"]["mismatches"]
    assert any("_info.json: lists train-00008-of-00008.tar" in p for p in problems), problems
    assert any("lists train-00009-of-00008.tar" in p for p in problems), problems


def test_a_missing_info_file_that_dataset_json_names_fails(ours, tmp_path):
    copy = tmp_path / "no-info"
    shutil.copytree(ours, copy)
    os.remove(copy / "_info.json")
    report = audit(str(copy)).report
    assert report["verdict"] == "FAIL"
    problems = report["integrity"]["webdataset"]["reader_files"]["mismatches"]
    assert "_info.json: missing (dataset.json names it)" in problems


def test_a_missing_shard_fails_and_is_named(ours, tmp_path):
    copy = tmp_path / "missing"
    shutil.copytree(ours, copy)
    gone = sorted(p for p in os.listdir(copy) if p.endswith(".tar"))[2]
    os.remove(copy / gone)
    report = audit(str(copy)).report
    assert report["verdict"] == "FAIL"
    assert gone in json.dumps(report["integrity"]) and "missing" in json.dumps(report["integrity"])


def test_small_well_shuffled_outputs_pass_whatever_the_seed(tmp_path):
    """87 records: a perfect shuffle's windows are noisy; before the noise allowance, 4 seeds
    of 10 failed the timm view of our own output."""
    data = sorted_dataset(str(tmp_path / "d"), classes=8, per_class=11, names=True)
    lines = open(data).read().splitlines(keepends=True)
    with open(data, "w") as f:
        f.writelines(lines[:87])
    verdicts = []
    for seed in range(10):
        out = tmp_path / f"out{seed}"
        convert(data, out, "--seed", str(seed), "--resize", "shorter:16", "--format", "webdataset")
        verdicts.append(audit(str(out), readers=READERS).report["verdict"])
    assert verdicts == ["PASS"] * 10


def test_one_shard_file_is_audited_by_its_path(dataset, tmp_path):
    """A foreign tar given by its own path (the common ShardWriter names: shard-000000.tar)."""
    out = shard_writer_loop(os.path.dirname(dataset), tmp_path / "foreign", maxcount=64)
    one = out / "shard-000001.tar"
    report = audit(str(one), readers=READERS, batch_size=16).report
    assert report["format"] == "webdataset" and report["records"] == 64
    assert report["shards"] == 1


def test_foreign_sample_problems_fail_the_audit(tmp_path):
    jpg = class_color_jpeg(1, 8)
    out = tmp_path / "foreign"
    out.mkdir()
    write_tar(
        out / "a-0.tar",
        [m for i in range(40) for m in ((f"s{i}.jpg", jpg), (f"s{i}.cls", str(i % 4).encode()))],
    )
    write_tar(
        out / "a-1.tar",
        [
            ("s3.jpg", jpg),  # the key of a sample in a-0.tar
            ("s3.cls", b"1"),
            ("t1.jpg", jpg),
            ("t1.cls", b"one"),  # not a number
            ("t2.jpg", jpg),  # no .cls
            ("t3.cls", b"2"),  # no image
            ("README", b"x"),  # no extension
            ("t4.jpg", b"not a jpeg"),
            ("t4.cls", b"3"),
        ],
    )
    report = audit(str(out), decode=True).report
    assert report["verdict"] == "FAIL"
    errors = report["integrity"]["errors"]
    assert errors == {"label": 2, "sample": 2, "decode": 1}, errors
    assert report["integrity"]["webdataset"]["duplicate_keys"] == 1
    assert any("repeat a key" in f for f in report["failures"])


def test_cls_outside_the_classes_of_dataset_json_fails(ours, tmp_path):
    changed = tmp_path / "changed"
    shutil.copytree(ours, changed)
    meta = json.loads((changed / "dataset.json").read_text())
    meta["labels"]["num_classes"] = CLASSES - 1  # the last class's ids are now out of range
    (changed / "dataset.json").write_text(json.dumps(meta))
    report = audit(str(changed)).report
    assert report["integrity"]["webdataset"]["label_range"] == [
        f".cls values outside 0..{CLASSES - 2}: {CLASSES - 1}"
    ]
    assert report["verdict"] == "FAIL"


def test_the_beam_scan_gives_the_in_process_report_and_finds_keys_repeated_across_shards(
    ours, tmp_path
):
    from apache_beam.options.pipeline_options import PipelineOptions

    repeated = tmp_path / "repeated"
    shutil.copytree(ours, repeated)
    for name in ("dataset.json", "_info.json", "train.wids.json"):
        os.remove(repeated / name)
    tars = sorted(p for p in os.listdir(repeated) if p.endswith(".tar"))
    shutil.copy(repeated / tars[0], repeated / "train-99999.tar")  # every key a second time
    local = audit(str(repeated), readers=READERS, batch_size=32)
    work = tmp_path / "work"
    work.mkdir()
    beam = audit(
        str(repeated),
        readers=READERS,
        batch_size=32,
        pipeline_options=PipelineOptions(
            ["--direct_num_workers=1", "--direct_running_mode=in_memory"]
        ),
        work_folder=str(work),
    )
    assert beam.report == local.report
    first = json.loads((ours / "dataset.json").read_text())["shards"][0]["records"]
    assert local.report["integrity"]["webdataset"]["duplicate_keys"] == first > 0
    assert local.report["verdict"] == "FAIL"


def test_the_command_takes_the_buffer_sizes_and_gates_on_the_verdict(
    ours, dataset, tmp_path, capsys
):
    from imgshard.audit import main

    flags = ["--json", "--batch-size", "32", "--wds-buffer", "64", "--wds-shard-buffer", "4"]
    assert main([str(ours), *flags]) == 0
    view = json.loads(capsys.readouterr().out)["reader_order"]["webdataset"]
    assert "(buffer 4)" in view["description"] and "sample buffer 64" in view["description"]
    foreign = shard_writer_loop(os.path.dirname(dataset), str(tmp_path / "wds"), maxcount=50)
    assert main([foreign, *flags]) == 1
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main([str(ours), "--wds-shard-buffer", "0"])
