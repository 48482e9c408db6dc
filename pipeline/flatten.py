"""A Flatten that Beam's portable runners can fuse: each input gets a producer of its own.

The pipeline fuser that Flink, Spark and Samza share (Java's GreedyPipelineFuser) fails on a
PCollection that feeds a Flatten and another transform as well: the job is refused at once
with "PCollectionNodes [...] were consumed but never produced" (Beam issue 34647's class).
The local FnApiRunner accepts such a graph, so nothing local catches it;
tests/test_portable_graph.py walks every graph the driver builds for it.

An identity step in front of each input makes the Flatten the only consumer of what it reads.
On a fusing runner the step is fused into its producer: an element passes one more function
call, nothing crosses a stage boundary.
"""

from __future__ import annotations

import apache_beam as beam

__all__ = ["FlattenOwnInputs"]


def _identity(element):
    return element


class FlattenOwnInputs(beam.PTransform):
    """beam.Flatten() over copies of its inputs (a tuple of PCollections), each made by an
    identity step of its own."""

    def expand(self, pcolls):
        copies = [pcoll | f"Input{i}" >> beam.Map(_identity) for i, pcoll in enumerate(pcolls)]
        return copies | "Flatten" >> beam.Flatten()
