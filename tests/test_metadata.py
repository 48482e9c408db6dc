"""dataset.json's counts: every rejection reason is counted by name, or the run says why not."""

import ast
import pathlib

import pytest

from imgshard.pipeline.metadata import build_metadata
from imgshard.transforms import records
from imgshard.transforms.labels import Vocabulary
from imgshard.transforms.records import ShardResult, SourceInfo

ROOT = pathlib.Path(records.__file__).resolve().parents[1]


def metadata_with(by_reason):
    shard = ShardResult(0, "train-00000-of-00001.tfrecord", 2, 10, "0" * 64, {0: 2}, 10)
    return build_metadata(
        split="train",
        num_shards=1,
        shards=[shard],
        rejected_by_reason=by_reason,
        source=SourceInfo("list", "/l.txt", "0" * 64, 2 + sum(by_reason.values())),
        vocabulary=Vocabulary("int", ("0",)),
        settings={"label_offset": 0},
        version="0",
    )


def test_rejections_are_counted_by_reason():
    meta = metadata_with({records.MISSING_FILE: 2, records.UNKNOWN_LABEL: 1})
    assert meta["num_rejected"] == 3
    assert meta["rejected"]["by_reason"] == {"missing_file": 2, "unknown_label": 1}


def test_a_reason_missing_from_reasons_fails_loudly_instead_of_vanishing_from_by_reason():
    with pytest.raises(ValueError, match=r"\['new_reason'\] are missing from records.REASONS"):
        metadata_with({records.MISSING_FILE: 1, "new_reason": 4})


def test_every_reason_constant_is_listed_in_reasons():
    constants = {
        value
        for name, value in vars(records).items()
        if name.isupper() and isinstance(value, str) and name not in ("REJECTED",)
    }
    assert constants == set(records.REASONS)


def test_the_rejected_output_tag_is_defined_once():
    # Beam joins outputs by tag text: one constant, records.REJECTED, names it everywhere
    found = []
    packages = [init.parent for init in ROOT.glob("*/__init__.py")]  # any layout
    for path in [p for package in packages for p in package.rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                if node.value.value == "rejected":
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    where = pathlib.Path(records.__file__).resolve().relative_to(ROOT)
    assert found == [f"{where}:{_line_of('REJECTED = ')}"]


def _line_of(text):
    lines = pathlib.Path(records.__file__).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.startswith(text))
