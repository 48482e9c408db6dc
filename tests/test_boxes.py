"""--boxes: ILSVRC bounding boxes read from VOC XML or CSV, carried through the converter's
geometry, written as tf/models' build_imagenet_data.py writes them, checked by the audit."""

import io
import os

import numpy as np
import pytest
from PIL import Image

from helpers import convert, encode, read_examples, sorted_dataset, write
from imgshard.audit import audit
from imgshard.pipeline.demo_data import boxes_folder, write_digits
from imgshard.transforms.boxes import BoxesError, read_boxes, transform_boxes
from imgshard.transforms.example import decode_example, encode_example, image_example
from imgshard.transforms.tfrecord import TFRecordWriter, iter_records

BOX_KEYS = [f"image/object/bbox/{k}" for k in ("xmin", "ymin", "xmax", "ymax")]


def voc(width, height, *boxes, name="x"):
    objects = "".join(
        f"<object><name>{name}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for b in boxes
    )
    return (
        f"<annotation><filename>{name}</filename><size><width>{width}</width>"
        f"<height>{height}</height></size>{objects}</annotation>"
    ).encode()


def f32(*values):
    return tuple(float(np.float32(v)) for v in values)


# --- the record features ----------------------------------------------------------------


def test_box_features_are_byte_identical_to_tensorflows_and_parse_like_tf_models():
    import tensorflow as tf

    def theirs(boxes, label):
        columns = list(zip(*boxes, strict=True)) if boxes else [[], [], [], []]
        feature = {
            "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"jpeg"])),
            "image/format": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"JPEG"])),
            "image/height": tf.train.Feature(int64_list=tf.train.Int64List(value=[30])),
            "image/width": tf.train.Feature(int64_list=tf.train.Int64List(value=[40])),
            "image/channels": tf.train.Feature(int64_list=tf.train.Int64List(value=[3])),
            "image/colorspace": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"RGB"])),
            "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
            "image/class/synset": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"n1"])),
            "image/filename": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"a.JPEG"])),
            "image/object/bbox/label": tf.train.Feature(
                int64_list=tf.train.Int64List(value=[label] * len(boxes))
            ),
        }
        for key, column in zip(BOX_KEYS, columns, strict=True):
            feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=column))
        example = tf.train.Example(features=tf.train.Features(feature=feature))
        return example.SerializeToString(deterministic=True)

    for boxes in ([(0.1, 0.2, 0.7, 0.9), (0.0, 0.5, 1.0, 0.75)], []):
        ours = image_example(b"jpeg", 30, 40, 3, 7, "n1", "a.JPEG", boxes)
        assert ours == theirs(boxes, 7)
    # tf/models' Inception parser reads them as sparse floats
    spec = {key: tf.io.VarLenFeature(tf.float32) for key in BOX_KEYS}
    parsed = tf.io.parse_single_example(
        image_example(b"jpeg", 30, 40, 3, 7, "n1", "a.JPEG", [(0.1, 0.2, 0.7, 0.9)]), spec
    )
    assert [parsed[k].values.numpy().tolist() for k in BOX_KEYS] == [
        [v] for v in f32(0.1, 0.2, 0.7, 0.9)
    ]


def test_without_boxes_the_record_has_exactly_the_original_features():
    record = decode_example(image_example(b"jpeg", 30, 40, 3, 7, "n1", "a.JPEG"))
    assert not [k for k in record if k.startswith("image/object")]
    assert len(record) == 9


# --- reading the sources -----------------------------------------------------------------


def test_voc_xml_boxes_are_normalized_by_their_size_clipped_and_ordered(tmp_path):
    folder = tmp_path / "bbox"
    write(str(folder / "n01" / "n01_1.xml"), voc(200, 100, (20, 10, 100, 50), (150, 90, 250, 30)))
    write(str(folder / "n01" / "n01_2.xml"), voc(200, 100, (50, 50, 50, 80)))  # no area
    write(str(folder / "val_3.xml"), voc(10, 10, (0, 0, 10, 10)))  # the flat validation layout
    found = dict(read_boxes(str(folder)))
    assert found == {
        "n01_1": (f32(0.1, 0.1, 0.5, 0.5), f32(0.75, 0.3, 1.0, 0.9)),
        "n01_2": (),
        "val_3": (f32(0, 0, 1, 1),),
    }


