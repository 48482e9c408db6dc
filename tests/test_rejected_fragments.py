"""The rejected report is written by workers in fragments of list lines and joined in order:
Finalize holds counts, not rejections."""

import json

from helpers import all_files, convert, sorted_dataset
from imgshard.pipeline import metadata


def list_with_rejections(root) -> str:
    list_path = sorted_dataset(str(root / "d"), classes=3, per_class=5)
    with open(list_path) as f:
        lines = f.readlines()
    mixed = []
    for i, line in enumerate(lines):  # a missing image and a bad line between every listing
        mixed += [line, f"gone/{i}.JPEG 1\n", "no-label\n"]
    with open(list_path, "w") as f:
        f.writelines(mixed)
    return list_path


def test_fragments_join_into_the_report_of_one_piece(tmp_path, monkeypatch):
    list_path = list_with_rejections(tmp_path)
    flags = ["--num-shards", "2", "--max-reject-fraction", "1"]
    whole = convert(list_path, tmp_path / "whole", *flags)
    monkeypatch.setattr(metadata, "FRAGMENT_LINES", 4)  # 45 lines: 12 fragments
    pieces = convert(list_path, tmp_path / "pieces", *flags)

    assert all_files(tmp_path / "pieces") == all_files(tmp_path / "whole")  # no fragment left
    report = (tmp_path / "pieces" / "train-rejected.jsonl").read_text().splitlines()
    lines = [json.loads(r)["line"] for r in report]
    assert lines == sorted(lines) and len(lines) == 30
    assert pieces.metadata["rejected"]["by_reason"] == {"missing_file": 15, "unparseable_line": 15}
    assert whole.metadata == pieces.metadata


def test_each_fragment_holds_its_lines_in_report_order(tmp_path, monkeypatch):
    list_path = list_with_rejections(tmp_path)
    monkeypatch.setattr(metadata, "FRAGMENT_LINES", 10)
    monkeypatch.setattr(metadata, "remove_rejected_fragments", lambda *_: None)  # keep them
    convert(list_path, tmp_path / "out", "--num-shards", "2", "--max-reject-fraction", "1")

    fragments = sorted((tmp_path / "out" / ".train-rejected-parts").glob("*.jsonl"))
    assert [f.name for f in fragments] == [f"{i:08d}.jsonl" for i in range(5)]
    for index, fragment in enumerate(fragments):
        lines = [json.loads(r)["line"] for r in fragment.read_text().splitlines()]
        assert lines == sorted(lines) and all(index * 10 <= n < index * 10 + 10 for n in lines)
    joined = "".join(f.read_text() for f in fragments)
    assert (tmp_path / "out" / "train-rejected.jsonl").read_text() == joined
