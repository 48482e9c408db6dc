"""`make bench-fixed` (part of `make bench`): a local run's fixed cost, and how close a whole
run comes to the bare per-image loop, for each image library build. Writes RESULTS-fixed.md.

Every run is a fresh process timed from outside, start-up included; the contenders alternate
within each round, and medians are reported beside every run:

  imgshard    `imgshard convert` as a user runs it (the driver chooses the local mode), 64
              shards: 10 photos, 4,000 and 12,000
  spawned     the same with Beam's own spawned SDK workers (IMGSHARD_WARM_WORKERS=0, worker
              processes forced): what the warm workers (pipeline/warm_workers.py) save
  bare        benchmarks/bare_loop.py: read + process_image in a pool of one process per core
  validation  a 50,000-image validation split (the corpus hard-linked under 50,000 names,
              `--split validation`), imgshard against bare

Builds: the venv's Pillow, and pillow-simd when `make simd-lib` built it (put first on
PYTHONPATH, for the driver, its workers and the bare loop alike). From the 4,000/12,000 runs:
the marginal cost per image (slope) and the fixed cost (intercept). One 12,000-photo run per
build is split into phases by its CPU timeline (benchmarks/timeline.py), and the shards of the
warm and spawned runs are compared byte for byte.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))

from conversion import SHORTER, _subset_list, convert_command  # noqa: E402
from corpus import build_corpus  # noqa: E402
from timeline import phases, record  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.dirname(sys.executable)
SIMD_LIB = os.path.join(os.path.dirname(HERE), ".cache", "pillow-simd")
SIZES = (10, 4000, 12000)
VALIDATION = 50_000
SHARDS = 64
PROCESSES = ("--direct_running_mode=multi_processing",)


def validation_split(full_list: str, root: str, count: int) -> str:
    """`count` distinct names (hard links into the corpus) in ILSVRC's validation style."""
    with open(full_list) as f:
        lines = [line.split() for line in f if line.strip()]
    folder = os.path.join(root, "val")
    os.makedirs(folder, exist_ok=True)
    out = os.path.join(root, f"val-{count}.txt")
    with open(out, "w") as f:
        for i in range(count):
            relative, label = lines[i % len(lines)]
            name = f"val/ILSVRC2012_val_{i + 1:08d}.JPEG"
            if not os.path.exists(os.path.join(root, name)):
                os.link(os.path.join(root, relative), os.path.join(root, name))
            f.write(f"{name} {label}\n")
    return out


def timed(command: list[str], env: dict) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"{command[:2]} failed: {done.stderr.decode()[-2000:]}")
    return seconds


def convert(list_path: str, root: str, out: str, *extra: str) -> list[str]:
    return convert_command(list_path, root, out, extra, num_shards=SHARDS)


def bare(list_path: str, root: str) -> list[str]:
    bare_loop = os.path.join(HERE, "bare_loop.py")
    return [sys.executable, bare_loop, list_path, root, "--resize", f"shorter:{SHORTER}"]


def shard_digest(folder: str) -> str:
    digest = hashlib.sha256()
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.isfile(path) and name != "dataset.json":
            with open(path, "rb") as f:
                digest.update(name.encode() + f.read())
    return digest.hexdigest()


def library(env: dict) -> str:
    code = "from imgshard.transforms.image import image_library; print(image_library())"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def builds() -> dict[str, dict]:
    base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    found = {library(base).split(",")[0]: base}
    if os.path.isdir(os.path.join(SIMD_LIB, "PIL")):
        simd = {**base, "PYTHONPATH": SIMD_LIB}
        found.setdefault(library(simd).split(",")[0], simd)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="tiny,small,large")
    parser.add_argument("--validation", type=int, default=VALIDATION, help="its images")
    parser.add_argument("--validation-rounds", type=int, default=2)
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "imgshard-bench"))
    parser.add_argument("--results", default=os.path.join(HERE, "RESULTS-fixed.md"))
    args = parser.parse_args(argv)
    sizes = tuple(int(n) for n in args.sizes.split(","))
    import psutil  # noqa: F401  (timeline.record needs it: fail now, not after every round)

    root = os.path.join(args.work, "photos")
    full_list = os.path.join(root, "train.txt")
    if not os.path.exists(full_list):
        print(f"building a corpus of {max(sizes)} photos in {root} ...", flush=True)
        build_corpus(root, max(sizes))
    lists = {
        n: _subset_list(full_list, n, os.path.join(args.work, f"fixed-{n}.txt")) for n in sizes
    }
    validation = validation_split(full_list, root, args.validation)
    found = builds()
    print(f"builds: {', '.join(found)}", flush=True)

    runs: dict[tuple[str, str], list[float]] = {}

    def add(build: str, key: str, seconds: float) -> None:
        runs.setdefault((build, key), []).append(seconds)
        print(f"  {build:12s} {key:22s} {seconds:7.2f} s", flush=True)

    digests: dict[tuple[str, str], str] = {}
    for round_ in range(args.rounds):
        print(f"round {round_ + 1}/{args.rounds}", flush=True)
        for build, env in found.items():
            spawned_env = {**env, "IMGSHARD_WARM_WORKERS": "0"}
            for n in sizes:
                out = os.path.join(args.work, f"fixed-out-{build}-{n}")
                add(build, f"imgshard {n}", timed(convert(lists[n], root, out), env))
                if n == max(sizes) and round_ == 0:
                    digests[(build, "warm")] = shard_digest(out)
                if n != min(sizes):
                    out_spawned = out + "-spawned"
                    add(
                        build,
                        f"spawned {n}",
                        # processes forced: at small sizes the driver would choose one
                        timed(convert(lists[n], root, out_spawned, *PROCESSES), spawned_env),
                    )
                    if n == max(sizes) and round_ == 0:
                        digests[(build, "spawned")] = shard_digest(out_spawned)
                    add(build, f"bare {n}", timed(bare(lists[n], root), env))
    for round_ in range(args.validation_rounds):
        print(f"validation round {round_ + 1}/{args.validation_rounds}", flush=True)
        for build, env in found.items():
            out = os.path.join(args.work, f"fixed-out-{build}-validation")
            command = convert(validation, root, out, "--split", "validation")
            add(build, "imgshard validation", timed(command, env))
            add(build, "bare validation", timed(bare(validation, root), env))
    timelines = {}
    for build, env in found.items():
        out = os.path.join(args.work, f"fixed-out-{build}-timeline")
        command = convert(lists[max(sizes)], root, out)
        timelines[build] = phases(record(command, interval=0.25, env=env))
    with open(args.results, "w") as f:
        f.write(report(runs, found, digests, timelines, args, sizes))
    print(f"wrote {args.results}")
    return 0


