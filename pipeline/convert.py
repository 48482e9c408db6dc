"""`imgshard convert`: the driver. Parses flags, checks the output, runs the graph, reports.

    run(["--input", "train.txt", "--output", "out/", "--num-shards", "8"])

Flags that are not ours go to Beam's PipelineOptions untouched, so the same command runs on
Dataflow or Flink by adding runner flags. With no --runner, the job runs locally on Beam's
portable FnApiRunner with one worker process per core (what DirectRunner ends up using, minus
its offline attempt to download the Prism runner).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import itertools
import logging
import time
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import (
    DirectOptions,
    PipelineOptions,
    StandardOptions,
    TestOptions,
)

from imgshard.pipeline.graph import build_graph
from imgshard.pipeline.options import ConvertConfig, add_convert_arguments, config_from_args
from imgshard.pipeline.progress import ShardProgress
from imgshard.transforms import metadata
from imgshard.transforms.index import class_folder_pattern
from imgshard.transforms.shard_writer import METRICS_NAMESPACE

__all__ = ["ConversionError", "ConvertResult", "run"]

_LOG = logging.getLogger("imgshard")
LOCAL_RUNNER = "apache_beam.runners.portability.fn_api_runner.FnApiRunner"


class ConversionError(Exception):
    """The job could not run, or its result must not be used; the message says why.

    `result` is set when the job ran and wrote its output and report, but failed a check.
    """

    def __init__(self, message: str, result: ConvertResult | None = None):
        super().__init__(message)
        self.result = result


@dataclass
class ConvertResult:
    """Attributes:
    output: the output folder.
    metadata: dataset.json as written ({} for a dry run, which writes nothing).
    seconds: wall time of the run.
    counters: Beam counters of the imgshard namespace, where the runner reports them.
    job: the runner's job description, for a Dataflow dry run (`--dry_run=True`).
    """

    output: str
    metadata: dict
    seconds: float
    counters: dict[str, int]
    job: object = None


def version() -> str:
    try:
        return importlib.metadata.version("imgshard")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


# Below this many inputs a local run stays in one process: spawning worker processes costs
# ~2 s (Beam's own floor: 3.6-3.9 s with 2 workers vs 1.8 s in process), and 2 workers save
# ~1.7 ms per ILSVRC-sized image (benchmarks/RESULTS.md (b)), so they pay off from ~1,200.
SMALL_JOB_INPUTS = 1000


def _is_small_job(config: ConvertConfig) -> bool:
    """Whether the input holds fewer than SMALL_JOB_INPUTS entries; reads no more than that."""
    try:
        if config.input_kind == "folder":
            pattern = class_folder_pattern(config.input)
            found = FileSystems.match([pattern], limits=[SMALL_JOB_INPUTS])[0].metadata_list
            return len(found) < SMALL_JOB_INPUTS
        with FileSystems.open(config.input) as f:
            return sum(1 for _ in itertools.islice(f, SMALL_JOB_INPUTS)) < SMALL_JOB_INPUTS
    except Exception:  # unreadable input: let the job report it
        return False


def pipeline_options(beam_args: list[str], small_job: bool = False) -> PipelineOptions:
    """Beam options from the remaining flags; local runs default to all cores, or to one
    process for a small job."""
    options = PipelineOptions(beam_args)

    def given(flag: str) -> bool:  # get_all_options() cannot tell "--x=default" from absent
        return any(arg == f"--{flag}" or arg.startswith(f"--{flag}=") for arg in beam_args)

    if not given("runner"):
        options.view_as(StandardOptions).runner = LOCAL_RUNNER
        direct = options.view_as(DirectOptions)
        if not (given("direct_num_workers") or given("direct_running_mode")) and small_job:
            direct.direct_num_workers, direct.direct_running_mode = 1, "in_memory"
            return options
        if not given("direct_num_workers"):
            direct.direct_num_workers = 0  # one worker per core
        if not given("direct_running_mode"):
            direct.direct_running_mode = "multi_processing"
    return options


def _check_output(config: ConvertConfig) -> None:
    patterns = [
        FileSystems.join(config.output, f"{config.split}-*-of-*.tfrecord"),
        FileSystems.join(config.output, metadata.DATASET_JSON),
    ]
    try:
        existing = [m.path for r in FileSystems.match(patterns) for m in r.metadata_list]
    except Exception:
        existing = []
    if existing and not config.overwrite:
        raise ConversionError(
            f"{config.output} already holds a {config.split!r} output ({len(existing)} files, e.g. "
            f"{existing[0]}); pass --overwrite to replace it, or choose another --output"
        )


def _load_labels(path: str | None) -> list[str] | None:
    if path is None:
        return None
    with FileSystems.open(path) as f:
        names = [line.strip() for line in f.read().decode("utf-8-sig").splitlines()]
    names = [n for n in names if n]
    if not names:
        raise ConversionError(f"--labels {path} lists no class names")
    return names


# Runners whose workers share this machine's disk.
_LOCAL_RUNNERS = (
    "FnApiRunner",
    "DirectRunner",
    "BundleBasedDirectRunner",
    "SwitchingDirectRunner",
    "PrismRunner",
)


def _runner_name(options: PipelineOptions) -> str:
    """The runner's class name, whether given by name or by dotted path."""
    return str(options.view_as(StandardOptions).runner or "").rsplit(".", 1)[-1]


