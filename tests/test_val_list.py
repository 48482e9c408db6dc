"""imgshard val-list: ILSVRC2012 validation as downloaded (a flat folder of
ILSVRC2012_val_*.JPEG and Kaggle's CSV, the bounding-box XML files, or the devkit's ground
truth with meta.mat) -> a list whose classes get the train split's ids.

Small versions of all three forms are generated from one truth; meta.mat (written with scipy)
numbers the classes in an order that is not the sorted one, as the real one does."""

import io
import os
import random

import numpy as np
import pytest

from helpers import IMGSHARD, class_color_jpeg, convert, sorted_dataset, write
from imgshard.pipeline.val_list import main as val_list_main
from imgshard.pipeline.val_list import val_list
from imgshard.transforms.val_labels import ValLabelsError

CLASSES, IMAGES = 6, 36
SYNSETS = [f"n{label:08d}" for label in range(CLASSES)]  # sorted_dataset(names=True)'s
META_ORDER = [SYNSETS[i] for i in (3, 0, 5, 1, 4, 2)]  # the devkit's ids 1..6


def truth():
    rng = random.Random(3)
    labels = [i % CLASSES for i in range(IMAGES)]
    rng.shuffle(labels)
    return {f"ILSVRC2012_val_{i + 1:08d}": SYNSETS[label] for i, label in enumerate(labels)}


def write_meta_mat(path, order, extra_parents=2):
    """The devkit's meta.mat shape: a synsets struct, leaves with ILSVRC2012_ID 1..N first,
    then parent synsets (num_children > 0) with larger ids."""
    from scipy.io import savemat

    fields = [
        "ILSVRC2012_ID",
        "WNID",
        "words",
        "gloss",
        "num_children",
        "children",
        "wordnet_height",
        "num_train_images",
    ]
    rows = [(i + 1, wnid, 0) for i, wnid in enumerate(order)]
    rows += [(len(order) + 1 + j, f"n0999999{j}", 3) for j in range(extra_parents)]
    synsets = np.zeros((len(rows), 1), dtype=[(f, "O") for f in fields])
    for k, (number, wnid, children) in enumerate(rows):
        synsets[k, 0] = (
            np.array([[number]], dtype=np.uint16),
            wnid,
            f"words {wnid}",
            "gloss",
            np.array([[children]], dtype=np.uint8),
            np.arange(1, children + 1, dtype=np.uint16).reshape(1, -1),
            np.array([[0]], dtype=np.uint8),
            np.array([[1300]], dtype=np.uint16),
        )
    savemat(path, {"synsets": synsets})
    return path


@pytest.fixture(scope="module")
def download(tmp_path_factory):
    """The validation folder and its three label sources, as downloaded."""
    root = tmp_path_factory.mktemp("ilsvrc")
    labels = truth()
    for image_id, synset in labels.items():
        write(str(root / "val" / f"{image_id}.JPEG"), class_color_jpeg(SYNSETS.index(synset)))
    csv_lines = ["ImageId,PredictionString"]
    for image_id, synset in sorted(labels.items(), key=lambda kv: kv[0][::-1]):  # any order
        csv_lines.append(f"{image_id},{synset} 10 20 30 40 {synset} 1 2 3 4 ")
    (root / "LOC_val_solution.csv").write_text("\n".join(csv_lines) + "\n")
    for image_id, synset in labels.items():
        objects = "".join(
            f"<object><name>{synset}</name><bndbox><xmin>1</xmin><ymin>1</ymin>"
            f"<xmax>9</xmax><ymax>9</ymax></bndbox></object>"
            for _ in range(2)
        )
        write(
            str(root / "bbox" / f"{image_id}.xml"),
            f"<annotation><filename>{image_id}</filename>{objects}</annotation>".encode(),
        )
    (root / "ground_truth.txt").write_text(
        "".join(f"{META_ORDER.index(labels[i]) + 1}\n" for i in sorted(labels))
    )
    write_meta_mat(str(root / "meta.mat"), META_ORDER)
    return root, labels


@pytest.fixture(scope="module")
def train(tmp_path_factory):
    """A train split of the same synsets, each class its own color (sorted_dataset's)."""
    lst = sorted_dataset(str(tmp_path_factory.mktemp("t")), CLASSES, per_class=4, names=True)
    out = tmp_path_factory.mktemp("train_out")
    convert(lst, out, "--num-shards", "2", "--resize", "none")
    return out