def table_header(*columns: str) -> str:
    return "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns)


def report(runs, found, digests, timelines, args, sizes) -> str:
    med = {k: statistics.median(v) for k, v in runs.items()}

    def cell(build: str, key: str) -> str:
        values = runs.get((build, key))
        if not values:
            return "-"
        return f"**{med[(build, key)]:.2f}** ({', '.join(f'{v:.2f}' for v in values)})"

    small, large = sizes[1], sizes[2]
    rows, derived, warm_rows, validation_rows, phase_rows = [], [], [], [], []
    for build in found:
        rows.append(
            f"| {build} | {cell(build, f'imgshard {sizes[0]}')} | "
            f"{cell(build, f'imgshard {small}')} | {cell(build, f'imgshard {large}')} | "
            f"{cell(build, f'bare {small}')} | {cell(build, f'bare {large}')} |"
        )
        ours = (med[(build, f"imgshard {small}")], med[(build, f"imgshard {large}")])
        theirs = (med[(build, f"bare {small}")], med[(build, f"bare {large}")])
        slope_ours = (ours[1] - ours[0]) / (large - small)
        slope_bare = (theirs[1] - theirs[0]) / (large - small)
        fixed = ours[0] - small * slope_ours
        derived.append(
            f"| {build} | {fixed:.2f} | {med[(build, f'imgshard {sizes[0]}')]:.2f} | "
            f"{slope_bare / slope_ours:.3f} | {theirs[1] / ours[1]:.3f} |"
        )
        spawned = (med[(build, f"spawned {small}")], med[(build, f"spawned {large}")])
        warm_rows.append(
            f"| {build} | {cell(build, f'spawned {small}')} | {cell(build, f'spawned {large}')} "
            f"| {spawned[0] - ours[0]:.2f} / {spawned[1] - ours[1]:.2f} |"
        )
        if (build, "imgshard validation") in med:
            ratio = med[(build, "bare validation")] / med[(build, "imgshard validation")]
            validation_rows.append(
                f"| {build} | {cell(build, 'imgshard validation')} | "
                f"{cell(build, 'bare validation')} | {ratio:.3f} |"
            )
        p = timelines[build]
        phase_rows.append(
            f"| {build} | {p.before:.2f} | {p.writing:.2f} | {p.after:.2f} | {p.busy_share:.0%} |"
        )
    identical = [
        f"- {build}: warm and spawned workers' shards "
        + (
            "**byte-identical**"
            if digests.get((build, "warm")) == digests.get((build, "spawned"))
            else "**DIFFER**"
        )
        + f" (sha256 over every file but dataset.json: {digests.get((build, 'warm'), '')[:16]})"
        for build in found
    ]
    newline = "\n"
    runs_header = table_header(
        "build",
        f"imgshard, {sizes[0]} photos",
        f"imgshard, {small:,}",
        f"imgshard, {large:,}",
        f"bare loop, {small:,}",
        f"bare loop, {large:,}",
    )
    targets_header = table_header(
        "build",
        "fixed cost (intercept), s (<= 3)",
        f"{sizes[0]}-photo run, s (<= 2.5)",
        "marginal rate vs bare (>= 0.95)",
        f"end to end at {large:,} vs bare (>= 0.9)",
    )
    warm_header = table_header(
        "build",
        f"spawned, {small:,}",
        f"spawned, {large:,}",
        f"seconds saved by warm workers ({small:,} / {large:,})",
    )
    return f"""# Fixed cost and end to end against the bare loop (`make bench-fixed`)

Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}.
Builds: {", ".join(f"{b} ({library(e)})" for b, e in found.items())}. Corpus: real-photo JPEGs
at ILSVRC-like sizes (benchmarks/corpus.py), shorter:{SHORTER}, JPEG q90, {SHARDS} shards.
{args.rounds} alternating rounds ({args.validation_rounds} for the validation split); wall
seconds of fresh processes timed from outside, medians in bold, every run listed.

## Runs

{runs_header}
{newline.join(rows)}

## Against the targets

{targets_header}
{newline.join(derived)}

## Warm workers against Beam's spawned ones (`IMGSHARD_WARM_WORKERS=0`)

{warm_header}
{newline.join(warm_rows)}

{newline.join(identical)}

## A {args.validation:,}-image validation split (within 10% of the bare loop: ratio >= 0.9)

| build | imgshard | bare loop | bare / imgshard |
|---|---|---|---|
{newline.join(validation_rows) or "| (not run) | | | |"}

## Where a {large:,}-photo run's time goes (one run per build, 0.25 s CPU timeline)

| build | before writing, s | writing, s | after, s | workers busy while writing |
|---|---|---|---|---|
{newline.join(phase_rows)}
"""


if __name__ == "__main__":
    sys.exit(main())
