"""How a local run uses the cores, chosen by the expected seconds of work rather than a count.

Beam's local runner (FnApiRunner) runs the job in one process, in one thread per core or in
one worker process per core. Each mode has its start-up cost and its rate for the per-image
work (2 cores, measured as stated in benchmarks/README.md):

  in_memory         START_SECONDS["in_memory"]          the work on one core
  multi_threading   START_SECONDS["multi_threading"]    cores x EFFICIENCY: the GIL is held
                                                        for Example encoding, framing, Beam
  multi_processing  START_SECONDS["multi_processing"]   cores x EFFICIENCY: spawns and
                                                        imports Beam in every worker

The work is the number of inputs times what a typical input costs, estimated from a few
sampled images' headers (file size, format, pixel count; nothing is decoded) with the cost
model of `image_seconds`. Of AUTOMATIC_MODES (not threads, see there), the mode with the
smallest expected wall time is chosen; threads' constants stay as measured. Warm worker
processes (pipeline/warm_workers.py) start for little more than one process does, so with
them processes are chosen from ~1 core-second of work on.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import NamedTuple

from apache_beam.io.filesystems import FileSystems

from imgshard.pipeline.errors import ConversionError
from imgshard.pipeline.options import ConvertConfig
from imgshard.transforms.image import ImageSpec, image_library, plan_resize
from imgshard.transforms.index import class_folder_pattern
from imgshard.transforms.index import resolve_image_path as _resolve
from imgshard.transforms.list_sample import ListSample, spread
from imgshard.transforms.reading import ReadFatal, ReadUnavailable, read_bytes

__all__ = [
    "COUNT_LIMIT",
    "DECODE_SHARE",
    "DEFAULT_IMAGE_SECONDS",
    "ImageProbe",
    "LocalWork",
    "cores",
    "estimate_work",
    "image_seconds",
    "local_running_mode",
    "probe_image",
]

# Seconds a run costs besides its per-image work, 2 cores, `make bench` of 2026-11-26 (3 rounds,
# medians; benchmarks/README.md): one process and threads as whole 10-image runs (3.2 and 3.9 s;
# Beam's own floor is 2.8 and 3.2 s); worker processes as the intercept of the 4,000/12,000-photo
# runs (9.0 s; a 10-image run takes 6.9 s, Beam's floor 5.7 s), since the index stages and the
# last shard's tail grow with the input and the choice only matters for thousands of images.
# A loaded machine stretches all three, processes' most.
START_SECONDS = {"in_memory": 3.2, "multi_threading": 3.9, "multi_processing": 9.0}
# With warm workers (pipeline/warm_workers.py) the processes import while the driver does and
# leave without finalizing: a 10-image run in worker processes took a median 2.56 s against
# 2.13 s in one process (5 alternating rounds, 2026-12-04), and 500 photos 3.94 vs 4.71 s.
# Processes then pay off from ~1 core-second of work (~170 photos), not ~12.
WARM_PROCESSES_EXTRA_SECONDS = 0.45
# Marginal rate of each mode as a share of `cores` x one core's rate (the bare pool of the
# same per-image function), same bench: threads 0.67 (the GIL is held for the Python parts);
# worker processes 0.94 while both write (the run's CPU timeline; 1.02 as the slope between
# the two sizes, noisier). With threads, the switches would fall at ~2.8 core-seconds (one
# process -> threads) and ~24 (threads -> processes); the bench's runs agree: threads won at
# 4,000 photos (16.2 vs 18.8 s), processes at 12,000 (38.4 vs 46.1 s). See AUTOMATIC_MODES.
EFFICIENCY = {"in_memory": 1.0, "multi_threading": 0.67, "multi_processing": 0.94}
# The modes chosen without a flag. Not threads: Beam's multi_threading mode lost whole blocks
# of index entries in 3 of 4 runs of 100,000 thumbnails (a user trial, 2026-11-26; processes
# and one process lost none), though it would be the fastest between ~2.8 and ~24
# core-seconds. Until that is understood, one process runs up to ~12 core-seconds
# (~2,300 photos) and worker processes beyond; --direct_running_mode still picks threads.
AUTOMATIC_MODES = ("in_memory", "multi_processing")
# Counting stops here: beyond it, worker processes win for any image size.
COUNT_LIMIT = 200_000
PROBE_IMAGES = 12
# What an input costs when no sampled image could be probed (an ILSVRC-like photo).
DEFAULT_IMAGE_SECONDS = 0.006

# Decode + resize CPU time of an image library build relative to Pillow's, for which the
# model below was fitted: pillow-simd 1.72 vs 3.74 ms per corpus photo (make bench-image).
DECODE_SHARE = {"pillow-simd": 0.46}

# Core-seconds per image: a fit of transforms.image.process_image on one core of this machine
# (generated JPEGs from 64x48 to 2048x1536, q90, shorter:256; within ~25% of each size's time),
# plus Beam's and the writer's per-record work.
_PER_IMAGE = 0.3e-3 + 0.3e-3  # per call, plus per record (Example, framing, Beam)
_PER_FILE_BYTE = 14e-9  # entropy decoding grows with the compressed size
_PER_DECODED_PIXEL = 3.3e-9  # pixels after JPEG draft scaling
_PER_RESIZED_PIXEL = 15e-9  # ... when they are resized too


class ImageProbe(NamedTuple):
    """What an image's header says, without decoding it."""

    file_bytes: int
    width: int
    height: int
    format: str


