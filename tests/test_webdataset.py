"""--format webdataset: tars of {key}.jpg/.cls/.json holding what the TFRecord output holds, in
the same order, byte-identical for the same inputs and seed, resumable, and read by the
`webdataset` package; the info files timm and wids need beside them.

timm and wids themselves need torch (wids imports it in its package __init__, timm's reader at
the top of its module), which is not installed for the tests: `_info.json` is checked against
timm's reader as its source reads it (timm/data/readers/reader_wds.py, `_parse_split_info`),
and the wids index and tars through wids' own torch-free modules (its index resolver and its
mmap tar indexer), loaded without the package __init__."""

import importlib.util
import io
import json
import os
import re
import sys
import tarfile
import types

import pytest

from helpers import all_files, convert, shard_files, sorted_dataset
from imgshard.transforms.example import decode_example
from imgshard.transforms.tfrecord import iter_records
from imgshard.transforms.webdataset_output import WebDatasetShardWriter, webdataset_sample

FLAGS = ("--num-shards", "3", "--resize", "shorter:16")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return sorted_dataset(str(tmp_path_factory.mktemp("d")), classes=4, per_class=9, names=True)


@pytest.fixture(scope="module")
def outputs(dataset, tmp_path_factory):
    wds_out, tfrecord_out = tmp_path_factory.mktemp("wds"), tmp_path_factory.mktemp("tfr")
    result = convert(dataset, wds_out, *FLAGS, "--format", "webdataset")
    convert(dataset, tfrecord_out, *FLAGS)
    return wds_out, result, tfrecord_out


def tars(output):
    return sorted(str(output / n) for n in os.listdir(output) if n.endswith(".tar"))


def tfrecords(output):
    return [
        decode_example(r) for p in shard_files(str(output)) for r in iter_records(open(p, "rb"))
    ]


def test_webdataset_reads_what_the_tfrecord_output_holds_in_the_same_order(outputs):
    import webdataset as wds

    wds_out, result, tfrecord_out = outputs
    assert [os.path.basename(p) for p in tars(wds_out)] == [
        os.path.basename(p).replace(".tfrecord", ".tar") for p in shard_files(str(tfrecord_out))
    ]
    samples = list(wds.WebDataset(tars(wds_out), shardshuffle=False))
    expected = tfrecords(tfrecord_out)
    assert len(samples) == len(expected) == result.metadata["num_records"] == 36
    for sample, record in zip(samples, expected, strict=True):
        assert sample["jpg"] == record["image/encoded"][0]
        assert int(sample["cls"]) == record["image/class/label"][0]
        meta = json.loads(sample["json"])
        assert meta == {
            "class": record["image/class/synset"][0].decode(),
            "label": record["image/class/label"][0],
            "path": record["image/filename"][0].decode(),
            "width": record["image/width"][0],
            "height": record["image/height"][0],
        }
    keys = [s["__key__"] for s in samples]
    assert len(set(keys)) == 36 and not any("." in k for k in keys)
    assert keys[0] == "00000-000000-" + os.path.basename(meta_path(samples[0])).split(".")[0]


def meta_path(sample):
    return json.loads(sample["json"])["path"]


def test_tar_bytes_depend_on_nothing_but_the_records(outputs):
    wds_out, result, _ = outputs
    for path in tars(wds_out):
        data = open(path, "rb").read()
        assert len(data) % tarfile.RECORDSIZE == 0
        with tarfile.open(path) as archive:
            members = archive.getmembers()
        assert members and all(
            (m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode, m.type)
            == (0, 0, 0, "", "", 0o644, tarfile.REGTYPE)
            for m in members
        )
        assert [m.name.rsplit(".", 1)[1] for m in members] == ["jpg", "cls", "json"] * (
            len(members) // 3
        )
        assert data[257:265] == b"ustar\x0000"  # POSIX USTAR: no pax or GNU extension headers
    # no host, user or time anywhere: the same inputs and seed give the same bytes
    assert os.uname().nodename.encode() not in b"".join(open(p, "rb").read() for p in tars(wds_out))


