"""A local worker process killed mid-run (what the OOM killer does): one clear message, and
the command it prints finishes the run to the same bytes."""

import os
import shlex
import signal
import subprocess
import time

import psutil
import pytest

from helpers import IMGSHARD, all_files, convert, jpeg, write
from imgshard.pipeline.journal import journal_dir

PROCESSES = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]
FLAGS = ["--num-shards", "16", "--resize", "shorter:64", "--resume"]


@pytest.fixture(scope="module")
def photo_list(tmp_path_factory):
    """480 photo-like 400x300 JPEGs in 8 classes: a few seconds of work for two workers."""
    root = tmp_path_factory.mktemp("worker-loss")
    lines = []
    for label in range(8):
        data = jpeg(400, 300, seed=label)
        for i in range(60):
            relative = f"{label}/{label}_{i}.JPEG"
            write(str(root / relative), data)
            lines.append(f"{relative} {label}\n")
    (root / "train.txt").write_text("".join(lines))
    return root / "train.txt"


def journaled(output) -> list[str]:
    folder = journal_dir(str(output), "train")
    return (
        [n for n in os.listdir(folder) if n.startswith("train-")] if os.path.isdir(folder) else []
    )


def sdk_workers(pid: int) -> list[psutil.Process]:
    """The processes running Beam's SDK harness under `pid`: spawned by Beam
    (`... sdk_worker_main`) or forked from the warm worker process (pipeline/warm_workers.py),
    whose command line they keep."""
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            command = " ".join(child.cmdline())
            parent = " ".join(child.parent().cmdline())
        except (psutil.NoSuchProcess, AttributeError):
            continue
        spawned = "sdk_worker_main" in command and "python" in os.path.basename(command.split()[0])
        forked = "worker_zygote" in command and "worker_zygote" in parent
        if spawned or forked:
            found.append(child)
    return found


@pytest.mark.slow
def test_a_killed_worker_ends_in_one_message_and_its_resume_command_finishes(photo_list, tmp_path):
    reference = tmp_path / "reference"
    convert(photo_list, reference, *FLAGS)  # in one process: the bytes do not depend on it
    out = tmp_path / "out"
    argv = ["--input", str(photo_list), "--output", str(out), *FLAGS, *PROCESSES]
    job = subprocess.Popen(
        [IMGSHARD, "convert", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    while not journaled(out) and job.poll() is None:  # mid-run: the first shard is done
        time.sleep(0.02)
    workers = sdk_workers(job.pid)
    assert workers, "no sdk_worker_main process found"
    workers[0].send_signal(signal.SIGKILL)
    _, stderr = job.communicate(timeout=300)

    assert job.returncode == 1, stderr
    done = len(journaled(out))
    assert 1 <= done < 16
    assert "Traceback" not in stderr, stderr
    error = stderr[stderr.index("imgshard convert: error: ") :]
    assert "a local worker process was killed by SIGKILL (likely out of memory" in error
    assert f"{done} of 16 shards are complete and journaled" in error
    command = error.splitlines()[1].strip()
    given = [a for a in argv if a != "--resume"]
    assert command == shlex.join(["imgshard", "convert", *given, "--resume"])

    finished = subprocess.run(
        [IMGSHARD, *shlex.split(command)[1:]], capture_output=True, text=True, timeout=300
    )
    assert finished.returncode == 0, finished.stderr
    assert all_files(out) == all_files(reference)


def test_the_resume_command_replaces_overwrite():
    from imgshard.pipeline.job_failure import resume_command

    assert resume_command(["--input", "a b.txt", "--output", "o", "--overwrite", "-x=1"]) == (
        "imgshard convert --input 'a b.txt' --output o -x=1 --resume"
    )


def test_a_job_failed_on_a_remote_runner_gets_one_message_with_its_resume_command():
    from imgshard.pipeline.job_failure import explain_failure

    failed = RuntimeError(
        "Pipeline BeamApp-root-1 failed in state FAILED: org.apache.flink.runtime.JobException: "
        "Recovery is suppressed by FixedDelayRestartBackoffTimeStrategy\n\tat org.apache..."
    )
    argv = ["--input", "gs://b/l.txt", "--output", "gs://b/o", "--runner", "FlinkRunner"]
    message = explain_failure(failed, argv, [], (5, 16), remote_runner="FlinkRunner")
    assert message.startswith("the job failed on FlinkRunner: Pipeline BeamApp-root-1 failed")
    assert "\tat org.apache" not in message  # the first line, not the Java trace
    assert "5 of 16 shards are complete and journaled" in message
    assert message.endswith(
        "imgshard convert --input gs://b/l.txt --output gs://b/o --runner FlinkRunner --resume"
    )
    nothing = explain_failure(failed, argv, [], (0, None), remote_runner="FlinkRunner")
    assert "No shard was written." in nothing and "journaled" not in nothing
    # a local run's unexplained failure is left as the runner reported it
    assert explain_failure(failed, argv, [], (5, 16)) is None
