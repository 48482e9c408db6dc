"""The conversion on Flink against the local runner: per-job overhead, per-image rate, and
where a Flink run's time goes. Writes benchmarks/RESULTS-flink.md.

    IMGSHARD_FLINK_JOB_SERVER_JAR=/path/to/beam-runners-flink-1.20-job-server-X.Y.Z.jar \
      make flink-venv && .venv/bin/python benchmarks/flink.py [--sizes 1000 4000] [--repeats 2]

Both runners run from .venv-flink (the job server's Beam version), so the comparison is one
SDK on two runners. The Flink runs use `make flink-up`'s cluster (started and stopped here:
1 JobManager + 2 TaskManagers x 2 slots, parallelism 4) through deploy/flink/submit.sh. The
local runs are the default local mode. Runs alternate local, Flink at each size, so the
machine's noise falls on both. Overhead and rate come from the line through the two sizes'
medians (intercept: seconds of a run with no images; slope: seconds per image).

Where the time goes, per Flink run: the driver's wall time split into before the Flink job
exists (driver start, list sample, graph, the job server's JVM start and translation), the
Flink job (REST /jobs/<id>: its duration, and the longest-running vertices), and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conversion import _subset_list  # noqa: E402
from corpus import build_corpus  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLINK_BIN = os.path.join(ROOT, ".venv-flink", "bin")
CLUSTER = os.path.join(ROOT, "deploy", "flink", "local-cluster.sh")
SUBMIT = os.path.join(ROOT, "deploy", "flink", "submit.sh")
RESULTS = os.path.join(ROOT, "benchmarks", "RESULTS-flink.md")
FLAGS = ["--num-shards", "16", "--seed", "1", "--resize", "shorter:256", "--overwrite"]


def _rest(address: str, path: str) -> dict:
    with urllib.request.urlopen(f"http://{address}{path}", timeout=10) as answer:
        return json.load(answer)


def local_seconds(list_path: str, image_root: str, output: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [os.path.join(FLINK_BIN, "imgshard"), "convert", "--input", list_path]
        + ["--image-root", image_root, "--output", output, *FLAGS],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def sdk_worker_starts(log_dir: str) -> int:
    """SDK workers started so far by the TaskManagers: each logs this line once, at its start."""
    count = 0
    for name in os.listdir(log_dir):
        if "taskexecutor" in name and name.endswith(".log"):
            with open(os.path.join(log_dir, name), errors="replace") as f:
                count += sum(
                    "sdk_worker_main" in line and "Logging handler created" in line for line in f
                )
    return count


def flink_run(list_path: str, image_root: str, output: str, env: dict, address: str) -> dict:
    """Wall seconds of the submit, the Flink job's own timing from the REST API, and the SDK
    workers its TaskManagers started."""
    log_dir = os.path.join(env["CLUSTER_DIR"], "log")
    workers_before = sdk_worker_starts(log_dir)
    known = {j["jid"] for j in _rest(address, "/jobs/overview")["jobs"]}
    started_wall = time.time()
    started = time.perf_counter()
    subprocess.run(
        [SUBMIT, "--input", list_path, "--image-root", image_root, "--output", output, *FLAGS],
        env=env,
        check=True,
        capture_output=True,
    )
    wall = time.perf_counter() - started
    (job,) = [j for j in _rest(address, "/jobs/overview")["jobs"] if j["jid"] not in known]
    detail = _rest(address, f"/jobs/{job['jid']}")
    vertices = sorted(
        ((v["duration"] / 1000, v["name"][:70]) for v in detail["vertices"]), reverse=True
    )
    return {
        "wall": wall,
        "before": job["start-time"] / 1000 - started_wall,
        "job": job["duration"] / 1000,
        "tasks": job["tasks"]["total"],
        "vertices": vertices[:4],
        "worker_starts": sdk_worker_starts(log_dir) - workers_before,
    }


def fit(sizes: list[int], medians: list[float]) -> tuple[float, float]:
    """(intercept seconds, seconds per image) of the line through the first and last size."""
    slope = (medians[-1] - medians[0]) / (sizes[-1] - sizes[0])
    return medians[0] - slope * sizes[0], slope


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    jar = os.environ.get("IMGSHARD_FLINK_JOB_SERVER_JAR", "")
    if not os.path.isfile(jar) or not os.path.isfile(os.path.join(FLINK_BIN, "imgshard")):
        sys.exit("set IMGSHARD_FLINK_JOB_SERVER_JAR and run make flink-venv first")
    work = tempfile.mkdtemp(prefix="imgshard-bench-flink-")
    full = build_corpus(os.path.join(work, "photos"), max(args.sizes))
    image_root = os.path.dirname(full)
    lists = {n: _subset_list(full, n, os.path.join(work, f"list-{n}.txt")) for n in args.sizes}

    cluster_env = {
        **os.environ,
        "CLUSTER_DIR": os.path.join(work, "cluster"),
        "PYTHON": os.path.join(FLINK_BIN, "python"),
    }
    subprocess.run(
        [CLUSTER, "up", "--taskmanagers", "2", "--slots", "2"], env=cluster_env, check=True
    )
    try:
        address = open(os.path.join(work, "cluster", "address")).read().strip()
        environment = open(os.path.join(work, "cluster", "environment")).read().strip()
        submit_env = {
            **cluster_env,
            "FLINK_MASTER": address,
            "ENVIRONMENT": "PROCESS",
            "ENVIRONMENT_CONFIG": environment,
            "JOB_SERVER_JAR": jar,
            "IMGSHARD": os.path.join(FLINK_BIN, "imgshard"),
        }
        local: dict[int, list[float]] = {n: [] for n in args.sizes}
        flink: dict[int, list[dict]] = {n: [] for n in args.sizes}
        for _ in range(args.repeats):
            for n in args.sizes:
                local[n].append(local_seconds(lists[n], image_root, os.path.join(work, "local")))
                flink[n].append(
                    flink_run(
                        lists[n], image_root, os.path.join(work, "flink"), submit_env, address
                    )
                )
                print(f"{n}: local {local[n][-1]:.1f} s, flink {flink[n][-1]['wall']:.1f} s")
    finally:
        subprocess.run([CLUSTER, "down"], env=cluster_env, check=False)
    report = _report(args.sizes, local, flink, jar)
    with open(RESULTS, "w") as f:
        f.write(report)
    print(report)
    return 0


def _report(sizes, local, flink, jar) -> str:
    local_medians = [statistics.median(local[n]) for n in sizes]
    flink_medians = [statistics.median(r["wall"] for r in flink[n]) for n in sizes]
    local_fixed, local_slope = fit(sizes, local_medians)
    flink_fixed, flink_slope = fit(sizes, flink_medians)
    lines = [
        "# Flink vs the local runner (`benchmarks/flink.py`)",
        "",
        f"Job server `{os.path.basename(jar)}`, SDK from .venv-flink at its version; "
        f"{os.cpu_count()} cores; real-photo corpus (benchmarks/corpus.py), "
        f"`{' '.join(FLAGS[:-1])}`; Flink: 1 JobManager + 2 TaskManagers x 2 slots, "
        "parallelism 4, PROCESS workers; local: the default local mode. Medians of "
        f"{len(local[sizes[0]])} alternating runs.",
        "",
        "| images | local s | Flink s | Flink / local | Flink: before its job s | Flink job s "
        "| tasks | SDK workers started |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n, lm, fm in zip(sizes, local_medians, flink_medians, strict=True):
        before = statistics.median(r["before"] for r in flink[n])
        job = statistics.median(r["job"] for r in flink[n])
        tasks = flink[n][0]["tasks"]
        starts = statistics.median(r["worker_starts"] for r in flink[n])
        lines.append(
            f"| {n:,} | {lm:.1f} | {fm:.1f} | {fm / lm:.2f} | {before:.1f} | {job:.1f} | {tasks} "
            f"| {starts:.0f} |"
        )
    lines += [
        "",
        "| | local | Flink |",
        "|---|---|---|",
        f"| per-job overhead (intercept) | {local_fixed:.1f} s | {flink_fixed:.1f} s |",
        f"| per-image rate (slope) | {1 / local_slope:.0f} images/s "
        f"| {1 / flink_slope:.0f} images/s |",
        "",
        f"Longest vertices of a {sizes[-1]:,}-image Flink job (seconds, name):",
        "",
    ]
    lines += [f"- {s:.1f} s `{name}`" for s, name in flink[sizes[-1]][0]["vertices"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
