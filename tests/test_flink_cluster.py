"""A real Flink session cluster from deploy/flink/local-cluster.sh, and submit.sh against it.

What runs here for real, with or without a job server: a JobManager and two TaskManagers as
separate JVMs on loopback, each TaskManager under a supervisor that starts it again when it
dies, and submit.sh deriving the runner flags from the cluster's REST API (PRINT_ONLY). The
job itself runs on such a cluster in tests/test_flink_job.py, when a job server jar is at hand.
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER = os.path.join(ROOT, "deploy", "flink", "local-cluster.sh")
SUBMIT = os.path.join(ROOT, "deploy", "flink", "submit.sh")


def _script(path, *args, env, timeout=300):
    return subprocess.run([path, *args], env=env, capture_output=True, text=True, timeout=timeout)


def _rest(address: str, path: str) -> dict:
    with urllib.request.urlopen(f"http://{address}{path}", timeout=10) as answer:
        return json.load(answer)


def _pids(cluster_dir) -> dict[str, list[int]]:
    found = {}
    for name in os.listdir(os.path.join(cluster_dir, "pids")):
        with open(os.path.join(cluster_dir, "pids", name)) as f:
            found[name] = [int(line) for line in f if line.strip()]
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The cluster, up for this module and down after it, whatever the tests did."""
    cluster_dir = tmp_path_factory.mktemp("flink")
    env = {**os.environ, "CLUSTER_DIR": str(cluster_dir), "PYTHON": sys.executable}
    up = _script(CLUSTER, "up", "--taskmanagers", "2", "--slots", "2", env=env, timeout=600)
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        yield cluster_dir, env, up.stdout
    finally:
        _script(CLUSTER, "down", env=env, timeout=120)


@pytest.mark.slow
def test_the_cluster_is_a_jobmanager_and_two_taskmanager_processes(cluster):
    cluster_dir, _, printed = cluster
    address = (cluster_dir / "address").read_text().strip()
    assert f"http://{address}" in printed  # the web UI / REST address is printed
    overview = _rest(address, "/overview")
    assert overview["flink-version"] == "1.20.5"
    assert overview["taskmanagers"] == 2 and overview["slots-total"] == 4
    pids = _pids(cluster_dir)
    jobmanagers = pids["flink-imgshard-standalonesession.pid"]
    taskmanagers = pids["flink-imgshard-taskexecutor.pid"]
    assert len(jobmanagers) == 1 and len(taskmanagers) == 2
    assert len(set(jobmanagers + taskmanagers)) == 3 and all(
        map(_alive, jobmanagers + taskmanagers)
    )
    for pid, main_class in [(jobmanagers[0], "StandaloneSessionClusterEntrypoint")] + [
        (pid, "TaskManagerRunner") for pid in taskmanagers
    ]:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert main_class.encode() in f.read()
    # the supervisors' record of their TaskManagers is Flink's own
    assert sorted(pids["taskmanager-1.pid"] + pids["taskmanager-2.pid"]) == sorted(taskmanagers)
    # every TaskManager listens on loopback only
    for manager in _rest(address, "/taskmanagers")["taskmanagers"]:
        assert manager["id"].startswith("127.0.0.1:")


