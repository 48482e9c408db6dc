"""Warm SDK workers (pipeline/warm_workers.py): forked from a process that imported while the
driver did; the same bytes as Beam's spawned workers, and nothing outlives the run."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import psutil
import pytest

from helpers import IMGSHARD, all_files, jpeg, write
from imgshard.pipeline import warm_workers

PROCESSES = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]
FLAGS = ["--num-shards", "6", "--resize", "shorter:48"]

pytestmark = pytest.mark.skipif(
    not warm_workers.wanted([]), reason="warm workers are off here (Linux, 2+ cores only)"
)


@pytest.fixture(scope="module")
def photo_list(tmp_path_factory):
    root = tmp_path_factory.mktemp("warm")
    lines = []
    for label in range(4):
        for i in range(30):
            relative = f"{label}/{label}_{i}.jpg"
            write(str(root / relative), jpeg(160, 120, seed=label * 100 + i))
            lines.append(f"{relative} {label}\n")
    (root / "train.txt").write_text("".join(lines))
    return root / "train.txt"


class ProcessWatch:
    """Samples a command's process tree until it ends: which kinds of worker it ran."""

    def __init__(self, pid: int):
        self.forked = set()  # SDK workers forked from the warm worker process
        self.spawned = set()  # Beam's own `python -m ...sdk_worker_main`
        self.warm = set()
        self.folders = set()  # the warm process's socket folder (its last argument)
        self._root = psutil.Process(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self):
        while not self._stop.is_set():
            try:
                members = self._root.children(recursive=True)
            except psutil.Error:
                return
            for member in members:
                try:
                    command = " ".join(member.cmdline())
                    parent = " ".join(member.parent().cmdline())
                except (psutil.Error, AttributeError):
                    continue
                if "worker_zygote" in command:
                    (self.forked if "worker_zygote" in parent else self.warm).add(member.pid)
                    if "worker_zygote" not in parent:
                        self.folders.add(member.cmdline()[-1])
                elif "sdk_worker_main" in command and "sh -c" not in command:
                    self.spawned.add(member.pid)
            time.sleep(0.05)

    def stop(self):
        self._stop.set()
        self._thread.join()