def test_the_csv_of_process_bounding_boxes_is_read_and_grouped_by_image(tmp_path):
    path = write(
        str(tmp_path / "boxes.csv"),
        b"n00007846_64193.JPEG,0.0060,0.2620,0.7545,0.9940\n"
        b"n00007846_64193.JPEG,0.5,0.5,0.6,0.6\n"
        b"n01_2.JPEG,0.2,0.1,0.1,0.3\n",
    )
    found = dict(read_boxes(path))
    assert found == {
        "n00007846_64193": (f32(0.006, 0.262, 0.7545, 0.994), f32(0.5, 0.5, 0.6, 0.6)),
        "n01_2": (f32(0.1, 0.1, 0.2, 0.3),),
    }


def test_boxes_of_one_image_in_several_files_are_merged_in_a_fixed_order(tmp_path):
    folder = tmp_path / "bbox"
    write(str(folder / "b" / "img.xml"), voc(100, 100, (50, 50, 90, 90)))
    write(str(folder / "a" / "img.xml"), voc(100, 100, (10, 10, 40, 40)))
    expected = (f32(0.1, 0.1, 0.4, 0.4), f32(0.5, 0.5, 0.9, 0.9))
    assert dict(read_boxes(str(folder))) == {"img": expected}
    # the job reads the files in parallel and merges them the same way
    write(str(tmp_path / "d" / "c" / "img.jpg"), encode(Image.new("RGB", (100, 100)), "JPEG"))
    write(str(tmp_path / "d" / "train.txt"), b"c/img.jpg c\n")
    convert(tmp_path / "d" / "train.txt", tmp_path / "out", "--boxes", str(folder))
    (record,) = read_examples(str(tmp_path / "out"))
    assert list(zip(*(record[k] for k in BOX_KEYS), strict=True)) == list(expected)


@pytest.mark.parametrize(
    "name,data,message",
    [
        ("bad.csv", b"a.JPEG,0.1,0.2,0.3\n", r"bad.csv line 1: expected 'file name,xmin"),
        ("bad.csv", b"a.JPEG,0.1,0.2,0.3,0.4\nb.JPEG,x,0,1,1\n", "line 2: the corners are not"),
        ("xml/a/b.xml", b"<annotation><size>", "b.xml: not well-formed XML"),
        ("xml/a/b.xml", voc("w", 10, (0, 0, 1, 1)), r"b.xml: <width> is 'w', not a number"),
        ("xml/a/b.xml", b"<annotation/>", "b.xml: no <size>"),
    ],
)
def test_an_unreadable_boxes_source_is_a_clear_error(tmp_path, name, data, message):
    write(str(tmp_path / name), data)
    source = tmp_path / ("bad.csv" if name.endswith(".csv") else "xml")
    with pytest.raises(BoxesError, match=message):
        list(read_boxes(str(source)))


def test_a_missing_boxes_source_stops_the_run_before_it_starts(tmp_path):
    list_path = sorted_dataset(str(tmp_path / "d"), classes=2, per_class=2)
    for source, message in [("nothing.csv", "cannot be read"), ("empty", "holds no \\*.xml")]:
        os.makedirs(tmp_path / "empty", exist_ok=True)
        with pytest.raises(BoxesError, match=message):
            convert(list_path, tmp_path / "out", "--boxes", str(tmp_path / source))
        assert not os.path.exists(tmp_path / "out")


# --- geometry ----------------------------------------------------------------------------


def red_region(record) -> tuple[float, float, float, float]:
    """The normalized bounding box of the clearly red pixels of a record's image."""
    pixels = np.asarray(Image.open(io.BytesIO(record["image/encoded"])).convert("RGB")).astype(int)
    red = (pixels[..., 0] > 150) & (pixels[..., 1] < 100) & (pixels[..., 2] < 100)
    rows, cols = np.flatnonzero(red.any(axis=1)), np.flatnonzero(red.any(axis=0))
    h, w = red.shape
    return cols[0] / w, rows[0] / h, (cols[-1] + 1) / w, (rows[-1] + 1) / h


@pytest.mark.parametrize(
    "orientation,resize",
    [(o, "fixed:40x40") for o in range(1, 9)] + [(1, "shorter:48"), (6, "shorter:48")],
)
def test_boxes_follow_exif_orientation_resize_and_center_crop(tmp_path, orientation, resize):
    # a red rectangle on gray, its box given in the stored pixels, shown through EXIF
    stored = Image.new("RGB", (160, 96), (128, 128, 128))
    stored.paste((220, 20, 20), (40, 8, 100, 40))
    exif = Image.Exif()
    exif[0x0112] = orientation
    write(str(tmp_path / "d" / "c" / "img.jpg"), encode(stored, "JPEG", quality=95, exif=exif))
    write(str(tmp_path / "d" / "train.txt"), b"c/img.jpg c\n")
    write(str(tmp_path / "boxes" / "c" / "img.xml"), voc(160, 96, (40, 8, 100, 40)))

    convert(
        tmp_path / "d" / "train.txt",
        tmp_path / "out",
        "--resize",
        resize,
        "--boxes",
        str(tmp_path / "boxes"),
        "--num-shards",
        "1",
    )

    (record,) = read_examples(str(tmp_path / "out"))
    box = [record[k] for k in BOX_KEYS]
    assert box == pytest.approx(red_region(record), abs=0.04)
    assert record["image/object/bbox/label"] == record["image/class/label"]