def expected_lines(labels):
    return "".join(f"{i}.JPEG {labels[i]}\n" for i in sorted(labels))


@pytest.mark.parametrize("form", ["kaggle csv", "bbox xml", "devkit + meta.mat"])
def test_each_label_source_gives_the_same_list(download, train, tmp_path, form):
    root, labels = download
    source, meta = {
        "kaggle csv": (root / "LOC_val_solution.csv", None),
        "bbox xml": (root / "bbox", None),
        "devkit + meta.mat": (root / "ground_truth.txt", root / "meta.mat"),
    }[form]
    out = tmp_path / "val.txt"
    rows = val_list(str(root / "val"), str(source), str(train), str(out), meta and str(meta))
    assert len(rows) == IMAGES
    assert out.read_text() == expected_lines(labels)


def test_devkit_ids_follow_meta_mat_not_the_sorted_order(download, train, tmp_path):
    root, labels = download
    ids = [int(x) for x in (root / "ground_truth.txt").read_text().split()]
    as_sorted = [SYNSETS[i - 1] for i in ids]  # the classic bug: devkit ids as train ids
    correct = [labels[i] for i in sorted(labels)]
    assert sum(a == b for a, b in zip(as_sorted, correct, strict=True)) < IMAGES / 2
    out = tmp_path / "val.txt"
    val_list(
        str(root / "val"),
        str(root / "ground_truth.txt"),
        str(train),
        str(out),
        str(root / "meta.mat"),
    )
    assert [line.split()[1] for line in out.read_text().splitlines()] == correct


def test_validation_shards_get_the_train_ids_end_to_end(download, train, tmp_path):
    """val-list, then convert with the train labels: every record's id is the train id of its
    class, which the image's color proves (each class has its own color in both splits)."""
    import webdataset as wds
    from PIL import Image

    root, _ = download
    listed = tmp_path / "val.txt"
    code = val_list_main(
        [
            "--images", str(root / "val"),
            "--ground-truth", str(root / "ground_truth.txt"),
            "--meta", str(root / "meta.mat"),
            "--train-labels", str(train),
            "--output", str(listed),
        ]
    )  # fmt: skip
    assert code == 0
    out = tmp_path / "validation"
    result = convert(
        listed,
        out,
        "--image-root", str(root / "val"),
        "--labels", str(train / "labels.txt"),
        "--split", "validation",
        "--num-shards", "2",
        "--resize", "none",
        "--format", "webdataset",
    )  # fmt: skip
    assert result.metadata["num_records"] == IMAGES and result.metadata["num_rejected"] == 0
    assert (out / "labels.txt").read_text() == (train / "labels.txt").read_text()
    train_names = (train / "labels.txt").read_text().split()
    tars = sorted(str(out / n) for n in os.listdir(out) if n.endswith(".tar"))
    samples = list(wds.WebDataset(tars, shardshuffle=False))
    assert len(samples) == IMAGES
    for sample in samples:
        label = int(sample["cls"])
        color = Image.open(io.BytesIO(sample["jpg"])).getpixel((5, 5))
        train_color = Image.open(
            io.BytesIO(class_color_jpeg(SYNSETS.index(train_names[label])))
        ).getpixel((5, 5))
        assert color == train_color


def test_a_ground_truth_without_meta_mat_is_refused(download, train, tmp_path):
    root, _ = download
    with pytest.raises(ValLabelsError, match="meta.mat's order"):
        val_list(str(root / "val"), str(root / "ground_truth.txt"), str(train), str(tmp_path / "v"))
    assert not (tmp_path / "v").exists()