def run_watched(argv, env=None):
    job = subprocess.Popen(
        [IMGSHARD, "convert", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    watch = ProcessWatch(job.pid)
    _, stderr = job.communicate(timeout=300)
    watch.stop()
    assert job.returncode == 0, stderr
    return watch


def test_warm_workers_write_the_bytes_of_spawned_workers_and_of_one_process(photo_list, tmp_path):
    base = ["--input", str(photo_list), *FLAGS]
    warm = run_watched([*base, "--output", str(tmp_path / "warm"), *PROCESSES])
    spawned = run_watched(
        [*base, "--output", str(tmp_path / "spawned"), *PROCESSES], {"IMGSHARD_WARM_WORKERS": "0"}
    )
    single = run_watched([*base, "--output", str(tmp_path / "single"), "--direct_num_workers=1"])

    assert len(warm.warm) == 1 and len(warm.forked) == 2 and not warm.spawned
    assert not spawned.warm and not spawned.forked and len(spawned.spawned) == 2
    assert not single.warm and not single.forked and not single.spawned
    reference = all_files(tmp_path / "single")
    assert reference and all_files(tmp_path / "warm") == reference
    assert all_files(tmp_path / "spawned") == reference


def _left_behind(marker: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if marker in " ".join(process.info["cmdline"] or []):
            found.append(process)
    return found


def test_nothing_outlives_a_driver_killed_mid_run(photo_list, tmp_path):
    out = tmp_path / "out"
    job = subprocess.Popen(
        [IMGSHARD, "convert", "--input", str(photo_list), "--output", str(out), *FLAGS, *PROCESSES],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    watch = ProcessWatch(job.pid)
    deadline = time.time() + 120
    while len(watch.forked) < 2 and job.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert len(watch.forked) == 2, "the run never had its two warm workers"
    job.send_signal(signal.SIGKILL)  # no handler, no exit hook: only the kernel can clean up
    job.wait()
    watch.stop()
    ours = watch.warm | watch.forked
    deadline = time.time() + 10
    while time.time() < deadline and any(psutil.pid_exists(p) for p in ours):
        time.sleep(0.1)
    alive = [p for p in ours if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    assert not alive, f"left running after the driver died: {alive}"
    assert watch.folders and not any(os.path.exists(f) for f in watch.folders)  # its socket too


def test_a_launcher_that_cannot_reach_the_warm_process_becomes_a_spawned_worker(tmp_path):
    launcher = os.path.join(os.path.dirname(warm_workers.__file__), "worker_launcher.py")
    env = {k: v for k, v in os.environ.items() if "API_SERVICE" not in k}
    done = subprocess.run(
        [sys.executable, "-I", "-S", launcher, str(tmp_path / "no-such.sock")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    # Beam's own worker ran, and stopped at the endpoint it was not given.
    assert done.returncode != 0
    assert "sdk_worker_main" in done.stderr and "CONTROL_API_SERVICE_DESCRIPTOR" in done.stderr


def test_the_warm_process_reports_how_each_worker_ended(tmp_path):
    """The launcher ends as its worker does, so Beam sees a killed worker as killed."""
    with warm_workers.WarmWorkers() as warm:
        command = warm.command()
        # A worker whose options cannot be read: the harness fails to start and exits 1.
        failed = subprocess.run(
            ["/bin/sh", "-c", command],
            env={**os.environ, "PIPELINE_OPTIONS": "not json"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert failed.returncode == 1, failed.stderr
        assert "PIPELINE_OPTIONS" in failed.stderr or "json" in failed.stderr.lower()
        # A worker killed by SIGKILL (the OOM killer): its launcher dies by SIGKILL too. Its
        # control endpoint accepts connections and never answers: the worker waits there.
        silent = socket.create_server(("localhost", 0))
        port = silent.getsockname()[1]
        launcher = subprocess.Popen(
            ["/bin/sh", "-c", command],
            env={**os.environ, "CONTROL_API_SERVICE_DESCRIPTOR": f'url: "localhost:{port}"'},
            stderr=subprocess.DEVNULL,
        )
        forked = _wait_for_forked_worker(launcher.pid, warm)
        time.sleep(0.5)
        assert launcher.poll() is None, "the worker should still be waiting for its runner"
        forked.send_signal(signal.SIGKILL)
        assert launcher.wait(timeout=60) == -signal.SIGKILL
        silent.close()
    assert not psutil.pid_exists(forked.pid) or forked.status() == "zombie"


def _wait_for_forked_worker(launcher_pid: int, warm) -> psutil.Process:
    zygote = psutil.Process(warm._process.pid)
    deadline = time.time() + 60
    while time.time() < deadline:
        children = zygote.children()
        if children:
            return children[0]
        time.sleep(0.01)
    raise AssertionError(f"no worker was forked for launcher {launcher_pid}")


@pytest.mark.parametrize(
    "argv, expected",
    [
        ([], True),
        (["--direct_running_mode=multi_processing"], True),
        (["--direct_running_mode=in_memory"], False),
        (["--direct_running_mode=multi_threading"], False),
        (["--direct_num_workers=1"], False),
        (["--direct_num_workers", "1"], False),
        (["--direct_running_mode", "in_memory"], False),
        (["--direct_num_workers=2"], True),
        (["--runner", "FlinkRunner"], False),
        (["--runner=DataflowRunner"], False),
        (["--help"], False),
    ],
)
def test_the_warm_process_is_started_only_for_runs_that_may_use_it(argv, expected, monkeypatch):
    monkeypatch.delenv("IMGSHARD_WARM_WORKERS", raising=False)
    assert warm_workers.wanted(argv) is expected
    for off in ("0", "off", "false", "No"):
        monkeypatch.setenv("IMGSHARD_WARM_WORKERS", off)
        assert warm_workers.wanted(argv) is False


def test_the_cli_imports_no_beam_before_it_starts_the_warm_process():
    code = "import sys, imgshard.pipeline.cli; print('apache_beam' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_one_usable_core_gets_no_warm_process_and_runs_in_one_process():
    """taskset, a container's cpuset: the affinity counts, not the machine's cores."""
    code = (
        "from imgshard.pipeline.warm_workers import wanted; "
        "from imgshard.pipeline.local_mode import cores; print(wanted([]), cores())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}),
    )
    assert done.stdout.split() == ["False", "1"]
