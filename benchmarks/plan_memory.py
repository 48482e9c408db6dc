"""Memory of the index stages per input line: `imgshard convert --plan` on synthetic lists.

A list of N `n%08d/n%08d_%d.JPEG n%08d` lines over 1000 classes (ILSVRC-like paths, ~45
bytes a line; no image exists: --plan reads none) goes through ReadIndex, the vocabulary,
AssignShard, the shuffle and the per-shard counts, on the default local runner for its size.
The resident memory of the whole process tree (driver + workers) is sampled every 0.1 s:
its peak, and separately the driver's (the process that runs the job's runner and, on the
local runner, its shuffle and side inputs) and the workers' (the SDK worker processes that
run the DoFns: reading, parsing, counting). Per-line memory is the slope between two sizes.

    .venv/bin/python benchmarks/plan_memory.py --lines 100000 1000000
    .venv/bin/python benchmarks/plan_memory.py --lines 1000000 10000000 --read-stage

--read-stage measures the list-reading stages alone, as one worker runs them: every split of
the list counted (pass 1) and parsed (pass 2) in turn, in one process, entries consumed and
dropped as the next stage would receive them; its peak RSS (getrusage) shows whether a
worker's memory grows with the list or only with the split.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from typing import NamedTuple

import psutil

IMGSHARD = os.path.join(os.path.dirname(sys.executable), "imgshard")


def write_list(path: str, lines: int, classes: int = 1000) -> int:
    with open(path, "w") as f:
        for i in range(lines):
            c = i % classes
            f.write(f"n{c:08d}/n{c:08d}_{i}.JPEG n{c:08d}\n")
    return os.path.getsize(path)


def rss(process: psutil.Process) -> int:
    try:
        return process.memory_info().rss
    except psutil.NoSuchProcess:
        return 0


class Peaks(NamedTuple):
    total: int  # driver + workers, at the same moment
    driver: int
    workers: int  # every worker process together
    seconds: float


def plan_peak(list_path: str, shards: int, extra: list[str]) -> Peaks:
    """Peak RSS of one --plan run: of the process tree, of the driver, of its workers."""
    command = [IMGSHARD, "convert", "--input", list_path, "--output", list_path + ".out"]
    command += ["--plan", "--num-shards", str(shards), *extra]
    started = time.monotonic()
    job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root = psutil.Process(job.pid)
    total = driver = workers = 0
    while job.poll() is None:
        try:
            children = root.children(recursive=True)
        except psutil.NoSuchProcess:
            break
        now_driver, now_workers = rss(root), sum(rss(c) for c in children)
        driver, workers = max(driver, now_driver), max(workers, now_workers)
        total = max(total, now_driver + now_workers)
        time.sleep(0.1)
    if job.returncode:
        raise SystemExit(job.stderr.read().decode())
    return Peaks(total, driver, workers, time.monotonic() - started)


_READ_STAGE = """
import resource, sys, time
from imgshard.transforms.index import parse_list
from imgshard.transforms.list_splits import build_layout, count_split, owned_lines, plan_splits
path = sys.argv[1]
started = time.monotonic()
splits = plan_splits(path)
layout = build_layout(count_split(path, s) for s in splits)
entries = 0
for s in splits:
    for _ in parse_list(owned_lines(path, s), layout.first_lines[s.index]):
        entries += 1
seconds = time.monotonic() - started
print(len(splits), entries, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, seconds)
"""


def read_stage_peak(list_path: str) -> tuple[int, int, int, float]:
    """(splits, entries, peak RSS in bytes, seconds) of the read stages over the whole list."""
    out = subprocess.run(
        [sys.executable, "-c", _READ_STAGE, list_path], check=True, capture_output=True
    ).stdout.split()
    return int(out[0]), int(out[1]), int(out[2]), float(out[3])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--shards", type=int, default=1024)
    parser.add_argument("--read-stage", action="store_true", help="the read stages alone")
    args, extra = parser.parse_known_args()
    if args.read_stage:
        with tempfile.TemporaryDirectory() as folder:
            for lines in args.lines:
                path = os.path.join(folder, f"list-{lines}.txt")
                size = write_list(path, lines)
                splits, entries, peak, seconds = read_stage_peak(path)
                os.remove(path)
                print(
                    f"{lines:>11,} lines ({size / 1e6:.0f} MB list, {splits} splits): "
                    f"{entries:,} entries, read stages peak {peak / 1e6:,.0f} MB, {seconds:.0f} s",
                    flush=True,
                )
        return
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for lines in args.lines:
            path = os.path.join(folder, f"list-{lines}.txt")
            size = write_list(path, lines)
            peaks = plan_peak(path, args.shards, extra)
            os.remove(path)
            results.append((lines, peaks.total))
            print(
                f"{lines:>11,} lines ({size / 1e6:.0f} MB list): peak {peaks.total / 1e6:,.0f} MB "
                f"(driver + workers; driver {peaks.driver / 1e6:,.0f} MB, workers "
                f"{peaks.workers / 1e6:,.0f} MB), {peaks.seconds:.0f} s",
                flush=True,
            )
    for (n0, m0), (n1, m1) in zip(results, results[1:], strict=False):
        print(f"  {n0:,} -> {n1:,} lines: {(m1 - m0) / (n1 - n0):,.0f} bytes per added line")


if __name__ == "__main__":
    main()