@pytest.mark.slow
def test_submit_takes_the_flink_version_and_parallelism_from_the_cluster(cluster):
    cluster_dir, env, printed_by_up = cluster
    address = (cluster_dir / "address").read_text().strip()
    environment = (cluster_dir / "environment").read_text().strip()
    assert "imgshard-sdk-worker" in json.loads(environment)["command"]
    printed = _script(
        SUBMIT,
        "--input",
        "gs://b/train.txt",
        "--output",
        "gs://b/out",
        env={
            **env,
            "FLINK_MASTER": address,
            "ENVIRONMENT": "PROCESS",
            "ENVIRONMENT_CONFIG": environment,
            "PRINT_ONLY": "1",
        },
    )
    assert printed.returncode == 0, printed.stderr
    command = printed.stdout.split()
    assert command[command.index("--flink_version") + 1] == "1.20"  # Beam's default: 2.2
    assert command[command.index("--parallelism") + 1] == "4"  # the cluster's slots
    assert command[command.index("--flink_master") + 1] == address
    assert command[command.index("--environment_type") + 1] == "PROCESS"
    assert f"ENVIRONMENT_CONFIG='{environment}'" in printed_by_up
    # the imgshard flags come first, unchanged
    assert command[0] == os.path.join(ROOT, ".venv", "bin", "imgshard")  # the project's venv
    assert command[1:5] == ["convert", "--input", "gs://b/train.txt", "--output"]
    # up's printed command names the submitting imgshard beside its SDK workers' venv
    assert f"IMGSHARD={os.path.dirname(sys.executable)}/imgshard" in printed_by_up


@pytest.mark.slow
def test_submit_refuses_workers_without_imgshard_and_an_unreachable_cluster(cluster):
    cluster_dir, env, _ = cluster
    address = (cluster_dir / "address").read_text().strip()
    docker = _script(SUBMIT, "--input", "x", env={**env, "FLINK_MASTER": address})
    assert docker.returncode == 1
    assert "stock SDK image has no imgshard" in docker.stderr
    gone = _script(SUBMIT, "--input", "x", env={**env, "FLINK_MASTER": "127.0.0.1:9"})
    assert gone.returncode == 1 and "no Flink REST API answers" in gone.stderr
    assert "Traceback" not in gone.stderr


def _wait_for(predicate, seconds: float):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(1)
    return False


@pytest.mark.slow
def test_a_killed_taskmanager_is_started_again(cluster):
    """As Kubernetes restarts a pod: the supervisor starts a new JVM, which registers again."""
    cluster_dir, _, _ = cluster
    address = (cluster_dir / "address").read_text().strip()
    pid_file = cluster_dir / "pids" / "taskmanager-1.pid"
    killed = int(pid_file.read_text())
    before = {m["id"] for m in _rest(address, "/taskmanagers")["taskmanagers"]}
    os.kill(killed, signal.SIGKILL)
    assert _wait_for(lambda: int(pid_file.read_text()) != killed, 30)
    replacement = int(pid_file.read_text())
    assert not _alive(killed)

    def runs_a_taskmanager():  # the start script execs the JVM in place: the same pid
        with open(f"/proc/{replacement}/cmdline", "rb") as f:
            return b"TaskManagerRunner" in f.read()

    assert _wait_for(runs_a_taskmanager, 30)

    def registered():
        managers = _rest(address, "/taskmanagers")["taskmanagers"]
        return len(managers) == 2 and {m["id"] for m in managers} != before

    # the lost one is declared dead after the heartbeat timeout (20 s), the new one registers
    assert _wait_for(registered, 90), _rest(address, "/taskmanagers")
    assert (
        "TaskManager 1 exited; starting it again"
        in (cluster_dir / "log" / "supervisor.log").read_text()
    )


@pytest.mark.slow
def test_down_stops_every_process_it_started(tmp_path_factory):
    """A second, one-TaskManager cluster of its own, brought down inside the test."""
    cluster_dir = tmp_path_factory.mktemp("flink-down")
    env = {**os.environ, "CLUSTER_DIR": str(cluster_dir), "PYTHON": sys.executable}
    up = _script(CLUSTER, "up", "--taskmanagers", "1", "--slots", "1", env=env, timeout=600)
    started = [pid for pids in _pids(cluster_dir).values() for pid in pids]
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        # JM, TM (Flink's pid file and the supervisor's), the supervisor
        assert len(set(started)) == 3 and all(map(_alive, started))
        again = _script(CLUSTER, "up", env=env)
        assert again.returncode == 1 and "already up" in again.stderr
    finally:
        down = _script(CLUSTER, "down", env=env, timeout=120)
    assert down.returncode == 0, down.stderr
    assert not any(map(_alive, started))
    assert not (cluster_dir / "address").exists()
