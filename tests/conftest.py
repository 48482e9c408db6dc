import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import shutil
import socket
import subprocess
import time

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def gcs_bucket():
    """A real GCS JSON API (gcp-storage-emulator) on localhost, with one bucket.

    Beam's GcsIO and google-cloud-storage both follow STORAGE_EMULATOR_HOST; worker processes
    inherit it from this process's environment.
    """
    executable = shutil.which("gcp-storage-emulator") or os.path.join(
        os.path.dirname(sys.executable), "gcp-storage-emulator"
    )
    port = _free_port()
    bucket = "imgshard-test"
    server = subprocess.Popen(
        [
            executable,
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--in-memory",
            "--default-bucket",
            bucket,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    else:
        server.kill()
        pytest.fail("gcp-storage-emulator did not start")
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
    yield bucket
    server.terminate()
    server.wait(timeout=10)
    if previous is None:
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
    else:
        os.environ["STORAGE_EMULATOR_HOST"] = previous
