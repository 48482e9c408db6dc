"""100,000 tiny images on the local multi-process runner: every count adds up, memory bounded."""

import json
import os
import subprocess
import threading
import time

import psutil
import pytest

from helpers import IMGSHARD, class_color_jpeg, jpeg

# The mode the job picks for 100k inputs, forced on the small run too: growth, not a mode switch.
PROCESSES = ("--direct_num_workers=0", "--direct_running_mode=multi_processing")
CLASSES = 100
MISSING, CORRUPT = 70, 30


def tiny_dataset(root: str, count: int) -> str:
    """`count` listed inputs over CLASSES classes: 8x8 JPEGs, some missing, some corrupt."""
    images = [class_color_jpeg(label, size=8) for label in range(CLASSES)]
    corrupt = jpeg(64, 48)[:700]
    lines = []
    for label in range(CLASSES):
        os.makedirs(os.path.join(root, str(label)), exist_ok=True)
    for i in range(count - MISSING - CORRUPT):
        label = i % CLASSES
        relative = f"{label}/{i}.jpg"
        with open(os.path.join(root, relative), "wb") as f:
            f.write(images[label])
        lines.append(f"{relative} {label}\n")
    for i in range(CORRUPT):
        with open(os.path.join(root, f"0/corrupt-{i}.jpg"), "wb") as f:
            f.write(corrupt)
        lines.append(f"0/corrupt-{i}.jpg 0\n")
    lines += [f"1/missing-{i}.jpg 1\n" for i in range(MISSING)]
    list_path = os.path.join(root, "train.txt")
    with open(list_path, "w") as f:
        f.writelines(lines)
    return list_path


def run_measured(command: list[str]) -> tuple[subprocess.CompletedProcess, int]:
    """Runs `command`; returns it and the peak resident memory of its whole process tree."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            try:
                tree = [psutil.Process(process.pid)]
                tree += tree[0].children(recursive=True)
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    stdout, stderr = process.communicate(timeout=900)
    done.set()
    sampler.join()
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr), peak


def convert(list_path: str, output: str) -> tuple[subprocess.CompletedProcess, int]:
    return run_measured(
        [IMGSHARD, "convert", "--input", list_path, "--output", output]
        + ["--num-shards", "32", "--max-reject-fraction", "0.05", *PROCESSES]
    )


@pytest.mark.slow
def test_100k_tiny_images_add_up_exactly_within_the_memory_budget(tmp_path):
    small_list = tiny_dataset(str(tmp_path / "small"), 2_000)
    large_list = tiny_dataset(str(tmp_path / "large"), 100_000)

    small, small_peak = convert(small_list, str(tmp_path / "out-small"))
    large, large_peak = convert(large_list, str(tmp_path / "out-large"))

    assert small.returncode == 0, small.stderr
    assert large.returncode == 0, large.stderr
    meta = json.loads((tmp_path / "out-large" / "dataset.json").read_text())
    assert meta["num_inputs"] == 100_000
    assert meta["num_records"] == 100_000 - MISSING - CORRUPT
    assert meta["rejected"]["by_reason"] == {"missing_file": MISSING, "corrupt_image": CORRUPT}
    # the good images cycle through the classes; the bad ones are extra listings
    assert meta["labels"]["counts"] == [(100_000 - MISSING - CORRUPT) // CLASSES] * CLASSES
    # The performance issue's budget is a growth rate: 1.3x the 2,000-image footprint at
    # 32,000 images, i.e. +0.3x per 30,000 more. Beam's local runner keeps the shuffle in
    # memory (~1-2 KB per input across the process tree, benchmarks/README.md), so memory is
    # linear in the inputs, not flat; it must stay within that slope.
    allowed = small_peak * (1 + 0.3 * (100_000 - 2_000) / 30_000)
    assert large_peak <= allowed, (large_peak >> 20, small_peak >> 20, int(allowed) >> 20)

    audit = subprocess.run(
        [IMGSHARD, "audit", str(tmp_path / "out-large"), "--list", large_list, "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert audit.returncode == 0, audit.stdout[-3000:] + audit.stderr[-3000:]
    report = json.loads(audit.stdout)
    assert report["verdict"] == "PASS"
