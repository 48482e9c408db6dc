"""Memory of the index stages per input line: `imgshard convert --plan` on synthetic lists.

A list of N `n%08d/n%08d_%d.JPEG n%08d` lines over 1000 classes (ILSVRC-like paths, ~45
bytes a line; no image exists: --plan reads none) goes through ReadIndex, the vocabulary,
AssignShard, the shuffle and the per-shard counts, on the default local runner for its size.
The peak resident memory of the whole process tree (driver + workers) is sampled every
0.1 s; per-line memory is the slope between two sizes.

    .venv/bin/python benchmarks/plan_memory.py --lines 100000 1000000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import psutil

IMGSHARD = os.path.join(os.path.dirname(sys.executable), "imgshard")


def write_list(path: str, lines: int, classes: int = 1000) -> int:
    with open(path, "w") as f:
        for i in range(lines):
            c = i % classes
            f.write(f"n{c:08d}/n{c:08d}_{i}.JPEG n{c:08d}\n")
    return os.path.getsize(path)


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def plan_peak(list_path: str, shards: int, extra: list[str]) -> tuple[int, float, list[int]]:
    """(peak RSS of the process tree in bytes, seconds, peak RSS of each process: the driver
    first, then its children by start order) of one --plan run."""
    command = [IMGSHARD, "convert", "--input", list_path, "--output", list_path + ".out"]
    command += ["--plan", "--num-shards", str(shards), *extra]
    started = time.monotonic()
    job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root, peak = psutil.Process(job.pid), 0
    each: dict[int, int] = {}  # pid -> its own peak
    while job.poll() is None:
        peak = max(peak, tree_rss(root))
        for p in [root, *_children(root)]:
            try:
                each[p.pid] = max(each.get(p.pid, 0), p.memory_info().rss)
            except psutil.NoSuchProcess:
                pass
        time.sleep(0.1)
    if job.returncode:
        raise SystemExit(job.stderr.read().decode())
    return peak, time.monotonic() - started, list(each.values())


def _children(process: psutil.Process) -> list[psutil.Process]:
    try:
        return process.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--shards", type=int, default=1024)
    args, extra = parser.parse_known_args()
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for lines in args.lines:
            path = os.path.join(folder, f"list-{lines}.txt")
            size = write_list(path, lines)
            peak, seconds, each = plan_peak(path, args.shards, extra)
            results.append((lines, peak))
            print(
                f"{lines:>11,} lines ({size / 1e6:.0f} MB list): peak {peak / 1e6:,.0f} MB "
                f"(driver + workers), {seconds:.0f} s; per process (driver first): "
                + ", ".join(f"{m / 1e6:,.0f}" for m in each)
                + " MB"
            )
    for (n0, m0), (n1, m1) in zip(results, results[1:], strict=False):
        print(f"  {n0:,} -> {n1:,} lines: {(m1 - m0) / (n1 - n0):,.0f} bytes per added line")


if __name__ == "__main__":
    main()
