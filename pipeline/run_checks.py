"""What a conversion refuses, and why: before the job starts (runner and paths, the input,
--labels) and after it ends (no records, too many rejected). The driver (convert.py) calls
these; each raises ConversionError with the fix in its message."""

from __future__ import annotations

import logging

from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from imgshard.pipeline.errors import ConversionError
from imgshard.pipeline.options import ConvertConfig
from imgshard.transforms.index import class_folder_pattern

__all__ = [
    "LOCAL_RUNNERS",
    "check_analyze_runs_here",
    "check_inputs",
    "check_paths_reach_workers",
    "check_result",
    "runner_name",
    "workers_run_here",
]

_LOG = logging.getLogger("imgshard")

# Runners whose workers share this machine's disk.
LOCAL_RUNNERS = (
    "FnApiRunner",
    "DirectRunner",
    "BundleBasedDirectRunner",
    "SwitchingDirectRunner",
    "PrismRunner",
)


def runner_name(options: PipelineOptions) -> str:
    """The runner's class name, whether given by name or by dotted path."""
    return str(options.view_as(StandardOptions).runner or "").rsplit(".", 1)[-1]


def workers_run_here(options: PipelineOptions) -> bool:
    """A local runner, or a portable one whose workers are this process (LOOPBACK)."""
    loopback = options.get_all_options().get("environment_type") == "LOOPBACK"
    return runner_name(options) in LOCAL_RUNNERS or loopback


def check_paths_reach_workers(config: ConvertConfig, options: PipelineOptions) -> None:
    """Dataflow workers never see this disk: refuse local paths. Portable runners (Flink) may
    run workers here or elsewhere: warn."""
    runner = runner_name(options)
    local = [
        f"--{name.replace('_', '-')} {value}"
        for name, value in (
            ("input", config.input),
            ("image_root", config.image_root),
            ("output", config.output),
        )
        if "://" not in value
    ]
    if not local or workers_run_here(options):
        return
    message = f"the {runner} workers may not see this machine's disk: {', '.join(local)}"
    if runner == "DataflowRunner":
        raise ConversionError(f"{message}; put the list, the images and the output on gs://")
    _LOG.warning("%s; fine for workers on this machine, otherwise use gs://", message)


def check_analyze_runs_here(config: ConvertConfig, options: PipelineOptions) -> None:
    """--analyze runs tf.Transform on the workers; only workers of this machine's environment
    have TensorFlow (the sdist and deploy/Dockerfile ship the conversion's dependencies only).
    Refused before anything is written, not after every shard."""
    if config.analyze and not workers_run_here(options):
        raise ConversionError(
            f"--analyze needs TensorFlow and tf.Transform on the workers, and the "
            f"{runner_name(options)} workers do not have them (the worker image and sdist "
            "ship the conversion's "
            "dependencies only). Convert there without --analyze, or run --analyze locally "
            "(no --runner)"
        )


def check_inputs(config: ConvertConfig) -> list[str] | None:
    """Refuses an input that cannot be converted, before anything is written; returns the
    class names of --labels (None without it)."""
    if config.input_kind == "folder":  # on GCS a folder is a prefix, not an object
        if (config.output + "/").startswith(config.input.rstrip("/") + "/"):
            # its shards would be listed as the images of a class on the next run
            raise ConversionError(
                f"--output {config.output} is inside the --input folder {config.input}; "
                "write it elsewhere"
            )
        pattern = class_folder_pattern(config.input)
        if not FileSystems.match([pattern], limits=[1])[0].metadata_list:
            raise ConversionError(
                f"--input {config.input} holds no images in class folders ({pattern})"
            )
    elif not FileSystems.exists(config.input):
        raise ConversionError(f"--input {config.input} does not exist")
    else:
        with FileSystems.open(config.input) as f:
            start = f.read(2)
        if start in (b"\xff\xfe", b"\xfe\xff"):  # every line would be rejected as not UTF-8
            raise ConversionError(f"--input {config.input} is UTF-16 text; save it as UTF-8")
    return load_labels(config.labels_file)


def load_labels(path: str | None) -> list[str] | None:
    if path is None:
        return None
    try:
        with FileSystems.open(path) as f:
            names = [line.strip() for line in f.read().decode("utf-8-sig").splitlines()]
    except (OSError, BeamIOError, UnicodeDecodeError) as e:
        raise ConversionError(f"--labels {path} cannot be read: {e}") from None
    names = [n for n in names if n]
    if not names:
        raise ConversionError(f"--labels {path} lists no class names")
    return names


def check_result(meta: dict, config: ConvertConfig) -> None:
    """Fails a run that lost inputs, wrote nothing, or rejected more than
    --max-reject-fraction."""
    inputs = meta["num_inputs"]
    rejected = meta["num_rejected"]
    if meta["num_records"] + rejected != inputs:
        # Every input ends as a record or a rejection; anything else is the runner losing
        # data (seen with Beam's multi_threading local mode: whole blocks of list lines).
        raise ConversionError(
            f"{inputs:,} inputs were listed but {meta['num_records']:,} written and "
            f"{rejected:,} rejected: {abs(inputs - meta['num_records'] - rejected):,} "
            "unaccounted for, so this output is incomplete. Rerun with --overwrite (the local "
            "runner's default modes, one process or worker processes, have not lost any)"
        )
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
