"""The list, CSV and folder read in parallel parts give what one front-to-back read gives."""

import gzip
import hashlib
import json
import os

import pytest

from helpers import all_files, convert, sorted_dataset, write
from imgshard.transforms import list_splits
from imgshard.transforms.class_folders import class_folders, folder_layout, list_class
from imgshard.transforms.index import (
    csv_columns,
    csv_header,
    parse_csv,
    parse_csv_rows,
    parse_list,
    read_index,
)
from imgshard.transforms.list_splits import (
    ListSplit,
    build_layout,
    count_split,
    owned_lines,
    plan_splits,
)
from imgshard.transforms.records import IndexEntry

LIST = (
    b"\xef\xbb\xbfa/one.JPEG 0\r\n"  # BOM and CRLF
    b"\n"
    b"# a comment\n"
    b"dir with spaces/two.jpg   n01440764  \r\n"
    b"./a//three.jpg 2\n"
    b"lonely-token\n"
    b"bad\xff\xfe.jpg 1\n"
    b"\r\n"
    b"a/four-is-a-longer-line-that-straddles-most-splits.jpg 3\n"
    b"last-without-newline.jpg 4"
)
CSV = (
    b"\xef\xbb\xbfid,filename,synset\r\n"
    b'1,x/a.jpg,n1\n2,"x/b, with comma.jpg",n2\n3,,n3\n4\n\n'
    b'5,"x/""quoted"".jpg",n5\n6,x/f.jpg,n6'
)


def read_in_splits(path: str, split_bytes: int, kind: str = "list") -> list:
    """What the job's stages do, in order: plan, count, layout, parse each split."""
    splits = plan_splits(path, split_bytes)
    layout = build_layout(count_split(path, s, kind == "csv") for s in splits)
    if kind == "list":
        return [
            i for s in splits for i in parse_list(owned_lines(path, s), layout.first_lines[s.index])
        ]
    columns = csv_columns(csv_header(next(owned_lines(path, splits[0]))))
    parsed = []
    for s in splits:
        lines, first = owned_lines(path, s), layout.first_lines[s.index]
        if s.index == 0:
            next(lines)
            first += 1
        parsed += parse_csv_rows(lines, first, columns)
    return parsed