class LocalWork(NamedTuple):
    """The work a local run is expected to do."""

    inputs: int  # counted up to COUNT_LIMIT
    seconds_per_input: float  # on one core


def _draft_factor(probe: ImageProbe, out_size: tuple[int, int]) -> int:
    """The 1/2, 1/4 or 1/8 scale JPEG draft decoding reaches while keeping out_size."""
    (short, long), (out_short, out_long) = sorted((probe.width, probe.height)), sorted(out_size)
    factor = 1
    while factor < 8 and short // (factor * 2) >= out_short and long // (factor * 2) >= out_long:
        factor *= 2
    return factor


def image_seconds(probe: ImageProbe, spec: ImageSpec, decode_share: float = 1.0) -> float:
    """Expected core-seconds to read, decode, resize, encode and write one such image;
    `decode_share` scales the decode and resize (the image library's speed, DECODE_SHARE)."""
    out_size, _ = plan_resize(probe.width, probe.height, spec.resize, spec.allow_upscale)
    pixels = probe.width * probe.height
    resized = out_size != (probe.width, probe.height)
    if probe.format == "JPEG":
        pixels //= _draft_factor(probe, out_size) ** 2
        if spec.resize.mode == "none":  # kept byte for byte, checked by a 1/8 decode
            pixels, resized = pixels // 64, False
    decode = _PER_FILE_BYTE * probe.file_bytes + _PER_DECODED_PIXEL * pixels
    decode += _PER_RESIZED_PIXEL * pixels if resized else 0.0
    return _PER_IMAGE + decode_share * decode


def local_running_mode(work: LocalWork, cores: int, warm: bool = False) -> tuple[int, str]:
    """(direct_num_workers, direct_running_mode) with the smallest expected wall time; `warm`:
    worker processes would be warm ones (pipeline/warm_workers.py), which start cheaply."""
    seconds = work.inputs * work.seconds_per_input
    start = dict(START_SECONDS)
    if warm:
        start["multi_processing"] = start["in_memory"] + WARM_PROCESSES_EXTRA_SECONDS

    def wall(mode: str) -> float:
        parallel = 1 if mode == "in_memory" else cores
        return start[mode] + seconds / (parallel * EFFICIENCY[mode])

    modes = ["in_memory"] if cores < 2 else list(AUTOMATIC_MODES)
    best = min(modes, key=wall)  # ties go to the cheaper start-up: AUTOMATIC_MODES order
    return (1 if best == "in_memory" else 0), best  # 0: one per core


def probe_image(path: str) -> ImageProbe | None:
    """The header of one image, or None if it cannot be read as one (the job will say why).
    Read as the job reads it (reading.read_bytes): a FIFO, a device or a huge file in the list
    must not block or stall the driver.

    Raises:
      ConversionError: no read can succeed as configured (a 403, no credentials): the run
        stops here, as the job would at its first read.
      ReadUnavailable: the store kept failing; the caller stops probing.
    """
    from PIL import Image

    try:
        data = read_bytes(path)
    except ReadFatal as e:
        raise ConversionError(str(e)) from None
    except ReadUnavailable:
        raise
    except Exception:
        return None
    try:
        with Image.open(io.BytesIO(data)) as img:
            return ImageProbe(len(data), img.width, img.height, img.format or "unknown")
    except Exception:
        return None


def _count_and_sample(
    config: ConvertConfig, sample: ListSample | None, limit: int
) -> tuple[int, list[str]]:
    """Entries in the input (up to `limit`) and a few of their image paths, spread over it."""
    if sample is None:  # a folder
        found = FileSystems.match([class_folder_pattern(config.input)], limits=[limit])
        listed = found[0].metadata_list
        return len(listed), [m.path for m in spread(listed, PROBE_IMAGES)]
    paths = [e.path for e in spread(sample.entries, PROBE_IMAGES)]
    return min(sample.inputs, limit), [_resolve(config.image_root, p) for p in paths]


def _typical_seconds(probes: Sequence[ImageProbe], spec: ImageSpec) -> float:
    if not probes:
        return DEFAULT_IMAGE_SECONDS
    share = DECODE_SHARE.get(image_library().split(" ", 1)[0], 1.0)
    return sum(image_seconds(p, spec, share) for p in probes) / len(probes)


def estimate_work(
    config: ConvertConfig, sample: ListSample | None, limit: int = COUNT_LIMIT
) -> LocalWork:
    """Counts the inputs (a list's from its `sample`, input_sample.list_sample) and probes a
    few images; an unreadable input gets the default (the job reports what is wrong with it)."""
    if sample is None and config.input_kind != "folder":
        return LocalWork(limit, DEFAULT_IMAGE_SECONDS)
    try:
        count, paths = _count_and_sample(config, sample, limit)
    except Exception:
        return LocalWork(limit, DEFAULT_IMAGE_SECONDS)
    probes = []
    for path in paths:
        try:
            probe = probe_image(path)
        except ReadUnavailable:
            break  # the job retries and reports it; the estimate makes do with what it has
        if probe is not None:
            probes.append(probe)
    return LocalWork(count, _typical_seconds(probes, config.image))


def cores() -> int:
    """The cores this process may use: its CPU affinity (taskset, a container's cpuset, a
    Slurm allocation), not the machine's count that Beam's direct_num_workers=0 goes by."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
