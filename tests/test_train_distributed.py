"""The trainer across processes: MultiWorkerMirroredStrategy with 2 real localhost workers
(TF_CONFIG), trained to the planned step, one worker SIGKILLed mid-run and the job resumed."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import convert, free_port, sorted_dataset

TRAIN = os.path.join(os.path.dirname(sys.executable), "imgshard-train")
TINY = [
    "--image-size",
    "32",
    "--alpha",
    "0.25",
    "--batch-size",
    "8",
    "--log-every",
    "2",
    "--shuffle-buffer",
    "64",
    "--cycle-length",
    "2",
]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("mw")
    list_path = sorted_dataset(str(root / "images"), classes=4, per_class=16)
    out = root / "shards"
    convert(list_path, out, "--num-shards", "4", "--resize", "shorter:32", "--allow-upscale")
    return str(out)


def _start_workers(shards, model_dir, log_dir, steps):
    ports = [free_port(), free_port()]
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    workers = []
    for index in range(2):
        env = dict(
            os.environ,
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
        )
        log = open(log_dir / f"worker{index}.log", "w")  # noqa: SIM115 (closed by _stop)
        args = [TRAIN, "--data", shards, "--model-dir", str(model_dir), "--epochs", "1"]
        args += ["--steps-per-epoch", str(steps), "--checkpoint-every", "2", *TINY]
        workers.append((subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT), log))
    return workers


def _stop(workers):
    """SIGKILLs whatever still runs; returns the exit codes."""
    codes = []
    for process, log in workers:
        if process.poll() is None:
            process.kill()
        codes.append(process.wait(timeout=30))
        log.close()
    return codes


def _wait(workers, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(p.poll() is None for p, _ in workers):
        time.sleep(0.2)
    return [p.poll() for p, _ in workers]


@pytest.mark.slow
def test_two_workers_train_survive_a_sigkill_and_resume_to_the_planned_step(shards, tmp_path):
    model_dir = tmp_path / "run"
    state = model_dir / "checkpoint" / "checkpoint.json"
    workers = _start_workers(shards, model_dir, tmp_path, steps=8)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not (
            state.exists() and json.loads(state.read_text())["step"] >= 2
        ):
            assert all(p.poll() is None for p, _ in workers), (tmp_path / "worker0.log").read_text()
            time.sleep(0.05)
        workers[1][0].send_signal(signal.SIGKILL)  # a preempted machine
    finally:
        codes = _stop(workers)  # the job system then restarts the whole job
    killed_at = json.loads(state.read_text())["step"]
    assert 2 <= killed_at < 8 and codes[1] == -signal.SIGKILL

    workers = _start_workers(shards, model_dir, tmp_path, steps=8)
    try:
        codes = _wait(workers, 300)
    finally:
        _stop(workers)
    logs = [(tmp_path / f"worker{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    for log in logs:
        assert "on 2 replica(s) (MultiWorkerMirroredStrategy)" in log
        assert "XLA off (not safe under MultiWorkerMirroredStrategy)" in log
        assert f"resumed from the checkpoint at step {killed_at} of 8" in log
        assert "imgshard-train: 8 steps" in log
    result = json.loads((model_dir / "result.json").read_text())
    assert result["steps"] == 8
    # the chief alone wrote the model dir; the other worker's private export is gone
    assert sorted(os.listdir(model_dir)) == ["checkpoint", "export", "logs", "result.json"]
    assert (model_dir / "export" / "saved_model.pb").exists()
    assert json.loads(state.read_text())["step"] == 8
