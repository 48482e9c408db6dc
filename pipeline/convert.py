"""`imgshard convert`: the driver. Parses flags, checks the output, runs the graph, reports.

    run(["--input", "train.txt", "--output", "out/", "--num-shards", "8"])

Flags that are not ours go to Beam's PipelineOptions untouched, so the same command runs on
Dataflow or Flink by adding runner flags. With no --runner, the job runs locally on Beam's
portable FnApiRunner (what DirectRunner ends up using, minus its offline attempt to download
the Prism runner), in one process, threads or worker processes by input size.

Before the job starts, the output is checked and the run's identity recorded in its journal
(pipeline/journal.py): an existing output is only resumed by the same configuration.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import (
    DirectOptions,
    GoogleCloudOptions,
    PipelineOptions,
    StandardOptions,
    TestOptions,
)

from imgshard.pipeline import journal, metadata
from imgshard.pipeline.errors import ConversionError
from imgshard.pipeline.existing_output import prepare_output, run_identity
from imgshard.pipeline.graph import build_graph
from imgshard.pipeline.input_sample import check_input_sample, list_sample
from imgshard.pipeline.job_failure import WorkerDeaths, explain_failure, stopping_message
from imgshard.pipeline.local_mode import (
    COUNT_LIMIT,
    DEFAULT_IMAGE_SECONDS,
    LocalWork,
    cores,
    estimate_work,
    local_running_mode,
)
from imgshard.pipeline.options import ConvertConfig, add_convert_arguments, config_from_args
from imgshard.pipeline.plan import build_plan_graph, load_plan
from imgshard.pipeline.progress import ShardProgress
from imgshard.pipeline.run_checks import (
    LOCAL_RUNNERS,
    check_analyze_runs_here,
    check_inputs,
    check_paths_reach_workers,
    check_result,
    runner_name,
)
from imgshard.pipeline.shard_writer import METRICS_NAMESPACE
from imgshard.pipeline.unknown_flags import add_unknown_flags_argument, check_unknown_flags
from imgshard.pipeline.warm_workers import WarmWorkers, take_early, wanted
from imgshard.transforms.list_sample import ListSample
from imgshard.transforms.shard_names import parse_shard_name
from imgshard.transforms.storage import remove_files, remove_tree

__all__ = ["ConversionError", "ConvertResult", "run"]

_LOG = logging.getLogger("imgshard")
LOCAL_RUNNER = "apache_beam.runners.portability.fn_api_runner.FnApiRunner"


@dataclass
class ConvertResult:
    """Attributes:
    output: the output folder.
    metadata: dataset.json as written ({} for a dry run, which writes nothing).
    seconds: wall time of the run.
    counters: Beam counters of the imgshard namespace, where the runner reports them.
    job: the runner's job description, for a Dataflow dry run (`--dry_run=True`).
    plan: what the shards would hold, for `--plan` (pipeline/plan.py); nothing was written.
    """

    output: str
    metadata: dict
    seconds: float
    counters: dict[str, int]
    job: object = None
    plan: dict | None = None


def version() -> str:
    try:
        return importlib.metadata.version("imgshard")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def _given_local_mode_flags(beam_args: list[str]) -> set[str]:
    """Which of runner, direct_num_workers and direct_running_mode the flags set.

    get_all_options() cannot tell `--x=default` from absent, so these are parsed once more
    with no defaults: what is in the namespace afterwards was given, in any spelling argparse
    accepts (`--x=v`, `--x v`).
    """
    parser = argparse.ArgumentParser(
        add_help=False, allow_abbrev=False, argument_default=argparse.SUPPRESS
    )
    for flag in ("runner", "direct_num_workers", "direct_running_mode"):
        parser.add_argument(f"--{flag}")
    given, _ = parser.parse_known_args(beam_args)
    return set(vars(given))


def pipeline_options(
    beam_args: list[str],
    work: LocalWork | Callable[[], LocalWork] | None = None,
    warm_available: bool = False,
) -> PipelineOptions:
    """Beam options from the remaining flags; a local run gets the running mode that suits
    its expected work (pipeline/local_mode.py; a callable is only asked for a local run),
    unless the flags choose one. `warm_available`: worker processes would be warm ones."""
    options = PipelineOptions(beam_args)
    given = _given_local_mode_flags(beam_args).__contains__

    if not given("runner"):
        options.view_as(StandardOptions).runner = LOCAL_RUNNER
        direct = options.view_as(DirectOptions)
        if callable(work):
            work = work()
        workers, mode = local_running_mode(
            work or LocalWork(COUNT_LIMIT, DEFAULT_IMAGE_SECONDS), cores(), warm=warm_available
        )
        if given("direct_num_workers"):
            workers = direct.direct_num_workers
            if mode == "in_memory" and workers != 1:  # in_memory runs one worker only; not
                mode = "multi_processing"  # threads: see local_mode.AUTOMATIC_MODES
        if given("direct_running_mode"):
            mode = direct.direct_running_mode
            if not given("direct_num_workers"):
                workers = 1 if mode == "in_memory" else 0
        direct.direct_num_workers, direct.direct_running_mode = workers, mode
        if work is not None:
            name = _MODE_NAMES.get(mode, mode)
            if mode == "multi_processing" and warm_available:
                name = "warm " + name  # pipeline/warm_workers.py
            _LOG.info(
                "local run: %s, %s; ~%.0f core-seconds of work expected (pipeline/local_mode.py)",
                name,
                f"{workers} worker{'s' * (workers != 1)}" if workers else "one worker per core",
                work.inputs * work.seconds_per_input,
            )
    return options


_MODE_NAMES = {
    "in_memory": "one process",
    "multi_threading": "worker threads",
    "multi_processing": "worker processes",
}


def _warm_workers(options: PipelineOptions, possible: bool) -> WarmWorkers | None:
    """The warm worker process for a local run in worker processes (pipeline/warm_workers.py):
    the one the CLI started early, or a new one where `possible`; None (and the early one
    stopped) otherwise."""
    early = take_early()
    direct = options.view_as(DirectOptions)
    if runner_name(options) != "FnApiRunner" or direct.direct_running_mode != "multi_processing":
        if early is not None:
            early.stop()
        return None
    if early is None and possible:
        try:
            return WarmWorkers()
        except OSError:
            return None
    return early


def _not_the_in_memory_warning(record: logging.LogRecord) -> bool:
    """Drops FnApiRunner's warning that in_memory mode gives no parallelism: with a given
    environment it runs one worker process per direct_num_workers (see _pipeline)."""
    return not str(record.msg).startswith("If direct_num_workers is not equal to 1")


def _pipeline(options: PipelineOptions, warm: WarmWorkers | None) -> beam.Pipeline:
    """A pipeline on the runner the options name; with warm workers, FnApiRunner with their
    SDK environment. Its running mode is then set to in_memory, the one mode in which
    FnApiRunner keeps a given environment instead of its own (it still runs one worker per
    direct_num_workers; its warning that it would not is filtered out)."""
    if warm is None:
        return beam.Pipeline(options=options)
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    options.view_as(DirectOptions).direct_running_mode = "in_memory"
    logging.getLogger("apache_beam.runners.portability.fn_api_runner.fn_runner").addFilter(
        _not_the_in_memory_warning
    )
    return beam.Pipeline(
        runner=FnApiRunner(default_environment=warm.environment()), options=options
    )


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


def _raise_explained(
    failed: Exception,
    argv: list[str],
    config: ConvertConfig,
    fingerprint: str,
    exits: list[int],
    remote_runner: str | None,
) -> None:
    """Raises one clear ConversionError for a failure we understand (pipeline/job_failure.py);
    returns for any other, which then surfaces as the runner reported it."""
    try:
        names = journal.journaled_shards(config.output, config.split, fingerprint)
    except Exception:  # the store is unreachable too: the message counts none
        names = []
    parsed = parse_shard_name(names[0]) if names else None
    total = parsed.num_shards if parsed else None
    message = explain_failure(failed, argv, exits, (len(names), total), remote_runner)
    if message is None:
        return
    _LOG.debug("the runner reported:", exc_info=failed)
    raise ConversionError(message) from None


def _run_plan(
    config: ConvertConfig,
    options: PipelineOptions,
    given_labels: list[str] | None,
    warm: WarmWorkers | None,
) -> ConvertResult:
    """The index stages only (pipeline/plan.py); the plan comes back through a temporary file,
    local or under --temp_location for workers elsewhere."""
    local = runner_name(options) in LOCAL_RUNNERS
    if local:
        folder = tempfile.mkdtemp(prefix="imgshard-plan-")
    else:
        folder = options.view_as(GoogleCloudOptions).temp_location
        if not folder:
            raise ConversionError("--plan on a remote runner needs --temp_location")
    plan_path = FileSystems.join(folder, f"plan-{uuid.uuid4().hex}.json")
    started = time.time()
    pipeline = _pipeline(options, warm)
    build_plan_graph(pipeline, config, given_labels, plan_path)
    try:
        result = pipeline.run()
        result.wait_until_finish()
        plan = load_plan(plan_path)
    except Exception as failed:
        message = stopping_message(failed)
        if message is None:
            raise
        raise ConversionError(message) from None
    finally:
        if local:
            remove_tree(folder)
        else:
            remove_files([plan_path])
    return ConvertResult(config.output, {}, time.time() - started, _counters(result), plan=plan)


def run(argv: list[str] | None = None) -> ConvertResult:
    """Runs the conversion; raises ConversionError (or ValueError for bad flags)."""
    # No abbreviations: `--se 4` must not quietly become `--seed 4` (check_unknown_flags).
    parser = argparse.ArgumentParser(prog="imgshard convert", allow_abbrev=False)
    add_convert_arguments(parser)
    add_unknown_flags_argument(parser)
    parser.add_argument(
        "--plan",
        action="store_true",
        help="print what the shards would hold (records per shard and class, rejections "
        "before reading) without reading an image or writing anything",
    )
    args, beam_args = parser.parse_known_args(argv)
    check_unknown_flags(beam_args, parser, allow=args.allow_unknown_flags)
    config = config_from_args(args)
    sample = list_sample(config)  # ~2 MiB drawn from across the list, whatever its size
    warm_possible = wanted(argv or [])
    options = pipeline_options(
        beam_args, lambda: estimate_work(config, sample), warm_available=warm_possible
    )
    warm = _warm_workers(options, warm_possible)
    try:
        check_paths_reach_workers(config, options)
        if args.plan:
            return _run_plan(config, options, check_inputs(config), warm)
        return _run_conversion(config, sample, options, warm, argv or [])
    finally:
        if warm is not None:
            warm.stop()


def _run_conversion(
    config: ConvertConfig,
    sample: ListSample | None,
    options: PipelineOptions,
    warm: WarmWorkers | None,
    argv: list[str],
) -> ConvertResult:
    """The conversion itself, once its options are settled (see run)."""
    check_analyze_runs_here(config, options)
    given_labels = check_inputs(config)
    check_input_sample(config, given_labels, sample)
    dry_run = options.view_as(TestOptions).dry_run
    fingerprint, started_input = "", None
    if not dry_run:  # a dry run writes nothing, so it has no output to check
        identity = run_identity(config, version())
        fingerprint = prepare_output(config, identity)
        started_input = identity["input"]

    if config.shuffle == "none":
        _LOG.warning(
            "--shuffle none: shards are written in LIST ORDER. A class-sorted list gives shards "
            "that each hold a few classes, and training from them misbehaves. Use this only to "
            "demonstrate the problem; never train on this output."
        )
    _LOG.info("converting %s -> %s", config.input, config.output)
    started = time.time()
    pipeline = _pipeline(options, warm)
    build_graph(
        pipeline,
        config,
        given_labels,
        version(),
        fingerprint=fingerprint,
        input_identity=started_input,
    )
    if dry_run:  # Dataflow validates the graph and options, submits nothing, writes nothing
        result = pipeline.run()
        return ConvertResult(config.output, {}, time.time() - started, {}, result.job)
    poll_seconds = (
        2.0 if runner_name(options) in LOCAL_RUNNERS else 30.0
    )  # listing gs:// costs requests
    deaths = WorkerDeaths(show=_LOG.isEnabledFor(logging.DEBUG))
    progress = ShardProgress(
        config.output,
        config.split,
        interval=poll_seconds,
        resumed_fingerprint=fingerprint if config.resume else "",
    )
    with progress, deaths:
        try:
            result = pipeline.run()
            result.wait_until_finish()
        except Exception as failed:
            runner = runner_name(options)
            remote = None if runner in LOCAL_RUNNERS else runner
            _raise_explained(failed, argv, config, fingerprint, deaths.return_codes, remote)
            raise
    seconds = time.time() - started
    meta = metadata.load_metadata(config.output)
    outcome = ConvertResult(config.output, meta, seconds, _counters(result))
    try:
        check_result(meta, config)
    except ConversionError as failed:
        failed.result = outcome
        raise
    return outcome
