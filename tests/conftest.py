import os
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from helpers import free_port, wait_for_port  # noqa: E402  (needs the path above)


@pytest.fixture(scope="session")
def gcs_bucket():
    """A real GCS JSON API (gcp-storage-emulator) on localhost, with one bucket.

    Beam's GcsIO and google-cloud-storage both follow STORAGE_EMULATOR_HOST; worker processes
    inherit it from this process's environment.
    """
    executable = shutil.which("gcp-storage-emulator") or os.path.join(
        os.path.dirname(sys.executable), "gcp-storage-emulator"
    )
    port = free_port()
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
    wait_for_port(port, server, "gcp-storage-emulator", seconds=30)
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
    yield bucket
    server.terminate()
    server.wait(timeout=10)
    if previous is None:
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
    else:
        os.environ["STORAGE_EMULATOR_HOST"] = previous
