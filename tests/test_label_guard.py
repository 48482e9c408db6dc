"""One stray integer label must not become a 20M-class vocabulary."""

import pytest

from helpers import convert, sorted_dataset
from imgshard.pipeline.errors import ConversionError
from imgshard.transforms.labels import VocabularyTooLarge, build_vocabulary


def test_a_stray_integer_label_is_refused_and_named():
    labels = [str(i) for i in range(1000)] + ["20190101"]
    with pytest.raises(VocabularyTooLarge) as refused:
        build_vocabulary(labels)
    message = str(refused.value)
    assert "'20190101'" in message and "20,190,102 classes" in message
    assert "1,001 distinct labels" in message and "limit of 10,010" in message
    assert "--labels" in message and "--max-int-labels 20190102" in message


def test_sparse_but_plausible_integer_ids_are_kept():
    coco_like = [str(i) for i in range(1, 91) if i % 9]  # 80 ids up to 89, as COCO
    assert len(build_vocabulary(coco_like).names) == 90
    assert len(build_vocabulary(["0", "999"]).names) == 1000  # small: always accepted
    assert len(build_vocabulary(["0", "5", "5000"], max_int_labels=5001).names) == 5001
    with pytest.raises(VocabularyTooLarge, match="'1000'"):
        build_vocabulary(["0", "999", "1000"], max_int_labels=1000)


def test_a_labels_file_or_names_are_not_limited():
    assert build_vocabulary(["0", "20190101"], given=["a", "b"]).names == ("a", "b")
    assert build_vocabulary(["0", "20190101"], kind="name").names == ("0", "20190101")


def test_convert_refuses_a_stray_label_before_reading_an_image(tmp_path):
    list_path = sorted_dataset(str(tmp_path / "d"), classes=3, per_class=4)
    with open(list_path, "a") as f:
        f.write("0/0_1.JPEG 5000\n")  # 5,001 ids for 4 labels (a 20190101 runs the same way)
    with pytest.raises(ConversionError) as refused:
        convert(list_path, tmp_path / "out", "--num-shards", "2")
    message = str(refused.value)
    assert message.startswith("integer label '5000' would make the vocabulary"), message
    assert "Traceback" not in message
    assert not list((tmp_path / "out").glob("train-*.tfrecord"))

    accepted = convert(
        list_path,
        tmp_path / "out",
        "--num-shards",
        "2",
        "--max-int-labels",
        "5001",
        "--resume",
        "--max-reject-fraction",
        "1",
    )
    assert accepted.metadata["num_records"] == 12  # the path is listed twice: the first stays


@pytest.mark.slow
def test_the_refusal_reads_the_same_from_worker_processes(tmp_path):
    """There the runner reports the worker's exception as text; the message is found in it."""
    list_path = sorted_dataset(str(tmp_path / "d"), classes=3, per_class=4)
    with open(list_path, "a") as f:
        f.write("0/0_1.JPEG 5000\n")
    processes = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]
    with pytest.raises(ConversionError) as refused:
        convert(list_path, tmp_path / "out", "--num-shards", "2", runner=processes)
    message = str(refused.value)
    assert message.startswith("integer label '5000' would make the vocabulary"), message
    assert message.endswith("--max-int-labels 5001 to accept it")


def test_the_index_summary_unions_partial_label_sets_and_counts_every_input():
    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to

    from imgshard.pipeline.combiners import IndexSummary, IndexTotals
    from imgshard.transforms.records import Rejection

    entries = [(i, f"img{i}.jpg", label) for i, label in enumerate("bacab" * 3)]
    bad = [Rejection(99, "", "", "unparseable_line", "no label"), Rejection(7, "x", "", "r", "")]
    with beam.Pipeline() as p:  # combiner lifting: partial sets per bundle, then merged
        items = p | beam.Create(entries + bad, reshuffle=True)
        assert_that(
            items | beam.CombineGlobally(IndexSummary()),
            equal_to([IndexTotals(["a", "b", "c"], 15, 17)]),
        )


def test_the_job_and_the_trainer_do_not_share_a_class_name():
    import ast
    import pathlib

    from imgshard.transforms import labels

    root = pathlib.Path(labels.__file__).resolve().parents[1]

    packages = {init.parent.name for init in root.glob("*/__init__.py")}  # any layout
    assert "trainer" in packages and len(packages) > 1

    def classes(folders):
        return {
            node.name
            for folder in folders
            for path in (root / folder).rglob("*.py")
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ClassDef)
        }

    assert classes(["trainer"]) & classes(packages - {"trainer"}) == set()