def test_a_center_crop_clips_boxes_and_drops_those_left_outside():
    crop = (0.25, 0.0, 0.75, 1.0)  # fixed:WxH of a 2:1 image keeps its middle half
    boxes = ((0.0, 0.1, 0.2, 0.3), (0.0, 0.1, 0.5, 0.3), (0.3, 0.4, 0.6, 0.5))
    assert transform_boxes(boxes, 1, crop) == [f32(0.0, 0.1, 0.5, 0.3), f32(0.1, 0.4, 0.7, 0.5)]


# --- end to end on the demo data ---------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("demo") / "digits")
    return write_digits(root, per_class=6), boxes_folder(root)


def test_demo_boxes_reach_every_record_and_pass_the_audit(demo, tmp_path):
    list_path, boxes = demo
    expected = dict(read_boxes(boxes))
    result = convert(
        list_path,
        tmp_path / "out",
        "--resize",
        "shorter:32",
        "--boxes",
        boxes,
        "--label-offset",
        "1",
        "--num-shards",
        "4",
    )
    records = read_examples(str(tmp_path / "out"))
    assert len(records) == 60
    for record in records:
        stem = os.path.basename(record["image/filename"].decode()).rsplit(".", 1)[0]
        (box,) = expected[stem]  # shorter: scales the whole image: normalized boxes stay put
        assert tuple(record[k] for k in BOX_KEYS) == box
        assert record["image/object/bbox/label"] == record["image/class/label"]
    assert result.metadata["schema"]["image/object/bbox/xmin"] == "float list"
    report = audit(str(tmp_path / "out")).report
    assert report["verdict"] == "PASS"
    assert report["integrity"]["boxes"] == {
        "records": 60,
        "boxes": 60,
        "records_with_box_features": 60,
    }
    assert result.counters["records_with_boxes"] == 60


def test_images_without_boxes_get_empty_box_lists(demo, tmp_path):
    list_path, _ = demo
    csv_path = write(str(tmp_path / "one.csv"), b"0000.jpg,0.1,0.2,0.3,0.4\n")
    result = convert(list_path, tmp_path / "out", "--resize", "shorter:32", "--boxes", csv_path)
    assert result.counters["records_with_boxes"] == 1  # the summary says how many matched
    boxes = audit(str(tmp_path / "out")).report["integrity"]["boxes"]
    assert boxes == {"records": 1, "boxes": 1, "records_with_box_features": 60}
    records = {r["image/filename"]: r for r in read_examples(str(tmp_path / "out"))}
    assert records[b"0/0000.jpg"]["image/object/bbox/xmin"] == pytest.approx(0.1)
    others = [r for name, r in records.items() if name != b"0/0000.jpg"]
    assert len(others) == 59
    assert all(
        r["image/object/bbox/xmin"] == [] and r["image/object/bbox/label"] == [] for r in others
    )


def test_changed_boxes_are_never_resumed_into(demo, tmp_path):
    from imgshard.pipeline import ConversionError

    list_path, _ = demo
    csv_path = write(str(tmp_path / "b.csv"), b"0000.jpg,0.1,0.2,0.3,0.4\n")
    convert(list_path, tmp_path / "out", "--boxes", csv_path, "--resize", "shorter:32")
    write(csv_path, b"0000.jpg,0.1,0.2,0.3,0.5\n")
    with pytest.raises(ConversionError, match="boxes_sha256"):
        convert(
            list_path, tmp_path / "out", "--boxes", csv_path, "--resize", "shorter:32", "--resume"
        )


def test_the_audit_fails_boxes_outside_the_image_or_without_area(tmp_path):
    def record(xmin, xmax):
        from imgshard.transforms.example import Floats

        return encode_example(
            {
                "image/class/label": 1,
                "image/object/bbox/xmin": Floats([xmin]),
                "image/object/bbox/ymin": Floats([0.1]),
                "image/object/bbox/xmax": Floats([xmax]),
                "image/object/bbox/ymax": Floats([0.9]),
                "image/object/bbox/label": [1],
            }
        )

    out = tmp_path / "foreign"
    os.makedirs(out)
    for n, (xmin, xmax) in enumerate([(0.1, 0.5)] * 40 + [(0.6, 0.5), (0.2, 1.25)]):
        with open(out / f"part-{n:03d}.tfrecord", "wb") as f:
            TFRecordWriter(f).write(record(xmin, xmax))
    report = audit(str(out)).report
    assert report["verdict"] == "FAIL"
    assert report["integrity"]["errors"] == {"boxes": 2}
    details = [e["detail"] for e in report["integrity"]["first_errors"]]
    assert "box 0 (0.6, 0.1, 0.5, 0.9) has no area" in details[0]
    assert "box 0 (0.2, 0.1, 1.25, 0.9) is not inside [0, 1]" == details[1]
    assert [decode_example(r) for r in iter_records(open(out / "part-000.tfrecord", "rb"))]


