"""Reads that fail: the store's faults are retried, never become data; a denied read stops the job.

The GCS tests put a fault-injecting HTTP proxy (tests/fault_proxy.py) between the real client
stack (Beam's GcsIO, google-cloud-storage) and the GCS emulator.
"""

import os
import threading

import pytest
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.localfilesystem import LocalFileSystem
from fault_proxy import FaultProxy

from helpers import IN_PROCESS, convert, read, sorted_dataset, upload
from imgshard.pipeline import run
from imgshard.pipeline.errors import ConversionError
from imgshard.transforms import read_faults, reading
from imgshard.transforms.read_faults import failure_kind


@pytest.fixture(scope="module")
def remote_dataset(gcs_bucket, tmp_path_factory):
    """8 classes x 15 images on the emulator; returns the list's gs:// uri."""
    root = tmp_path_factory.mktemp("faults")
    sorted_dataset(str(root / "images"), classes=8, per_class=15, names=True)
    remote = f"gs://{gcs_bucket}/faults"
    upload(str(root / "images"), remote)
    return f"{remote}/train.txt"


@pytest.fixture
def proxy(gcs_bucket):
    """A FaultProxy in front of the emulator, for this test only."""
    emulator = os.environ["STORAGE_EMULATOR_HOST"]
    with FaultProxy(emulator.split("://", 1)[1], prefix="faults/n") as fault_proxy:
        os.environ["STORAGE_EMULATOR_HOST"] = fault_proxy.url
        try:
            yield fault_proxy
        finally:
            os.environ["STORAGE_EMULATOR_HOST"] = emulator


FLAGS = ["--num-shards", "4", "--seed", "5", "--max-reject-fraction", "0", *IN_PROCESS]


@pytest.mark.gcs
def test_transient_faults_on_5_percent_of_reads_change_nothing(gcs_bucket, remote_dataset, proxy):
    clean_out = f"gs://{gcs_bucket}/faults-out/clean"
    proxy.fail_every = 0
    clean = run(["--input", remote_dataset, "--output", clean_out, *FLAGS])

    proxy.reads = 0  # the proxy fails every 20th read it counts: count from this run's first
    proxy.fail_every = 20  # 5% of object reads: 503, 429, 500, a reset connection, 502, 504
    faulty_out = f"gs://{gcs_bucket}/faults-out/faulty"
    faulty = run(["--input", remote_dataset, "--output", faulty_out, *FLAGS])

    faulty_reads = proxy.reads
    assert proxy.faults == faulty_reads // 20 >= 5, (proxy.faults, faulty_reads)
    assert faulty.metadata["num_rejected"] == 0 and faulty.metadata["num_records"] == 120
    assert faulty.metadata["shards"] == clean.metadata["shards"]  # sizes and SHA-256s
    for shard in clean.metadata["shards"]:
        assert read(f"{faulty_out}/{shard['name']}") == read(f"{clean_out}/{shard['name']}")


@pytest.mark.gcs
def test_a_403_stops_the_job_at_once_with_a_clear_message(gcs_bucket, remote_dataset, proxy):
    proxy.deny_prefix = "faults/n"  # every image; the list itself stays readable
    with pytest.raises(ConversionError) as failed:
        run(["--input", remote_dataset, "--output", f"gs://{gcs_bucket}/faults-out/denied", *FLAGS])
    message = str(failed.value)
    assert "403" in message and "Forbidden" in message, message
    assert "storage.objects.get" in message and "--resume" in message
    assert "Traceback" not in message and "\n" not in message
    # Stopped at the first denied reads, not after trying each of the 120 images.
    assert 1 <= proxy.denied <= 40, proxy.denied


@pytest.mark.parametrize(
    "error, kind",
    [
        (FileNotFoundError("gone"), read_faults.MISSING),
        (IsADirectoryError("a folder"), read_faults.NOT_A_FILE),
        (OSError(40, "Too many levels of symbolic links"), read_faults.NOT_A_FILE),
        (PermissionError(13, "Permission denied"), read_faults.FATAL),
        (ConnectionResetError(104, "Connection reset by peer"), read_faults.TRANSIENT),
        (TimeoutError("timed out"), read_faults.TRANSIENT),
        (OSError(5, "Input/output error"), read_faults.TRANSIENT),
    ],
)
def test_local_errors_are_judged_by_what_they_say_about_the_input(error, kind):
    assert failure_kind(error) == kind


def test_a_symlink_loop_is_rejected_not_retried(tmp_path):
    list_path = sorted_dataset(str(tmp_path / "d"), classes=2, per_class=3)
    os.symlink("loop.JPEG", tmp_path / "d" / "loop.JPEG")  # points at itself
    with open(list_path, "a") as f:
        f.write("loop.JPEG 0\n")
    result = convert(list_path, tmp_path / "out", "--max-reject-fraction", "1")
    assert result.metadata["rejected"]["by_reason"] == {"read_error": 1}


def test_http_errors_of_the_gcs_client_are_judged_by_status():
    from google.api_core import exceptions

    assert failure_kind(exceptions.NotFound("no such object")) == read_faults.MISSING
    assert failure_kind(exceptions.Forbidden("denied")) == read_faults.FATAL
    assert failure_kind(exceptions.Unauthorized("who")) == read_faults.FATAL
    assert failure_kind(exceptions.BadRequest("bad bucket name")) == read_faults.FATAL
    for transient in (
        exceptions.TooManyRequests("slow down"),
        exceptions.ServiceUnavailable("busy"),
        exceptions.InternalServerError("oops"),
        exceptions.GatewayTimeout("late"),
        exceptions.RetryError("deadline exceeded", cause=None),
    ):
        assert failure_kind(transient) == read_faults.TRANSIENT, transient