def test_every_split_size_numbers_every_line_as_one_read_does(tmp_path):
    path = write(str(tmp_path / "train.txt"), LIST)
    whole = list(parse_list(LIST.splitlines(keepends=True)))
    assert [i.line for i in whole] == [1, 4, 5, 6, 7, 9, 10]
    for split_bytes in range(1, len(LIST) + 2):  # every boundary: mid-line, at \r, at \n
        splits = plan_splits(path, split_bytes)
        assert len(splits) == -(-len(LIST) // split_bytes)
        counts = [count_split(path, s) for s in splits]
        assert sum(c.lines for c in counts) == 10, split_bytes
        assert read_in_splits(path, split_bytes) == whole, split_bytes


def test_a_line_straddling_a_boundary_belongs_to_the_split_it_starts_in(tmp_path):
    path = write(str(tmp_path / "l.txt"), b"aaaa 1\nbbbb 2\ncccc 3\n")
    first, second = plan_splits(path, 11)  # byte 11 is inside "bbbb 2"
    assert list(owned_lines(path, first)) == [b"aaaa 1\n", b"bbbb 2\n"]
    assert list(owned_lines(path, second)) == [b"cccc 3\n"]
    at_newline = plan_splits(path, 7)  # split 1 starts right after a newline: owns that line
    assert list(owned_lines(path, at_newline[1])) == [b"bbbb 2\n"]
    assert list(owned_lines(path, at_newline[2])) == [b"cccc 3\n"]


def test_the_content_hash_is_the_files_for_one_split_and_combined_for_several(tmp_path):
    path = write(str(tmp_path / "l.txt"), LIST)
    one = build_layout([count_split(path, s) for s in plan_splits(path, 1 << 20)])
    assert one.sha256 == hashlib.sha256(LIST).hexdigest()  # what sha256sum prints
    splits = plan_splits(path, 16)
    several = build_layout([count_split(path, s) for s in splits])
    parts = [hashlib.sha256(LIST[s.start : s.end]).digest() for s in splits]
    assert several.sha256 == hashlib.sha256(b"".join(parts)).hexdigest()
    assert list(read_index(path, "list"))[-1].sha256 == one.sha256


def test_a_gz_list_is_one_split_read_whole(tmp_path):
    path = str(tmp_path / "train.txt.gz")
    with gzip.open(path, "wb") as f:
        f.write(LIST)
    assert plan_splits(path, 4) == [ListSplit(0, 0, None)]
    (count,) = [count_split(path, s) for s in plan_splits(path, 4)]
    assert count.lines == 10 and count.sha256 == hashlib.sha256(LIST).hexdigest()
    assert read_in_splits(path, 4) == list(parse_list(LIST.splitlines(keepends=True)))


def test_a_csv_header_reaches_every_split(tmp_path):
    path = write(str(tmp_path / "l.csv"), CSV)
    whole = list(parse_csv(CSV.splitlines(keepends=True)))
    assert [i.line for i in whole] == [2, 3, 4, 5, 7, 8]
    assert whole[1] == IndexEntry(3, "x/b, with comma.jpg", "n2")
    for split_bytes in range(1, len(CSV) + 2):
        counts = [count_split(path, s, True) for s in plan_splits(path, split_bytes)]
        assert not any(c.opens_quote for c in counts)
        assert read_in_splits(path, split_bytes, "csv") == whole, split_bytes


def test_a_newline_inside_a_quoted_csv_field_is_detected_in_whichever_split(tmp_path):
    data = b'path,label\na.jpg,1\n"b\nstill b.jpg",2\nc.jpg,3\n'
    path = write(str(tmp_path / "l.csv"), data)
    for split_bytes in range(1, len(data) + 2):
        layout = build_layout(count_split(path, s, True) for s in plan_splits(path, split_bytes))
        assert layout.whole, split_bytes
    stray = write(str(tmp_path / "stray.csv"), b'path,label\na"b.jpg,1\n')  # a quote, no newline
    assert not build_layout(count_split(stray, s, True) for s in plan_splits(stray, 4)).whole


@pytest.fixture
def messy_list(tmp_path):
    """A class-sorted list with blank, comment, CRLF, unparseable and missing lines."""
    list_path = sorted_dataset(str(tmp_path / "d"), classes=4, per_class=6)
    lines = open(list_path, "rb").read().splitlines(keepends=True)
    lines[3] = lines[3].replace(b"\n", b"\r\n")
    lines[5:5] = [b"\n", b"# comment\n", b"no-label-here\n", b"0/missing.JPEG 0\n"]
    lines.append(b"1/1_0.JPEG 1")  # a repeat, and no final newline
    write(list_path, b"".join(lines))
    return list_path


FLAGS = ("--num-shards", "3", "--max-reject-fraction", "0.5")


def test_a_list_read_in_tiny_splits_writes_the_same_bytes(messy_list, tmp_path, monkeypatch):
    one = convert(messy_list, tmp_path / "one", *FLAGS)
    monkeypatch.setattr(list_splits, "SPLIT_BYTES", 23)  # ~20 splits, most mid-line
    assert len(plan_splits(messy_list)) > 10
    many = convert(messy_list, tmp_path / "many", *FLAGS)
    report = (tmp_path / "one" / "train-rejected.jsonl").read_text().splitlines()
    assert [json.loads(r)["line"] for r in report] == [8, 9, 29]  # unparseable, missing, repeat
    files_one, files_many = all_files(tmp_path / "one"), all_files(tmp_path / "many")
    meta_one = json.loads(files_one.pop("dataset.json"))
    meta_many = json.loads(files_many.pop("dataset.json"))
    assert files_one == files_many  # shards, report, labels, journal: byte-identical
    # only the input's hash differs: combined from the splits' (README, dataset.json)
    assert (
        meta_one["input"].pop("sha256") == hashlib.sha256(open(messy_list, "rb").read()).hexdigest()
    )
    meta_many["input"].pop("sha256")
    assert meta_one == meta_many and one.metadata["num_inputs"] == many.metadata["num_inputs"] == 27


def test_a_csv_with_a_quoted_newline_converts_as_one_split(tmp_path, monkeypatch):
    list_path = sorted_dataset(str(tmp_path / "d"), classes=2, per_class=4)
    rows = [line.split() for line in open(list_path).read().splitlines()]
    body = "".join(f"{p},{label}\n" for p, label in rows)
    csv_path = write(
        str(tmp_path / "d" / "l.csv"),
        f'path,label,note\n{body}0/0_1.JPEG,0,"two\nlines"\n'.encode(),
    )
    whole = convert(csv_path, tmp_path / "one", "--num-shards", "2", "--max-reject-fraction", "0.5")
    monkeypatch.setattr(list_splits, "SPLIT_BYTES", 16)
    split = convert(
        csv_path, tmp_path / "many", "--num-shards", "2", "--max-reject-fraction", "0.5"
    )
    assert whole.metadata["num_records"] == split.metadata["num_records"] == 8
    report = (tmp_path / "many" / "train-rejected.jsonl").read_text().splitlines()
    assert [json.loads(r)["line"] for r in report] == [11]  # the repeat, numbered by its last line
    assert report == (tmp_path / "one" / "train-rejected.jsonl").read_text().splitlines()


def old_listing(root: str) -> list[str]:
    """The single-process listing the folder input had: every file at root/*/*, sorted."""
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            parts = os.path.relpath(os.path.join(folder, name), root).split(os.sep)
            if len(parts) == 2 and not any(p.startswith(".") for p in parts):
                found.append("/".join(parts))
    return sorted(found)


def test_a_folder_listed_by_class_equals_the_sorted_listing(tmp_path):
    paths = ["a-b/1.jpg", "a/2.jpg", "a/0.png", "a/.DS_Store", "top.jpg", "a/deep/x.jpg"]
    paths += ["a.b/3.jpg", "b/4.jpg", ".hidden/5.jpg", "empty/deeper/6.jpg"]
    for path in paths:
        write(str(tmp_path / path), b"x")
    classes = class_folders(str(tmp_path))
    assert classes == ["a-b", "a.b", "a", "b", "empty"]  # "a-b/..." sorts before "a/..."
    listings = [list_class(str(tmp_path), c) for c in classes]
    layout = folder_layout((c.name, len(c.relatives), c.sha256) for c in listings)
    ranked = sorted(
        (layout.first_ranks[c.name] + i, relative)
        for c in listings
        for i, relative in enumerate(c.relatives)
    )
    assert [relative for _, relative in ranked] == old_listing(str(tmp_path))
    assert [rank for rank, _ in ranked] == list(range(1, 6))
    items = list(read_index(str(tmp_path), "folder"))
    assert [i.path for i in items[:-1]] == old_listing(str(tmp_path))
    assert items[-1].sha256 == layout.sha256 and items[-1].inputs == 5


def test_input_identity_sees_a_list_or_a_class_folder_change(tmp_path):
    from imgshard.transforms.input_identity import describe_change, input_identity

    path = write(str(tmp_path / "l.txt"), b"a.jpg 1\n")
    before = input_identity(path, "list")
    assert before == {"size": 8, "updated": os.path.getmtime(path)}
    write(path, b"a.jpg 2\n")
    os.utime(path, (0, 1))  # same size, another modification time
    assert "updated" in describe_change(path, before, input_identity(path, "list"))

    root = tmp_path / "tree"
    write(str(root / "a" / "1.jpg"), b"x")
    os.utime(root / "a", (0, 0))
    before = input_identity(str(root), "folder")
    assert describe_change(str(root), before, input_identity(str(root), "folder")) is None
    write(str(root / "a" / "2.jpg"), b"x")  # an image added to a class: its folder's mtime
    assert "class_folders" in describe_change(
        str(root), before, input_identity(str(root), "folder")
    )
    write(str(root / "b" / "3.jpg"), b"x")  # a class added
    assert "classes 1 -> 2" in describe_change(
        str(root), before, input_identity(str(root), "folder")
    )


@pytest.mark.gcs
def test_splits_of_a_gs_list_seek_like_a_local_file(gcs_bucket, tmp_path):
    from apache_beam.io.filesystems import FileSystems

    from imgshard.transforms.input_identity import input_identity

    local = write(str(tmp_path / "train.txt"), LIST)
    remote = f"gs://{gcs_bucket}/splits/train.txt"
    with FileSystems.create(remote) as f:
        f.write(LIST)
    for split_bytes in (5, 16, 1 << 20):
        assert plan_splits(remote, split_bytes) == plan_splits(local, split_bytes)
        assert read_in_splits(remote, split_bytes) == read_in_splits(local, split_bytes)
        assert [count_split(remote, s) for s in plan_splits(remote, split_bytes)] == [
            count_split(local, s) for s in plan_splits(local, split_bytes)
        ]
    before = input_identity(remote, "list")
    assert before["size"] == len(LIST) and before["updated"] > 0
    with FileSystems.create(remote) as f:  # a new object generation, same size
        f.write(LIST.replace(b"one", b"eno"))
    assert input_identity(remote, "list")["updated"] != before["updated"]


def test_a_list_whose_name_looks_like_a_glob_is_read_as_named(tmp_path):
    write(str(tmp_path / "train1.txt"), b"other.jpg 0\n")
    path = write(str(tmp_path / "train[1].txt"), LIST)
    assert plan_splits(path, 1 << 20) == [ListSplit(0, 0, len(LIST))]
    assert read_in_splits(path, 7) == list(parse_list(LIST.splitlines(keepends=True)))


def test_a_csv_read_in_tiny_splits_writes_the_same_bytes(tmp_path, monkeypatch):
    list_path = sorted_dataset(str(tmp_path / "d"), classes=3, per_class=4)
    rows = [line.split() for line in open(list_path).read().splitlines()]
    body = "".join(f'{i},"{p}",{label}\r\n' for i, (p, label) in enumerate(rows))
    csv_path = write(str(tmp_path / "d" / "l.csv"), f"id,path,label\r\n{body}9,,1\r\n".encode())
    flags = ("--num-shards", "2", "--max-reject-fraction", "0.5")
    one = convert(csv_path, tmp_path / "one", *flags)
    monkeypatch.setattr(list_splits, "SPLIT_BYTES", 11)  # the header itself spans 2 splits
    many = convert(csv_path, tmp_path / "many", *flags)
    assert one.metadata["num_records"] == many.metadata["num_records"] == 12
    files_one, files_many = all_files(tmp_path / "one"), all_files(tmp_path / "many")
    files_one.pop("dataset.json"), files_many.pop("dataset.json")
    assert files_one == files_many
    report = (tmp_path / "many" / "train-rejected.jsonl").read_text().splitlines()
    assert [json.loads(r)["line"] for r in report] == [14]  # the empty path cell
