"""SIGKILL at any moment, then the same command again: the same bytes, nothing partial seen.

Named crash points (pipeline/seams.py) hit the narrow windows a timer would rarely
hit (a shard renamed but not yet journaled, dataset.json about to be written); random kill
times over a multi-process run cover the rest.
"""

import contextlib
import json
import os
import random
import signal
import subprocess
import threading
import time

import pytest

from helpers import IMGSHARD, IN_PROCESS, all_files, jpeg, shard_files, sorted_dataset, write
from imgshard.pipeline.journal import journal_dir
from imgshard.pipeline.seams import ENV
from imgshard.transforms.storage import TMP_MARKER
from imgshard.transforms.tfrecord import iter_records

PROCESSES = ("--direct_num_workers=2", "--direct_running_mode=multi_processing")
NUM_SHARDS = 8


def command(list_path, output, runner) -> list[str]:
    """The user's command; --resume from the start, so a rerun is the very same command."""
    return [
        IMGSHARD,
        "convert",
        "--input",
        str(list_path),
        "--output",
        str(output),
        "--num-shards",
        str(NUM_SHARDS),
        "--max-reject-fraction",
        "0.1",
        "--resume",
        *runner,
    ]


def convert(list_path, output, runner=IN_PROCESS, crash_at=None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop(ENV, None)
    if crash_at:
        env[ENV] = crash_at
    return subprocess.run(
        command(list_path, output, runner), capture_output=True, text=True, env=env, timeout=300
    )


def counters(stdout: str) -> dict[str, int]:
    line = next(x for x in stdout.splitlines() if x.strip().startswith("counters"))
    pairs = (item.split("=") for item in line.split(None, 1)[1].split(", "))
    return {name: int(value.replace(",", "")) for name, value in pairs}


def assert_every_visible_shard_is_whole(output) -> None:
    for path in shard_files(str(output)):
        with open(path, "rb") as f:
            for _ in iter_records(f):  # raises on a truncated frame or a CRC mismatch
                pass


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """8 classes x 12 images and one corrupt file (a rejection some shard must journal)."""
    root = tmp_path_factory.mktemp("crash")
    list_path = sorted_dataset(str(root / "d"), classes=8, per_class=12)
    write(str(root / "d" / "bad" / "cut.JPEG"), jpeg(300, 200)[:1500])
    with open(list_path, "a") as f:
        f.write("bad/cut.JPEG 3\n")
    return list_path


@pytest.fixture(scope="module")
def reference(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "out"
    done = convert(dataset, out)
    assert done.returncode == 0, done.stderr
    return all_files(out)


CRASH_POINTS = [
    "index_entry:40",  # while listing
    "shard_renamed:1",  # the first shard is in place, its journal entry is not
    "shard_journaled:3",
    "shard_renamed:7",
    "finalize_before_dataset_json:1",  # labels.txt and the report written, dataset.json not
    "finalize_after_dataset_json:1",  # before the leftover temporary files are removed
]


@pytest.mark.parametrize("crash_at", CRASH_POINTS)
def test_a_run_killed_at_a_crash_point_reruns_to_the_same_bytes(
    dataset, reference, tmp_path, crash_at
):
    out = tmp_path / "out"
    killed = convert(dataset, out, crash_at=crash_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert_every_visible_shard_is_whole(out)
    point, _, nth = crash_at.partition(":")
    if point != "finalize_after_dataset_json":
        assert not (out / "dataset.json").exists()  # nothing claims the output is complete
    journaled = sorted(n for n in os.listdir(journal_dir(str(out), "train")) if n != "run.json")
    expected_journaled = {
        "index_entry": 0,
        "shard_renamed": int(nth) - 1,  # the last one renamed is rewritten, same bytes
        "shard_journaled": int(nth),
    }.get(point, NUM_SHARDS)
    assert len(journaled) == expected_journaled

    rerun = convert(dataset, out)

    assert rerun.returncode == 0, rerun.stderr
    assert all_files(out) == reference  # byte for byte, journal included; no temp files
    seen = counters(rerun.stdout)
    assert seen.get("shards_resumed", 0) == len(journaled)
    shards = json.loads(reference["dataset.json"])["shards"]
    skipped = {name.removesuffix(".json") for name in journaled}
    redone = sum(s["records"] for s in shards if s["name"] not in skipped)
    assert seen.get("records_written", 0) == redone  # only the unfinished part is redone


def test_temporary_files_of_killed_writers_are_removed_by_the_rerun(dataset, reference, tmp_path):
    out = tmp_path / "out"
    killed = convert(dataset, out, crash_at="shard_journaled:2")
    assert killed.returncode == -signal.SIGKILL
    orphan = out / f".train-00005-of-00008.tfrecord{TMP_MARKER}0123abcd"
    orphan.write_bytes(b"half a shard")  # as a writer killed mid-shard leaves it
    assert convert(dataset, out).returncode == 0
    assert not orphan.exists()
    assert all_files(out) == reference


@pytest.mark.slow
def test_random_sigkills_of_a_multi_process_run_never_show_a_partial_shard(tmp_path):
    """Three kills at random moments of a 2-process run, each rerun resuming the last."""
    list_path = sorted_dataset(str(tmp_path / "d"), classes=10, per_class=60)
    reference = tmp_path / "reference"
    started = time.monotonic()
    assert convert(list_path, reference, PROCESSES).returncode == 0
    full_seconds = time.monotonic() - started
    expected = all_files(reference)

    out = tmp_path / "out"
    partial_seen: list[str] = []
    stop = threading.Event()

    def watch():  # a reader polling the output the whole time
        while not stop.is_set():
            try:
                assert_every_visible_shard_is_whole(out)
            except FileNotFoundError:
                pass  # replaced between listing and opening: fine
            except Exception as e:
                partial_seen.append(repr(e))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    rng = random.Random(8)
    try:
        for _ in range(3):
            job = subprocess.Popen(
                command(list_path, out, PROCESSES),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: the workers die with it
            )
            time.sleep(rng.uniform(0.3, full_seconds))
            with contextlib.suppress(ProcessLookupError):  # it may have finished already
                os.killpg(job.pid, signal.SIGKILL)
            job.wait()
        final = convert(list_path, out, PROCESSES)
    finally:
        stop.set()
        watcher.join()
    assert final.returncode == 0, final.stderr
    assert not partial_seen, partial_seen[:3]
    assert all_files(out) == expected
