"""Every graph the driver builds can be fused by Beam's portable runners (Flink, Spark, Samza).

Their shared fuser refuses a PCollection that feeds a Flatten and anything else besides
("PCollectionNodes [...] were consumed but never produced", pipeline/flatten.py). The local
runner accepts such a graph, so this walks the job's pipeline proto instead of running it:
no Flink is needed to keep the class of bug out.
"""

import argparse
import os

import apache_beam as beam
import pytest
from apache_beam.portability import common_urns

from helpers import sorted_dataset
from imgshard.pipeline.flatten import FlattenOwnInputs
from imgshard.pipeline.graph import build_graph
from imgshard.pipeline.options import add_convert_arguments, config_from_args
from imgshard.pipeline.plan import build_plan_graph

FLATTEN = common_urns.primitives.FLATTEN.urn


def flatten_inputs_shared(pipeline: beam.Pipeline) -> list[str]:
    """The PCollections that feed a Flatten and another consumer too, by their unique names."""
    proto = pipeline.to_runner_api()
    components = proto.components
    consumers: dict[str, list[str]] = {}
    for transform_id, transform in components.transforms.items():
        if transform.subtransforms:  # composites repeat their parts' inputs
            continue
        for pcoll in transform.inputs.values():  # main and side inputs alike
            consumers.setdefault(pcoll, []).append(transform_id)
    shared = []
    for transform in components.transforms.values():
        if transform.spec.urn != FLATTEN:
            continue
        for pcoll in transform.inputs.values():
            if len(consumers[pcoll]) > 1:
                users = sorted(components.transforms[t].unique_name for t in consumers[pcoll])
                shared.append(f"{components.pcollections[pcoll].unique_name} -> {users}")
    return sorted(shared)


def _config(list_path, output, *flags):
    parser = argparse.ArgumentParser()
    add_convert_arguments(parser)
    return config_from_args(parser.parse_args(["--input", list_path, "--output", output, *flags]))


@pytest.fixture
def listed(tmp_path):
    return sorted_dataset(str(tmp_path / "data"), classes=3, per_class=4), str(tmp_path / "out")


def test_the_check_finds_a_flatten_input_that_feeds_another_step():
    p = beam.Pipeline()
    numbers = p | "Numbers" >> beam.Create([1, 2])
    letters = p | "Letters" >> beam.Create(["a"])
    _ = numbers | "Doubled" >> beam.Map(lambda n: 2 * n)
    _ = (numbers, letters) | "Both" >> beam.Flatten()
    (shared,) = flatten_inputs_shared(p)
    assert "Numbers/" in shared and shared.endswith("-> ['Both', 'Doubled']")


def test_the_check_counts_side_inputs_as_consumers():
    p = beam.Pipeline()
    numbers = p | "Numbers" >> beam.Create([1, 2])
    _ = (p | "One" >> beam.Create([0])) | "Sum" >> beam.Map(
        lambda _, ns: sum(ns), beam.pvalue.AsList(numbers)
    )
    _ = (numbers, p | "More" >> beam.Create([3])) | "Both" >> beam.Flatten()
    assert len(flatten_inputs_shared(p)) == 1


def test_flatten_own_inputs_keeps_the_elements_and_passes_the_check():
    from apache_beam.testing.util import assert_that, equal_to

    with beam.Pipeline() as p:
        numbers = p | "Numbers" >> beam.Create([1, 2])
        _ = numbers | "Doubled" >> beam.Map(lambda n: 2 * n)
        both = (numbers, p | "Letters" >> beam.Create(["a"])) | "Both" >> FlattenOwnInputs()
        assert_that(both, equal_to([1, 2, "a"]))
        assert flatten_inputs_shared(p) == []


@pytest.mark.parametrize(
    "flags",
    [
        [],
        ["--shuffle", "none"],
        ["--boxes", "BOXES"],
        ["--analyze"],
    ],
    ids=["convert", "list-order", "boxes", "analyze"],
)
def test_the_conversion_graph_has_no_shared_flatten_input(listed, tmp_path, flags):
    list_path, output = listed
    if "BOXES" in flags:
        os.makedirs(tmp_path / "boxes")
        flags = ["--boxes", str(tmp_path / "boxes")]
    p = beam.Pipeline()
    build_graph(p, _config(list_path, output, *flags), None, "test")
    assert flatten_inputs_shared(p) == []


def test_the_plan_graph_has_no_shared_flatten_input(listed):
    list_path, output = listed
    p = beam.Pipeline()
    build_plan_graph(p, _config(list_path, output), None, os.path.join(output, "plan.json"))
    assert flatten_inputs_shared(p) == []


def test_a_folder_input_graph_has_no_shared_flatten_input(listed):
    list_path, output = listed
    p = beam.Pipeline()
    build_graph(p, _config(os.path.dirname(list_path), output), None, "test")
    assert flatten_inputs_shared(p) == []
