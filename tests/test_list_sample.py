"""Entries drawn from across a list (transforms/list_sample.py)."""

import gzip

from imgshard.transforms import list_sample
from imgshard.transforms.list_sample import read_sample, spread


def _sorted_list(path, classes: int, per_class: int) -> list[bytes]:
    lines = [
        f"n{c:08d}/n{c:08d}_{i}.JPEG {c}\n".encode()
        for c in range(classes)
        for i in range(per_class)
    ]
    path.write_bytes(b"".join(lines))
    return lines


def test_a_large_list_is_sampled_across_every_part_of_it_in_whole_lines(tmp_path, monkeypatch):
    monkeypatch.setattr(list_sample, "CHUNK_BYTES", 4096)  # 32 x 4 KiB of a ~3.4 MB list
    path = tmp_path / "train.txt"
    lines = _sorted_list(path, classes=100, per_class=1000)
    sample = read_sample(str(path), csv=False)
    labels = {int(e.label) for e in sample.entries}
    assert min(labels) == 0 and max(labels) == 99 and len(labels) >= 30  # not just the start
    whole = {line.decode().rsplit(None, 1)[0] for line in lines}
    assert all(e.path in whole for e in sample.entries)  # no line cut by a chunk boundary
    assert len(sample.entries) < len(lines) // 10  # ~32 x 4 KiB read, not the 3.4 MB
    assert abs(sample.inputs - len(lines)) / len(lines) < 0.02  # estimated from the size


def test_a_small_list_is_read_whole_and_counted_exactly(tmp_path):
    path = tmp_path / "train.txt"
    lines = _sorted_list(path, classes=3, per_class=7)
    sample = read_sample(str(path), csv=False)
    assert sample.inputs == len(lines) == len(sample.entries)


def test_a_large_csv_keeps_its_header_out_of_the_sample(tmp_path, monkeypatch):
    monkeypatch.setattr(list_sample, "CHUNK_BYTES", 2048)
    path = tmp_path / "train.csv"
    rows = [f"{c},img/{c}_{i}.jpg\n" for c in range(50) for i in range(500)]
    path.write_text("label,filename\n" + "".join(rows))
    sample = read_sample(str(path), csv=True)
    assert sample.entries and all(e.path.startswith("img/") for e in sample.entries)
    assert {e.label for e in sample.entries} >= {"0", "49"}
    assert abs(sample.inputs - len(rows)) / len(rows) < 0.02


def test_a_compressed_list_is_sampled_from_its_start(tmp_path, monkeypatch):
    monkeypatch.setattr(list_sample, "HEAD_LINES", 100)
    path = tmp_path / "train.txt.gz"
    lines = [f"a/{i}.jpg {i % 3}\n".encode() for i in range(1000)]
    path.write_bytes(gzip.compress(b"".join(lines)))
    sample = read_sample(str(path), csv=False)
    assert [e.path for e in sample.entries] == [f"a/{i}.jpg" for i in range(100)]
    assert sample.inputs == 100  # at least this many: a stream cannot say more


def test_spread_takes_evenly_spaced_items():
    assert spread(list(range(10)), 5) == [0, 2, 4, 6, 8]
    assert spread([1, 2], 5) == [1, 2]