def test_same_seed_same_bytes_and_resume_repairs_damaged_or_missing_tars(
    dataset, outputs, tmp_path
):
    reference, _, _ = outputs
    out = tmp_path / "out"
    convert(dataset, out, *FLAGS, "--format", "webdataset")
    assert all_files(out) == all_files(reference)
    paths = tars(out)
    with open(paths[0], "r+b") as f:
        f.seek(700)
        f.write(b"\x00\xff\x00")
    os.remove(paths[2])
    os.remove(out / "dataset.json")
    os.remove(out / "_info.json")

    resumed = convert(dataset, out, *FLAGS, "--format", "webdataset", "--resume")

    assert resumed.counters["shards_resumed"] == 1
    assert all_files(out) == all_files(reference)


def test_another_seed_writes_another_order_of_the_same_samples(dataset, outputs, tmp_path):
    import webdataset as wds

    reference, _, _ = outputs
    out = tmp_path / "seed1"
    convert(dataset, out, *FLAGS, "--format", "webdataset", "--seed", "1")

    def paths(output):
        return [meta_path(s) for s in wds.WebDataset(tars(output), shardshuffle=False)]

    assert paths(out) != paths(reference) and sorted(paths(out)) == sorted(paths(reference))


def test_info_file_is_what_timms_wds_reader_reads(outputs):
    wds_out, result, _ = outputs
    info = json.loads((wds_out / "_info.json").read_text())
    # timm's _parse_split_info for split="train": info['splits'][split], then SplitInfo(
    #   num_samples=..., filenames=tuple(...), shard_lengths=tuple(...), name=...)
    split = info["splits"]["train"]
    num_samples, filenames = split["num_samples"], tuple(split["filenames"])
    shard_lengths, name = tuple(split["shard_lengths"]), split["name"]
    assert name == "train" and num_samples == 36 == sum(shard_lengths)
    import webdataset as wds

    for filename, length in zip(filenames, shard_lengths, strict=True):
        # timm joins each filename with its root: os.path.join(self.root, f)
        path = os.path.join(str(wds_out), filename)
        assert len(list(wds.WebDataset(path, shardshuffle=False))) == length
    assert [s["records"] for s in result.metadata["shards"]] == list(shard_lengths)
    assert result.metadata["readers"] == {
        "timm_info": "_info.json",
        "wids_index": "train.wids.json",
        "timm_split": "train-{00000..00002}-of-00003.tar|36",
    }
    # timm's other form, for train.py's one --data-dir: 'tar' in split -> split('|') gives
    # the count, and webdataset's expand_urls the files (joined with the root)
    from webdataset.shardlists import expand_urls

    pattern, count = f"{wds_out.name}/{result.metadata['readers']['timm_split']}".split("|")
    assert int(count) == num_samples
    expanded = [os.path.join(str(wds_out.parent), f) for f in expand_urls(pattern)]
    assert expanded == tars(wds_out)


def _wids_module(name):
    """A module of the installed wids package, without running its __init__ (imports torch)."""
    if "wids" not in sys.modules:
        folder = os.path.dirname(importlib.util.find_spec("wids").origin)
        package = types.ModuleType("wids")
        package.__path__ = [folder]
        sys.modules["wids"] = package
    folder = sys.modules["wids"].__path__[0]
    full = f"wids.{name}"
    if full not in sys.modules:
        module_spec = importlib.util.spec_from_file_location(
            full, os.path.join(folder, f"{name}.py")
        )
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[full] = module
        module_spec.loader.exec_module(module)
    return sys.modules[full]


@pytest.fixture
def wids_modules():
    saved = {k: v for k, v in sys.modules.items() if k == "wids" or k.startswith("wids.")}
    for k in saved:
        del sys.modules[k]
    try:
        yield _wids_module("wids_specs"), _wids_module("wids_mmtar")
    finally:
        for k in [k for k in sys.modules if k == "wids" or k.startswith("wids.")]:
            del sys.modules[k]
        sys.modules.update(saved)