def _check_paths_reach_workers(config: ConvertConfig, options: PipelineOptions) -> None:
    """Dataflow workers never see this disk: refuse local paths. Portable runners (Flink) may
    run workers here or elsewhere: warn."""
    runner = _runner_name(options)
    loopback = options.get_all_options().get("environment_type") == "LOOPBACK"
    local = [
        f"--{name.replace('_', '-')} {value}"
        for name, value in (
            ("input", config.input),
            ("image_root", config.image_root),
            ("output", config.output),
        )
        if "://" not in value
    ]
    if not local or runner in _LOCAL_RUNNERS or loopback:
        return
    message = f"the {runner} workers may not see this machine's disk: {', '.join(local)}"
    if runner == "DataflowRunner":
        raise ConversionError(f"{message}; put the list, the images and the output on gs://")
    _LOG.warning("%s; fine for workers on this machine, otherwise use gs://", message)


def _preflight(config: ConvertConfig) -> list[str] | None:
    if config.input_kind == "folder":  # on GCS a folder is a prefix, not an object
        pattern = class_folder_pattern(config.input)
        if not FileSystems.match([pattern], limits=[1])[0].metadata_list:
            raise ConversionError(
                f"--input {config.input} holds no images in class folders ({pattern})"
            )
    elif not FileSystems.exists(config.input):
        raise ConversionError(f"--input {config.input} does not exist")
    _check_output(config)
    return _load_labels(config.labels_file)


def _counters(result) -> dict[str, int]:
    try:
        found = result.metrics().query(
            beam.metrics.MetricsFilter().with_namespace(METRICS_NAMESPACE)
        )
    except Exception:  # some runners report no metrics
        return {}
    totals: dict[str, int] = {}
    for counter in found["counters"]:
        name = counter.key.metric.name
        totals[name] = totals.get(name, 0) + (counter.committed or counter.attempted or 0)
    return totals


def _check_result(meta: dict, config: ConvertConfig) -> None:
    inputs = meta["num_inputs"]
    rejected = meta["num_rejected"]
    if meta["num_records"] == 0:
        detail = ", ".join(f"{k}: {v}" for k, v in meta["rejected"]["by_reason"].items())
        raise ConversionError(
            f"no record was written from {inputs} inputs"
            + (f" (rejected: {detail}; see {meta['rejected']['file']})" if detail else "")
        )
    if inputs and rejected / inputs > config.max_reject_fraction:
        raise ConversionError(
            f"{rejected} of {inputs} inputs ({rejected / inputs:.2%}) were rejected, more than "
            f"--max-reject-fraction {config.max_reject_fraction}; reasons and lines are in "
            f"{FileSystems.join(config.output, meta['rejected']['file'])}"
        )


def run(argv: list[str] | None = None) -> ConvertResult:
    """Runs the conversion; raises ConversionError (or ValueError for bad flags)."""
    parser = argparse.ArgumentParser(prog="imgshard convert")
    add_convert_arguments(parser)
    args, beam_args = parser.parse_known_args(argv)
    config = config_from_args(args)
    options = pipeline_options(beam_args, small_job=_is_small_job(config))
    _check_paths_reach_workers(config, options)
    given_labels = _preflight(config)
    dry_run = options.view_as(TestOptions).dry_run

    if config.shuffle == "none":
        _LOG.warning(
            "--shuffle none: shards are written in LIST ORDER. A class-sorted list gives shards "
            "that each hold a few classes, and training from them misbehaves. Use this only to "
            "demonstrate the problem; never train on this output."
        )
    _LOG.info("converting %s -> %s", config.input, config.output)
    started = time.time()
    pipeline = beam.Pipeline(options=options)
    build_graph(pipeline, config, given_labels, version())
    if dry_run:  # Dataflow validates the graph and options, submits nothing, writes nothing
        result = pipeline.run()
        return ConvertResult(config.output, {}, time.time() - started, {}, result.job)
    poll_seconds = (
        2.0 if _runner_name(options) in _LOCAL_RUNNERS else 30.0
    )  # listing gs:// costs requests
    with ShardProgress(config.output, config.split, interval=poll_seconds):
        result = pipeline.run()
        result.wait_until_finish()
    seconds = time.time() - started
    meta = metadata.load_metadata(config.output)
    outcome = ConvertResult(config.output, meta, seconds, _counters(result))
    try:
        _check_result(meta, config)
    except ConversionError as failed:
        failed.result = outcome
        raise
    return outcome
