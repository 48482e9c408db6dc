"""imgshard audit --sheet: records sampled evenly across the shards, drawn as stored, with
class name and size."""

import io
import os

import numpy as np
import pytest
from PIL import Image

from helpers import IMGSHARD, class_color_jpeg, convert, shard_files, sorted_dataset
from imgshard.pipeline.audit import main as audit_main
from imgshard.pipeline.contact_sheet import THUMB, draw_contact_sheet, sample_positions


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
    from imgshard.transforms.shard_scan import iter_shard_records

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