def test_wids_resolves_the_shard_index_and_indexes_every_tar(outputs, wids_modules):
    specs, mmtar = wids_modules
    wds_out, result, _ = outputs
    index_path = str(wds_out / "train.wids.json")
    # what wids.ShardListDataset(index_path) does first: base = the index file's folder
    spec = specs.load_dsdesc_and_resolve(index_path, base=os.path.dirname(index_path))
    shards = spec["shardlist"]
    assert [s["url"] for s in shards] == tars(wds_out)
    assert sum(s["nsamples"] for s in shards) == 36
    for shard in shards:
        reader = mmtar.MMIndexedTar(shard["url"])
        names = list(reader.names())
        reader.close()
        # wids groups members by the name up to the first dot (wids.splitname)
        keys = {re.match(r"^((?:.*/)?.*?)(\..*)$", n).group(1) for n in names}
        assert len(keys) == shard["nsamples"] and len(names) == 3 * shard["nsamples"]


def test_keys_are_unique_and_dot_free_whatever_the_file_names(tmp_path):
    import webdataset as wds

    stream = io.BytesIO()
    paths = ["a/img.v2.final.jpg", "b/img.v2.final.jpg", "c/ü ber (1).png", ".hidden", ""]
    with WebDatasetShardWriter(stream, shard=7) as writer:
        for i, path in enumerate(paths):
            writer.write(webdataset_sample(b"JPEG%d" % i, 1, 1, 3, i, "c", path))
    (tmp_path / "s.tar").write_bytes(stream.getvalue())
    samples = list(wds.WebDataset(str(tmp_path / "s.tar"), shardshuffle=False))
    assert [s["jpg"] for s in samples] == [b"JPEG%d" % i for i in range(5)]
    keys = [s["__key__"] for s in samples]
    assert keys[0] == "00007-000000-img_v2_final" and keys[1] == "00007-000001-img_v2_final"
    assert len(set(keys)) == 5 and not any("." in k or " " in k for k in keys)
    assert writer.bytes == len(stream.getvalue()) and writer.records == 5


def test_index_files_and_one_based_labels_are_refused_with_webdataset(dataset, tmp_path):
    with pytest.raises(ValueError, match="--index-files is for TFRecord"):
        convert(dataset, tmp_path / "out", "--format", "webdataset", "--index-files")
    with pytest.raises(ValueError, match="take .cls as the 0-based class index"):
        convert(dataset, tmp_path / "out", "--format", "webdataset", "--label-offset", "1")
    assert not os.path.exists(tmp_path / "out")


def test_boxes_go_into_the_json_member(tmp_path):
    stream = io.BytesIO()
    with WebDatasetShardWriter(stream, shard=0) as writer:
        writer.write(webdataset_sample(b"x", 4, 8, 3, 2, "n1", "n1/a.JPEG", [(0.1, 0.2, 0.5, 1.0)]))
        writer.write(webdataset_sample(b"y", 4, 8, 3, 2, "n1", "n1/b.JPEG", []))
    with tarfile.open(fileobj=io.BytesIO(stream.getvalue())) as archive:
        metas = [
            json.loads(archive.extractfile(m).read())
            for m in archive.getmembers()
            if m.name.endswith(".json")
        ]
    assert metas[0]["boxes"] == [[0.1, 0.2, 0.5, 1.0]] and metas[1]["boxes"] == []
    assert (metas[0]["width"], metas[0]["height"], metas[0]["label"]) == (8, 4, 2)


@pytest.mark.slow
def test_two_worker_processes_write_the_same_bytes(dataset, outputs, tmp_path):
    reference, _, _ = outputs
    out = tmp_path / "procs"
    convert(
        dataset,
        out,
        *FLAGS,
        "--format",
        "webdataset",
        runner=["--direct_num_workers=2", "--direct_running_mode=multi_processing"],
    )
    assert all_files(out) == all_files(reference)


