"""imgshard audit --sheet: records sampled evenly across the shards, drawn as stored, with
class name and size."""

import io
import os

import numpy as np
import pytest
from PIL import Image

from helpers import IMGSHARD, class_color_jpeg, convert, shard_files, sorted_dataset
from imgshard.audit import main as audit_main
from imgshard.audit.contact_sheet import THUMB, draw_contact_sheet, sample_positions


def test_samples_are_evenly_spaced_over_all_records_and_every_shard():
    counts = [5, 0, 7, 4, 4]
    positions = sample_positions(counts, 10)
    assert positions == sample_positions(counts, 10)  # deterministic
    assert len(set(positions)) == 10
    assert all(0 <= index < counts[shard] for shard, index in positions)
    per_shard = [sum(s == i for s, _ in positions) for i in range(len(counts))]
    assert per_shard == [2, 0, 4, 2, 2]  # in proportion to the shards' sizes
    assert len(sample_positions(counts, 100)) == 20  # never more than there are


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("d")
    list_path = sorted_dataset(str(root), classes=4, per_class=6, names=True)
    out = root / "out"
    convert(list_path, out, "--num-shards", "3", "--resize", "none")
    return out


def test_each_cell_shows_its_record_with_class_name_and_size(shards, tmp_path):
    paths = shard_files(str(shards))
    from imgshard.audit.shard_scan import iter_shard_records

    counted = [(p, sum(1 for _ in iter_shard_records(p))) for p in paths]
    sheet = tmp_path / "sheet.png"
    cells = draw_contact_sheet(counted, str(sheet), n=6)

    assert len(cells) == 6 and len({c.shard for c in cells}) == 3
    drawn = np.asarray(Image.open(sheet).convert("RGB")).astype(int)
    for i, cell in enumerate(cells):
        label = int(cell.class_name[1:])  # sorted_dataset's names: n00000000, n00000001 ...
        assert cell.caption == [f"n{label:08d} ({label})", "24x24"]
        # the middle of the cell's thumbnail has the class's color, as the record stores it
        expected = np.asarray(Image.open(io.BytesIO(class_color_jpeg(label))))
        x, y = (i % 6) * (THUMB + 12) + 6 + THUMB // 2, 6 + THUMB // 2
        assert np.abs(drawn[y, x] - expected[12, 12]).max() <= 3


def test_the_cli_writes_the_same_sheet_every_time_and_refuses_zero_records(shards, tmp_path):
    import subprocess

    first, second = tmp_path / "a.png", tmp_path / "b.png"
    for out in (first, second):
        done = subprocess.run(
            [
                IMGSHARD,
                "audit",
                str(shards),
                "--no-reader-order",
                "--sheet",
                str(out),
                "--sheet-records",
                "5",
            ],
            capture_output=True,
        )
        assert done.returncode == 0, done.stderr
    assert first.read_bytes() == second.read_bytes()
    assert Image.open(first).size == (5 * (THUMB + 12), THUMB + 30 + 12)

    with pytest.raises(SystemExit):
        audit_main([str(shards), "--sheet", str(tmp_path / "c.png"), "--sheet-records", "0"])
    assert not os.path.exists(tmp_path / "c.png")


def test_a_foreign_record_without_its_size_shows_the_decoded_size(tmp_path):
    from imgshard.transforms.example import encode_example
    from imgshard.transforms.tfrecord import TFRecordWriter

    record = encode_example({"image/encoded": class_color_jpeg(2, size=20), "image/class/label": 2})
    path = tmp_path / "train-00000-of-00001"
    with open(path, "wb") as f:
        TFRecordWriter(f).write(record)
    cells = draw_contact_sheet([(str(path), 1)], str(tmp_path / "s.png"), n=1)
    assert cells[0].caption == ["2", "20x20"]


def _audit_cli(*args):
    import subprocess

    return subprocess.run([IMGSHARD, "audit", *map(str, args)], capture_output=True, text=True)


def test_sheet_and_plot_into_a_missing_folder_are_written_there(shards, tmp_path):
    sheet, plot = tmp_path / "new" / "deeper" / "s.png", tmp_path / "other" / "p.png"
    done = _audit_cli(shards, "--no-reader-order", "--sheet", sheet, "--plot", plot)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert Image.open(sheet).format == "PNG" and Image.open(plot).format == "PNG"
    assert f"written to {sheet}" in done.stderr and f"written to {plot}" in done.stderr


def test_an_unwritable_sheet_or_plot_folder_fails_before_the_scan(shards, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for flag in ("--sheet", "--plot"):
        done = _audit_cli(shards, "--no-reader-order", flag, blocker / "x.png")
        assert done.returncode == 2
        assert f"{flag} {blocker / 'x.png'}: cannot create its folder" in done.stderr
        assert "Traceback" not in done.stderr and "verdict" not in done.stdout.lower()


def test_the_sheet_is_saved_in_the_format_its_extension_names(shards, tmp_path):
    for name, fmt in (("s.jpg", "JPEG"), ("s.jpeg", "JPEG"), ("s.png", "PNG")):
        audit_main([str(shards), "--no-reader-order", "--sheet", str(tmp_path / name)])
        assert Image.open(tmp_path / name).format == fmt
    assert audit_main([str(shards), "--sheet", str(tmp_path / "s.txt")]) == 2
    assert audit_main([str(shards), "--plot", str(tmp_path / "p.txt")]) == 2
    assert not (tmp_path / "s.txt").exists() and not (tmp_path / "p.txt").exists()


def test_sheet_records_without_sheet_is_an_error(shards, capsys):
    with pytest.raises(SystemExit):
        audit_main([str(shards), "--sheet-records", "5"])
    assert "--sheet-records needs --sheet" in capsys.readouterr().err
