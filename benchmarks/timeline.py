"""Per-process CPU timelines of a run: where a conversion's wall time goes, phase by phase.

Samples the CPU time of every process in the run's tree once a second (psutil), tells the
driver from Beam's SDK worker processes, and splits the run at its longest stretch with every
worker busy (the writing phase) into: before it (the driver's imports and graph, the workers'
spawn and imports, the index stages), the stretch itself, and after it (the last shards,
finalize, teardown).

Usage: python benchmarks/timeline.py [--interval S] -- imgshard convert ... (prints it)
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import NamedTuple

BUSY = 0.8  # a worker using at least this share of a core is busy


class Timeline(NamedTuple):
    wall: float
    seconds: list[float]  # sample times since the start
    driver: list[float]  # CPU share of a core in each interval
    workers: list[list[float]]  # per worker process, same intervals
    warm: list[float]  # the warm worker process (pipeline/warm_workers.py), same intervals


class Phases(NamedTuple):
    before: float  # wall seconds before every worker is busy for good
    writing: float  # the longest stretch with every worker busy
    after: float
    busy_share: float  # mean CPU share of the workers within the stretch


def record(command: list[str], interval: float = 1.0, env: dict | None = None) -> Timeline:
    """Runs `command` to the end, sampling its process tree every `interval` seconds."""
    import psutil

    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    root = psutil.Process(process.pid)
    last: dict[int, float] = {}
    workers: dict[int, list[float]] = {}
    driver: list[float] = []
    warm: list[float] = []
    seconds: list[float] = []
    while process.poll() is None:
        time.sleep(interval)
        try:
            members = [root, *root.children(recursive=True)]
        except psutil.Error:
            break
        shares: dict[int, float] = {}
        driver_share = warm_share = 0.0
        for member in members:
            try:
                cpu = sum(member.cpu_times()[:2])
                command = " ".join(member.cmdline())
                # Beam spawns `... sdk_worker_main`; warm workers are forks of the warm process
                is_warm = "worker_zygote" in command and member.ppid() == root.pid
                is_worker = "sdk_worker_main" in command or (
                    "worker_zygote" in command and not is_warm
                )
            except psutil.Error:
                continue
            share = (cpu - last.get(member.pid, 0.0)) / interval
            last[member.pid] = cpu
            if member.pid == root.pid:
                driver_share = share
            elif is_warm:
                warm_share = share
            elif is_worker and member.name().startswith("python"):
                shares[member.pid] = share
        driver.append(driver_share)
        warm.append(warm_share)
        for pid in shares:  # a worker seen late has idled until then
            workers.setdefault(pid, [0.0] * len(seconds))
        for pid, series in workers.items():
            series.append(shares.get(pid, 0.0))
        seconds.append(time.perf_counter() - started)
    _, stderr = process.communicate()
    if process.returncode:
        raise RuntimeError(f"{command[0]} failed: {stderr.decode()[-2000:]}")
    return Timeline(time.perf_counter() - started, seconds, driver, list(workers.values()), warm)


def phases(timeline: Timeline) -> Phases:
    """The run split at its longest stretch of samples with every worker busy."""
    if not timeline.workers:
        return Phases(timeline.wall, 0.0, 0.0, 0.0)
    busy = [all(w[i] >= BUSY for w in timeline.workers) for i in range(len(timeline.seconds))]
    best, start = (0, 0), None
    for i, is_busy in enumerate([*busy, False]):
        if is_busy and start is None:
            start = i
        elif not is_busy and start is not None:
            best = max(best, (i - start, start), key=lambda r: r[0])
            start = None
    length, first = best
    if not length:
        return Phases(timeline.wall, 0.0, 0.0, 0.0)
    # sample i covers (seconds[i-1], seconds[i]]
    begin = timeline.seconds[first - 1] if first else 0.0
    end = timeline.seconds[first + length - 1]
    shares = [w[i] for w in timeline.workers for i in range(first, first + length)]
    return Phases(begin, end - begin, timeline.wall - end, sum(shares) / len(shares))


def format_timeline(timeline: Timeline) -> str:
    header = "  t s | driver |   warm | " + " | ".join(
        f"worker {i}" for i in range(len(timeline.workers))
    )
    rows = [
        f"{t:6.1f} | {d:6.0%} | {z:6.0%} | " + " | ".join(f"{w[i]:8.0%}" for w in timeline.workers)
        for i, (t, d, z) in enumerate(
            zip(timeline.seconds, timeline.driver, timeline.warm, strict=True)
        )
    ]
    return "\n".join([header, *rows])


if __name__ == "__main__":
    argv = sys.argv[1:]
    interval = 1.0
    if argv[:1] == ["--interval"]:
        interval, argv = float(argv[1]), argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    recorded = record(argv, interval)
    print(format_timeline(recorded))
    print(phases(recorded))