# --- the box source checked, mismatches and malformed files reported -------------------------


def test_an_xml_edited_in_place_with_the_same_size_changes_the_run_identity(tmp_path):
    from imgshard.transforms.boxes import boxes_source_sha256

    path = write(str(tmp_path / "xml" / "c" / "img.xml"), voc(100, 100, (20, 20, 60, 60)))
    before = boxes_source_sha256(str(tmp_path / "xml"))
    stat = os.stat(path)
    write(path, voc(100, 100, (30, 20, 60, 60)))  # the same size, another box
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # edited later
    assert os.path.getsize(path) == stat.st_size
    assert boxes_source_sha256(str(tmp_path / "xml")) != before


@pytest.mark.parametrize(
    "rows,message",
    [
        (
            b"0000.jpg,0.1,0.1,0.5,0.4\nn02_outside.JPEG,10,10,50,40\n",
            r"px.csv line 2: the corners",
        ),
        (b"0000.jpg,0.1,0.1,0.5\n", r"px.csv line 1: expected 'file name,xmin"),
    ],
)
def test_a_bad_csv_row_stops_the_run_before_it_starts(tmp_path, rows, message):
    list_path = sorted_dataset(str(tmp_path / "d"), classes=2, per_class=2)
    csv_path = write(str(tmp_path / "px.csv"), rows)
    with pytest.raises(BoxesError, match=message):
        convert(list_path, tmp_path / "out", "--boxes", csv_path)
    assert not os.path.exists(tmp_path / "out")  # no journal: the rerun needs no --overwrite


def test_pixel_corners_in_the_csv_name_the_file_line_and_the_cause(tmp_path):
    path = write(str(tmp_path / "px.csv"), b"n02_outside.JPEG,10,10,50,40\n")
    with pytest.raises(BoxesError, match=r"px.csv line 1: .* not within \[0, 1\].*not pixels"):
        list(read_boxes(path))


def test_boxes_that_match_no_image_are_a_loud_warning(tmp_path, capsys):
    from helpers import IN_PROCESS
    from imgshard.pipeline.cli import main

    list_path = sorted_dataset(str(tmp_path / "d"), classes=2, per_class=2)
    csv_path = write(str(tmp_path / "b.csv"), b"other.JPEG,0.1,0.2,0.3,0.4\n")
    argv = ["convert", "--input", list_path, "--output", str(tmp_path / "out")]
    assert main([*argv, "--boxes", csv_path, *IN_PROCESS]) == 0
    out, err = capsys.readouterr()
    assert "WARNING    --boxes" in out and "matched none of the 4 images" in out
    assert f"imgshard convert: warning: --boxes {csv_path} matched none" in err


def test_malformed_xml_files_are_skipped_counted_and_named_never_losing_images(tmp_path):
    import subprocess

    from helpers import IMGSHARD, IN_PROCESS

    list_path = sorted_dataset(str(tmp_path / "d"), classes=2, per_class=2)
    names = sorted(line.split()[0] for line in open(list_path))
    stem = lambda name: os.path.splitext(os.path.basename(name))[0]  # noqa: E731
    xml = tmp_path / "xml"
    write(str(xml / f"{stem(names[0])}.xml"), voc(10, 10, (1, 1, 5, 5)))
    write(str(xml / f"{stem(names[1])}.xml"), b"<annotation><size>")
    write(str(xml / f"{stem(names[2])}.xml"), b"<annotation/>")
    done = subprocess.run(
        [IMGSHARD, "convert", "--input", list_path, "--output", str(tmp_path / "out")]
        + ["--boxes", str(xml), *IN_PROCESS],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert f"{stem(names[1])}.xml: not well-formed XML" in done.stderr
    assert f"{stem(names[2])}.xml: no <size>" in done.stderr
    assert "box_files_skipped=2" in done.stdout and "2 annotation files" in done.stderr
    records = read_examples(str(tmp_path / "out"))
    assert len(records) == 4  # every image written
    assert sum(bool(r["image/object/bbox/xmin"]) for r in records) == 1
