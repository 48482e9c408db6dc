"""The conversion job on a real Flink cluster: `make flink-up`'s cluster and `submit.sh`, as the
README shows them, with a Beam Flink job server jar.

Beam's runner jars are not served by the Maven Central this project's machines reach, so
these tests run only where one is given: IMGSHARD_FLINK_JOB_SERVER_JAR=/path/to/
beam-runners-flink-1.20-job-server-X.Y.Z.jar. The SDK side (the driver and the SDK workers the
TaskManagers start) then runs at the jar's Beam version, from .venv-flink (`make flink-venv`,
which `make test` runs when the variable is set): a user's FlinkRunner fetches the job server
of its own version, so users never meet a skew, but a 2.77 SDK against a 2.73 job server
lost its workers here ("SDK harness closed connection").

What a run must give: every shard byte-identical to the local runner's, and a TaskManager
killed mid-run must not change a byte, whether Flink's restart strategy finishes the job or
the job fails cleanly and the same command with --resume finishes it.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import psutil
import pytest
from PIL import Image

from helpers import IMGSHARD, all_files, shard_files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER = os.path.join(ROOT, "deploy", "flink", "local-cluster.sh")
SUBMIT = os.path.join(ROOT, "deploy", "flink", "submit.sh")
JAR = os.environ.get("IMGSHARD_FLINK_JOB_SERVER_JAR", "")
FOUND = re.search(r"-(\d+\.\d+\.\d+)[^/]*\.jar$", JAR)
VERSION = FOUND.group(1) if FOUND else ""
FLINK_VENV = os.path.join(ROOT, ".venv-flink")
FLINK_BIN = os.path.join(FLINK_VENV, "bin")
# "several thousand real photos"; fewer for a quicker check
PHOTOS = int(os.environ.get("IMGSHARD_FLINK_TEST_PHOTOS", "3000"))
FLAGS = ["--num-shards", "16", "--seed", "5", "--resize", "shorter:128"]


def _skip_reason() -> str | None:
    if not JAR:
        return (
            "no Flink job server: set IMGSHARD_FLINK_JOB_SERVER_JAR to a "
            "beam-runners-flink-1.20-job-server-X.Y.Z.jar (not served by this Maven Central)"
        )
    if not os.path.isfile(JAR):
        return f"IMGSHARD_FLINK_JOB_SERVER_JAR={JAR} is not a file"
    if not VERSION:
        return f"IMGSHARD_FLINK_JOB_SERVER_JAR={JAR}: no Beam version X.Y.Z in the jar's name"
    if not os.path.exists(os.path.join(FLINK_VENV, f".beam-{VERSION}")):
        return f"no SDK venv at Beam {VERSION}: make flink-venv IMGSHARD_FLINK_JOB_SERVER_JAR={JAR}"
    return None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.flink,
    pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason())),
]


def _photos(root) -> str:
    """PHOTOS real-photo JPEGs (crops of the photographs scikit-learn ships, 200-500 px) in
    10 class folders, listed class-sorted: the list the project exists to shuffle."""
    import numpy as np
    from sklearn.datasets import load_sample_images

    sources = [Image.fromarray(a) for a in load_sample_images().images]
    rng = np.random.default_rng(0)
    lines = []
    for i in range(PHOTOS):
        label = i * 10 // PHOTOS
        source = sources[i % len(sources)]
        w, h = int(rng.integers(200, 501)), int(rng.integers(150, 376))
        x, y = int(rng.integers(0, source.width - w)), int(rng.integers(0, source.height - h))
        relative = f"n{label:08d}/n{label:08d}_{i}.JPEG"
        os.makedirs(os.path.join(root, f"n{label:08d}"), exist_ok=True)
        source.crop((x, y, x + w, y + h)).save(os.path.join(root, relative), quality=85)
        lines.append(f"{relative} n{label:08d}\n")
    list_path = os.path.join(root, "train.txt")
    with open(list_path, "w") as f:
        f.writelines(lines)
    return list_path


@pytest.fixture(scope="module")
def photo_list(tmp_path_factory):
    return _photos(str(tmp_path_factory.mktemp("flink-photos")))


@pytest.fixture(scope="module")
def local_shards(photo_list, tmp_path_factory):
    """The local runner's output (the project's own venv, its Beam version): the reference."""
    out = str(tmp_path_factory.mktemp("flink-local") / "out")
    done = subprocess.run(
        [IMGSHARD, "convert", "--input", photo_list, "--output", out, *FLAGS],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return _shards(out)


def _shards(output: str) -> dict[str, bytes]:
    files = all_files(output)
    return {name: files[name] for name in map(os.path.basename, shard_files(output))}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """`make flink-up`'s cluster (2 TaskManagers x 2 slots) with SDK workers from .venv-flink."""
    cluster_dir = tmp_path_factory.mktemp("flink-job-cluster")
    python = os.path.join(FLINK_BIN, "python")
    env = {**os.environ, "CLUSTER_DIR": str(cluster_dir), "PYTHON": python}
    up = subprocess.run(
        [CLUSTER, "up", "--taskmanagers", "2", "--slots", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        submit_env = {
            **env,
            "FLINK_MASTER": (cluster_dir / "address").read_text().strip(),
            "ENVIRONMENT": "PROCESS",
            "ENVIRONMENT_CONFIG": (cluster_dir / "environment").read_text().strip(),
            "JOB_SERVER_JAR": JAR,
            "IMGSHARD": os.path.join(FLINK_BIN, "imgshard"),
        }
        yield cluster_dir, submit_env
    finally:
        subprocess.run([CLUSTER, "down"], env=env, capture_output=True, timeout=300)
        assert _sdk_workers(python) == [], "SDK workers outlived make flink-down"


def _sdk_workers(python: str) -> list[int]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        command = process.info["cmdline"] or []
        if command and command[0] == python and "sdk_worker_main" in " ".join(command):
            found.append(process.pid)
    return found


def _job_servers(flink_master: str) -> list[int]:
    """Beam job server JVMs started for this cluster (the driver stops its own at exit)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if JAR in command and flink_master in command:
            found.append(process.pid)
    return found


def _jobs(cluster_dir) -> list[dict]:
    import urllib.request

    address = (cluster_dir / "address").read_text().strip()
    with urllib.request.urlopen(f"http://{address}/jobs/overview", timeout=10) as answer:
        return json.load(answer)["jobs"]


def _submit(photo_list, output, submit_env, *extra, timeout=1200):
    return subprocess.run(
        [SUBMIT, "--input", photo_list, "--output", output, *FLAGS, *extra],
        env=submit_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _submit_until_writing(photo_list, output, submit_env) -> subprocess.Popen:
    """Submits in the background; returns once the writers are at work (2 shards out), the
    moment to take a TaskManager away."""
    job = subprocess.Popen(
        [SUBMIT, "--input", photo_list, "--output", output, *FLAGS],
        env=submit_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and job.poll() is None:
        written = os.listdir(output) if os.path.isdir(output) else []
        if sum(n.endswith(".tfrecord") for n in written) >= 2:
            break
        time.sleep(0.5)
    assert job.poll() is None, "the job ended before a TaskManager could be taken away"
    return job


def _audit(output: str, photo_list: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [IMGSHARD, "audit", output, "--list", photo_list],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_job_on_flink_writes_the_local_runners_bytes(
    cluster, photo_list, local_shards, tmp_path
):
    cluster_dir, submit_env = cluster
    out = str(tmp_path / "flink")
    done = _submit(photo_list, out, submit_env)
    assert done.returncode == 0, done.stderr[-5000:]
    assert "--runner FlinkRunner" not in done.stdout  # it ran, not PRINT_ONLY
    assert _job_servers(submit_env["FLINK_MASTER"]) == [], "the job server outlived the submit"
    finished = [j for j in _jobs(cluster_dir) if j["state"] == "FINISHED"]
    assert finished, _jobs(cluster_dir)
    assert max(j["tasks"]["total"] for j in finished) > 16  # the whole graph ran on Flink
    flink = _shards(out)
    assert len(flink) == 16 and flink == local_shards
    with open(os.path.join(out, "dataset.json")) as f:
        assert json.load(f)["num_records"] == PHOTOS
    audit = _audit(out, photo_list)
    assert audit.returncode == 0 and "PASS" in audit.stdout, audit.stdout[-3000:]


def test_a_taskmanager_killed_mid_run_changes_no_byte(cluster, photo_list, local_shards, tmp_path):
    cluster_dir, submit_env = cluster
    out = str(tmp_path / "flink-killed")
    job = _submit_until_writing(photo_list, out, submit_env)
    victim = int((cluster_dir / "pids" / "taskmanager-1.pid").read_text())
    os.kill(victim, signal.SIGKILL)
    try:
        stdout, stderr = job.communicate(timeout=1500)
    except subprocess.TimeoutExpired:
        job.kill()
        pytest.fail(f"the job hung after a TaskManager was killed: {_jobs(cluster_dir)}")
    if job.returncode != 0:  # a clean failure that names the command finishing it
        assert "--resume" in stderr, stderr[-5000:]
        assert "Traceback" not in stderr, stderr[-5000:]
        resumed = _submit(photo_list, out, submit_env, "--resume")
        assert resumed.returncode == 0, resumed.stderr[-5000:]
    else:
        restarted = (cluster_dir / "log" / "supervisor.log").read_text()
        assert "TaskManager 1 exited" in restarted
    assert _shards(out) == local_shards
    audit = _audit(out, photo_list)
    assert audit.returncode == 0 and "PASS" in audit.stdout, audit.stdout[-3000:]
    print(f"after the kill: exit {job.returncode}; {stdout[-500:]}", file=sys.stderr)


def test_a_taskmanager_lost_for_good_ends_in_a_clean_failure_and_resume_finishes(
    cluster, photo_list, local_shards, tmp_path
):
    """No supervisor brings it back (a host gone): the job must not wait for its slots forever.
    Runs last: the cluster keeps one TaskManager (2 slots) from here on."""
    cluster_dir, submit_env = cluster
    out = str(tmp_path / "flink-lost")
    job = _submit_until_writing(photo_list, out, submit_env)
    supervisor = int((cluster_dir / "pids" / "supervisor-2.pid").read_text())
    victim = int((cluster_dir / "pids" / "taskmanager-2.pid").read_text())
    os.killpg(supervisor, signal.SIGKILL)  # the supervisor, its TaskManager, their workers
    assert victim != supervisor
    try:
        _, stderr = job.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        job.kill()
        pytest.fail(f"the job hung after losing a TaskManager for good: {_jobs(cluster_dir)}")
    assert job.returncode != 0
    assert "the job failed on FlinkRunner" in stderr and "--resume" in stderr, stderr[-5000:]
    assert "Traceback" not in stderr, stderr[-5000:]
    print(f"the lost TaskManager's message:\n{stderr[-2000:]}", file=sys.stderr)
    # the same command plus --resume, at the parallelism the surviving slots can run
    resumed = _submit(photo_list, out, {**submit_env, "PARALLELISM": "2"}, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-5000:]
    assert _shards(out) == local_shards
