"""Beam's own floor: a fresh process that imports Beam and runs a trivial local pipeline
(10 elements: Create -> Map -> GroupByKey -> Map) in the given mode; no imgshard code.

Usage: python benchmarks/beam_floor.py in_memory|multi_threading|multi_processing
"""

import sys

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner


def main(mode: str) -> None:
    options = PipelineOptions(
        direct_running_mode=mode, direct_num_workers=1 if mode == "in_memory" else 0
    )
    runner = FnApiRunner()  # what DirectRunner runs, minus its attempt to fetch Prism
    with beam.Pipeline(runner=runner, options=options) as p:
        _ = (
            p
            | beam.Create(range(10))
            | beam.Map(lambda x: (x % 2, x))
            | beam.GroupByKey()
            | beam.Map(lambda kv: (kv[0], sum(kv[1])))
        )


if __name__ == "__main__":
    main(sys.argv[1])