def test_overwriting_with_another_format_leaves_no_tars_nor_their_reader_files(dataset, tmp_path):
    out = tmp_path / "out"
    convert(dataset, out, *FLAGS, "--format", "webdataset")
    (out / "other").mkdir()
    convert(dataset, out, *FLAGS, "--overwrite")
    left = sorted(n for n in os.listdir(out) if not n.startswith("."))
    assert left == [
        "dataset.json",
        "labels.txt",
        "other",
        *[f"train-0000{i}-of-00003.tfrecord" for i in range(3)],
        "train-rejected.jsonl",
    ]


@pytest.mark.gcs
def test_on_gcs_the_same_tars_and_reader_files_and_the_audit_passes(
    gcs_bucket, dataset, outputs, tmp_path
):
    from helpers import read, upload
    from imgshard.audit import audit, webdataset_readers

    reference, _, _ = outputs
    remote = f"gs://{gcs_bucket}/wds-images"
    upload(os.path.dirname(dataset), remote)
    out = f"gs://{gcs_bucket}/wds-out"
    convert(f"{remote}/train.txt", out, *FLAGS, "--format", "webdataset")
    for name in [*map(os.path.basename, tars(reference)), "_info.json", "train.wids.json"]:
        assert read(f"{out}/{name}") == (reference / name).read_bytes()
    report = audit(out, decode=True, readers=webdataset_readers(0)).report
    assert report["verdict"] == "PASS", report["failures"]
    assert report["integrity"]["webdataset"]["reader_files"]["checked"] == [
        "_info.json",
        "train.wids.json",
    ]


def test_the_plan_names_the_tars_it_would_write(dataset, outputs, tmp_path):
    _, result, _ = outputs
    plan = convert(dataset, tmp_path / "plan", *FLAGS, "--format", "webdataset", "--plan").plan
    assert [(s["name"], s["records"]) for s in plan["shards"]] == [
        (s["name"], s["records"]) for s in result.metadata["shards"]
    ]


def test_boxes_reach_the_json_member_and_the_audit_end_to_end(dataset, tmp_path):
    import webdataset as wds

    from helpers import write
    from imgshard.audit import audit
    from imgshard.transforms.example import decode_example

    xml = tmp_path / "xml"
    write(
        str(xml / "n00000002_3.xml"),
        b"<annotation><size><width>24</width><height>24</height></size><object><name>x</name>"
        b"<bndbox><xmin>6</xmin><ymin>0</ymin><xmax>18</xmax><ymax>12</ymax></bndbox>"
        b"</object></annotation>",
    )
    wds_out, tfr_out = tmp_path / "wds", tmp_path / "tfr"
    convert(dataset, wds_out, *FLAGS, "--boxes", str(xml), "--format", "webdataset")
    convert(dataset, tfr_out, *FLAGS, "--boxes", str(xml))
    boxes = {}
    for sample in wds.WebDataset(tars(wds_out), shardshuffle=False):
        meta = json.loads(sample["json"])
        boxes[meta["path"]] = meta["boxes"]
    assert boxes.pop("n00000002/n00000002_3.JPEG") == [[0.25, 0.0, 0.75, 0.5]]
    assert set(map(len, boxes.values())) == {0} and len(boxes) == 35
    record = next(
        decode_example(r)
        for p in shard_files(str(tfr_out))
        for r in iter_records(open(p, "rb"))
        if decode_example(r)["image/filename"][0] == b"n00000002/n00000002_3.JPEG"
    )
    assert [record[f"image/object/bbox/{k}"][0] for k in ("xmin", "ymin", "xmax", "ymax")] == [
        0.25,
        0.0,
        0.75,
        0.5,
    ]
    report = audit(str(wds_out)).report
    assert report["integrity"]["boxes"] == {
        "records": 1,
        "boxes": 1,
        "records_with_box_features": 36,
    }
    assert report["verdict"] == "PASS", report["failures"]