def test_bad_ground_truth_files_are_refused_with_their_line(download, train, tmp_path):
    root, _ = download
    bad = tmp_path / "gt.txt"
    lines = (root / "ground_truth.txt").read_text().splitlines()
    bad.write_text("\n".join([*lines[:4], str(CLASSES + 1), *lines[5:]]) + "\n")
    with pytest.raises(ValLabelsError, match=r"gt.txt line 5: '7' is not a class id 1..6"):
        val_list(
            str(root / "val"), str(bad), str(train), str(tmp_path / "v"), str(root / "meta.mat")
        )
    short = tmp_path / "short.txt"
    short.write_text("\n".join(lines[:-2]) + "\n")
    with pytest.raises(ValLabelsError, match="2 images have no label: ILSVRC2012_val_00000035"):
        val_list(
            str(root / "val"), str(short), str(train), str(tmp_path / "v"), str(root / "meta.mat")
        )
    odd = tmp_path / "odd.csv"
    odd.write_text("ImageId,PredictionString\nILSVRC2012_val_00000001,n00000001 1 2 3\n")
    with pytest.raises(ValLabelsError, match="odd.csv line 2: not 'synset xmin ymin xmax ymax'"):
        val_list(str(root / "val"), str(odd), str(train), str(tmp_path / "v"))
    csv = tmp_path / "wrong.csv"
    csv.write_text("id,label\nILSVRC2012_val_00000001,n00000001\n")
    with pytest.raises(ValLabelsError, match="ImageId,PredictionString"):
        val_list(str(root / "val"), str(csv), str(train), str(tmp_path / "v"))
    meta = write_meta_mat(str(tmp_path / "meta.mat"), META_ORDER[:-1] + [META_ORDER[0]])
    with pytest.raises(ValLabelsError, match=f"WNIDs listed twice: {META_ORDER[0]}"):
        val_list(
            str(root / "val"), str(root / "ground_truth.txt"), str(train), str(tmp_path / "v"), meta
        )
    garbage = tmp_path / "garbage.mat"
    garbage.write_bytes(b"MATLAB 5.0 MAT-file" + b"\0" * 40)
    for bad_meta, message in [
        (tmp_path / "absent.mat", "absent.mat: cannot be read"),
        (garbage, "garbage.mat: not the devkit's meta.mat"),
    ]:
        with pytest.raises(ValLabelsError, match=message):
            val_list(
                str(root / "val"),
                str(root / "ground_truth.txt"),
                str(train),
                str(tmp_path / "v"),
                str(bad_meta),
            )
    mixed = tmp_path / "xml"
    mixed.mkdir()
    (mixed / "ILSVRC2012_val_00000001.xml").write_text(
        "<annotation><object><name>n00000001</name></object>"
        "<object><name>n00000002</name></object></annotation>"
    )
    with pytest.raises(ValLabelsError, match="objects of several classes"):
        val_list(str(root / "val"), str(mixed), str(train), str(tmp_path / "v"))
    assert not (tmp_path / "v").exists()


def test_classes_that_do_not_match_the_train_vocabulary_are_refused_by_name(download, tmp_path):
    root, _ = download
    source = str(root / "LOC_val_solution.csv")
    fewer = tmp_path / "fewer.txt"
    fewer.write_text("".join(f"{s}\n" for s in SYNSETS if s != "n00000004"))
    with pytest.raises(
        ValLabelsError, match="1 validation classes are not in the train vocabulary of 5: n00000004"
    ):
        val_list(str(root / "val"), source, str(fewer), str(tmp_path / "v"))
    more = tmp_path / "more.txt"
    more.write_text("".join(f"{s}\n" for s in [*SYNSETS, "n00000099"]))
    with pytest.raises(
        ValLabelsError, match="1 of the 7 train classes have no validation image: n00000099"
    ):
        val_list(str(root / "val"), source, str(more), str(tmp_path / "v"))
    assert not (tmp_path / "v").exists()
    val_list(str(root / "val"), source, str(more), str(tmp_path / "v"), allow_missing_classes=True)
    ints = tmp_path / "ints.txt"
    ints.write_text("".join(f"{i}\n" for i in range(CLASSES)))
    with pytest.raises(ValLabelsError, match="not WordNet synsets"):
        val_list(str(root / "val"), source, str(ints), str(tmp_path / "v2"))


def test_the_command_prints_the_next_step_and_exits_2_on_refusal(download, train, tmp_path):
    import subprocess

    root, _ = download
    args = [IMGSHARD, "val-list", "--images", str(root / "val"), "--train-labels", str(train)]
    done = subprocess.run(
        [*args, "--ground-truth", str(root / "bbox"), "--output", str(tmp_path / "v.txt")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert f"{IMAGES} images of {CLASSES} classes (6-6 each)" in done.stdout
    assert "--split validation" in done.stdout and f"--labels {train}/labels.txt" in done.stdout
    refused = subprocess.run(
        [*args, "--ground-truth", str(root / "ground_truth.txt"), "--output", str(tmp_path / "w")],
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 2 and "--meta" in refused.stderr
