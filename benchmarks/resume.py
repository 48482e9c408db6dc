"""`make bench-resume`: what finishing a run that died at 80% costs, against a full run.

On the photo corpus of `make bench` (built if missing): a full conversion; a conversion
SIGKILLed right after its 80%-th shard was journaled (pipeline/seams.py), then the
same command with --resume. Alternating, several rounds; medians. Writes
benchmarks/RESULTS-resume.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))

from conversion import SHORTER, _subset_list  # noqa: E402
from corpus import build_corpus  # noqa: E402

IMGSHARD = os.path.join(os.path.dirname(sys.executable), "imgshard")
CRASH_ENV = "IMGSHARD_CRASH_AT"


def convert(list_path: str, images: str, output: str, shards: int, crash_after: int = 0) -> float:
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    if crash_after:
        env[CRASH_ENV] = f"shard_journaled:{crash_after}"
    started = time.perf_counter()
    done = subprocess.run(
        [IMGSHARD, "convert", "--input", list_path, "--image-root", images, "--output", output]
        + ["--num-shards", str(shards), "--resize", f"shorter:{SHORTER}", "--resume"],
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    expected = -signal.SIGKILL if crash_after else 0
    if done.returncode != expected:
        raise RuntimeError(f"convert exited {done.returncode}: {done.stderr[-2000:]}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--shards", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "imgshard-bench"))
    parser.add_argument(
        "--results", default=os.path.join(os.path.dirname(__file__), "RESULTS-resume.md")
    )
    args = parser.parse_args(argv)
    images = os.path.join(args.work, "photos")
    full_list = os.path.join(images, "train.txt")
    if not os.path.exists(full_list):
        build_corpus(images, max(args.images, 12000))
    list_path = _subset_list(full_list, args.images, os.path.join(args.work, "resume.txt"))
    done_shards = int(args.shards * 0.8)

    runs: dict[str, list[float]] = {"full": [], "killed": [], "resume": []}
    for repeat in range(args.repeats):
        print(f"round {repeat + 1}/{args.repeats}", flush=True)
        out = os.path.join(args.work, "resume-out")
        shutil.rmtree(out, ignore_errors=True)
        runs["full"].append(convert(list_path, images, out, args.shards))
        shutil.rmtree(out)
        runs["killed"].append(convert(list_path, images, out, args.shards, done_shards))
        runs["resume"].append(convert(list_path, images, out, args.shards))
    med = {k: statistics.median(v) for k, v in runs.items()}

    def listed(key: str) -> str:
        return ", ".join(f"{v:.1f}" for v in runs[key])

    rows = "\n".join(
        f"| {what} | {med[key]:.1f} | {listed(key)} |"
        for key, what in (
            ("full", "full conversion"),
            (
                "killed",
                f"killed (SIGKILL) once {done_shards} of {args.shards} shards were journaled",
            ),
            ("resume", "the same command again (`--resume`): finishes the rest"),
        )
    )
    text = f"""# Resume benchmark (`make bench-resume`)

Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}.
{args.images:,} photos of the `make bench` corpus, shorter:{SHORTER}, {args.shards} shards, the
local default runner. {args.repeats} alternating rounds; medians (every run listed).

| run | seconds (median) | runs |
|---|---|---|
{rows}

- finishing costs **{med["resume"] / med["full"]:.2f}** of a full run, for the
  {1 - done_shards / args.shards:.0%} of the shards left; the rest of it is the fixed cost of a
  run, listing and shuffling the whole index again, and hashing the kept shards to verify them.
"""
    with open(args.results, "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