def test_a_local_image_without_read_permission_stops_the_job(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    list_path = sorted_dataset(str(tmp_path / "d"), classes=2, per_class=3)
    locked = tmp_path / "d" / "1" / "1_2.JPEG"
    locked.chmod(0)
    with pytest.raises(ConversionError) as failed:
        run(["--input", list_path, "--output", str(tmp_path / "out"), *IN_PROCESS])
    assert "Permission denied" in str(failed.value) and str(locked) in str(failed.value)
    assert not (tmp_path / "out" / "dataset.json").exists()


class _HttpError(Exception):
    """What a store client raises for an HTTP error status (google.api_core style)."""

    def __init__(self, code: int):
        super().__init__(f"{code} (injected)")
        self.code = code


class FaultyFileSystem(LocalFileSystem):
    """`faulty:///path`: the local file, but every n-th open fails as a busy store does.

    Nothing retries under it (unlike GCS's client), so only imgshard's own retries stand
    between a fault and the output. Beam creates an instance per call: state is class-level.
    """

    fail_every = 0
    always_failing: tuple[str, Exception] | None = None  # (path suffix, error)
    opens = faults = 0
    _lock = threading.Lock()
    _faults = (
        lambda: ConnectionResetError(104, "Connection reset by peer"),
        lambda: TimeoutError("The read operation timed out"),
        lambda: _HttpError(503),
        lambda: _HttpError(429),
    )

    @classmethod
    def scheme(cls):
        return "faulty"

    def open(self, path, mime_type="application/octet-stream", compression_type=None):
        cls = type(self)
        with cls._lock:
            cls.opens += 1
            if cls.always_failing and path.endswith(cls.always_failing[0]):
                raise cls.always_failing[1]
            if cls.fail_every and cls.opens % cls.fail_every == 0:
                cls.faults += 1
                raise cls._faults[cls.faults % len(cls._faults)]()
        return super().open(path.removeprefix("faulty://"), mime_type, CompressionTypes.AUTO)

    def exists(self, path):  # the driver's input sample asks before the job reads
        return super().exists(path.removeprefix("faulty://"))


@pytest.fixture
def faulty(monkeypatch):
    monkeypatch.setattr(reading, "RETRY_DELAYS", (0.01, 0.02, 0.04))
    FaultyFileSystem.opens = FaultyFileSystem.faults = FaultyFileSystem.fail_every = 0
    FaultyFileSystem.always_failing = None
    yield FaultyFileSystem
    FaultyFileSystem.fail_every, FaultyFileSystem.always_failing = 0, None


@pytest.fixture(scope="module")
def local_list(tmp_path_factory):
    root = tmp_path_factory.mktemp("faulty")
    return sorted_dataset(str(root / "d"), classes=6, per_class=10)


def test_faults_no_client_retries_are_retried_by_imgshard(faulty, local_list, tmp_path):
    root = ["--image-root", f"faulty://{os.path.dirname(local_list)}"]
    clean = convert(local_list, tmp_path / "clean", *root, "--num-shards", "3")
    faulty.fail_every = 5  # 20% of the opens: resets, timeouts, 503s, 429s

    again = convert(local_list, tmp_path / "faulty", *root, "--num-shards", "3")

    assert faulty.faults >= 12
    assert again.metadata["num_rejected"] == 0 and again.metadata["num_records"] == 60
    for shard in clean.metadata["shards"]:
        name = shard["name"]
        assert (tmp_path / "faulty" / name).read_bytes() == (tmp_path / "clean" / name).read_bytes()


def test_a_store_that_keeps_failing_stops_the_job_and_rejects_nothing(faulty, local_list, tmp_path):
    faulty.always_failing = ("2/2_7.JPEG", _HttpError(503))
    root = ["--image-root", f"faulty://{os.path.dirname(local_list)}"]
    with pytest.raises(ConversionError) as failed:
        convert(local_list, tmp_path / "out", *root, "--num-shards", "3")
    message = str(failed.value)
    assert "2/2_7.JPEG could not be read in 4 attempts" in message, message
    assert "503" in message and "No image was rejected" in message and "--resume" in message
    assert not (tmp_path / "out" / "dataset.json").exists()
    assert not (tmp_path / "out" / "train-rejected.jsonl").exists()


@pytest.mark.parametrize(
    "runner, most_opens",
    [
        (IN_PROCESS, 1),  # the local-mode probe's first image read stops the run, in the driver
        # a runner given: no probe; the job's first reads stop it, not all 60 images
        (["--runner", "apache_beam.runners.portability.fn_api_runner.FnApiRunner"], 20),
    ],
)
def test_a_denied_read_stops_the_job_at_once(faulty, local_list, tmp_path, runner, most_opens):
    faulty.always_failing = ("JPEG", _HttpError(403))
    root = ["--image-root", f"faulty://{os.path.dirname(local_list)}"]
    with pytest.raises(ConversionError, match="403 .injected.*storage.objects.get"):
        convert(local_list, tmp_path / "out", *root, "--num-shards", "1", runner=runner)
    assert faulty.opens <= most_opens
