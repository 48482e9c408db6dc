"""Dataflow and Flink submission, against the most real local stand-ins there are offline:
the DataflowRunner's dry run, and Beam's portable job service (the path FlinkRunner takes)."""

import os
import subprocess
import sys

import pytest
from apache_beam.io.filesystems import FileSystems
from apache_beam.portability.api import beam_runner_api_pb2

from helpers import IN_PROCESS, free_port, shard_files, sorted_dataset, wait_for_port
from imgshard.pipeline import ConversionError, run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
STABLE_LABELS = {
    "ReadIndex",
    "BuildVocabulary",
    "ChooseShardCount",
    "AssignShard",
    "GroupByShard",
    "WriteShard",
    "Finalize",
}


@pytest.fixture(scope="module")
def gs_list(gcs_bucket, tmp_path_factory):
    """A list on the GCS emulator (the driver checks that its input exists)."""
    uri = f"gs://{gcs_bucket}/deploy/train.txt"
    with FileSystems.create(uri) as f:
        f.write(b"n1/a.JPEG n1\nn2/b.JPEG n2\n")
    return uri


def dataflow_flags(bucket="my-bucket"):
    return [
        "--runner",
        "DataflowRunner",
        "--project",
        "test-project",
        "--region",
        "us-central1",
        "--temp_location",
        f"gs://{bucket}/tmp",
        "--dry_run=True",
    ]


@pytest.mark.gcs
def test_dataflow_dry_run_builds_the_graph_with_our_labels_and_staged_package(gs_list, gcs_bucket):
    result = run(
        [
            "--input",
            gs_list,
            "--output",
            f"gs://{gcs_bucket}/deploy/out",
            *dataflow_flags(),
            "--setup_file",
            os.path.join(ROOT, "pyproject.toml"),
        ]
    )
    pipeline = result.job.proto_pipeline
    labels = {t.unique_name.split("/")[0] for t in pipeline.components.transforms.values()}
    assert STABLE_LABELS <= labels
    staged = {
        beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(d.role_payload).staged_name
        for env in pipeline.components.environments.values()
        for d in env.dependencies
    }
    assert "workflow.tar.gz" in staged  # the sdist of this project, installed on every worker
    # nothing was written, not even the journal a real run starts with
    assert not FileSystems.match([f"gs://{gcs_bucket}/deploy/out/**"])[0].metadata_list


@pytest.mark.gcs
@pytest.mark.slow
def test_dataflow_submit_script_dry_run(gs_list, gcs_bucket):
    env = {
        **os.environ,
        "PROJECT": "test-project",
        "BUCKET": "my-bucket",
        "DRY_RUN": "1",
        "IMGSHARD": os.path.join(BIN, "imgshard"),
    }
    done = subprocess.run(
        [
            os.path.join(ROOT, "deploy/dataflow/submit.sh"),
            "--input",
            gs_list,
            "--output",
            f"gs://{gcs_bucket}/deploy/script-out",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "dry run: the job graph and options were validated" in done.stdout


def test_remote_runners_refuse_local_paths(tmp_path):
    (tmp_path / "train.txt").write_text("a.jpg 0\n")
    with pytest.raises(ConversionError, match="may not see this machine.s disk.*--input"):
        run(["--input", str(tmp_path / "train.txt"), "--output", "gs://b/out", *dataflow_flags()])


def _serve(module: str, port_flag: str, *flags: str):
    """Starts a Beam service module on a free port; yields its address."""
    port = free_port()
    # workers started by a pool run the `python` on PATH: this venv's
    env = {**os.environ, "PATH": BIN + os.pathsep + os.environ.get("PATH", "")}
    server = subprocess.Popen(
        [sys.executable, "-m", module, f"{port_flag}={port}", *flags],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, server, module)
    yield f"localhost:{port}"
    server.terminate()
    server.wait(timeout=20)


@pytest.fixture(scope="module")
def job_service():
    """Beam's local portable job service: what FlinkRunner's job server is to Flink."""
    yield from _serve("apache_beam.runners.portability.local_job_service_main", "--port")


@pytest.fixture(scope="module")
def worker_pool():
    """A Beam worker pool: SDK workers in their own processes, as beside a TaskManager."""
    yield from _serve("apache_beam.runners.worker.worker_pool_main", "--service_port")


@pytest.fixture(scope="module")
def booting_worker_pool():
    """A pool that starts each SDK worker through imgshard-sdk-worker, the boot command of
    PROCESS workers on Flink (pipeline/sdk_worker.py): the runner's provision service, for
    real, tells it the endpoints and options."""
    yield from _serve(
        "apache_beam.runners.worker.worker_pool_main",
        "--service_port",
        f"--container_executable={os.path.join(BIN, 'imgshard-sdk-worker')}",
    )


@pytest.mark.slow
@pytest.mark.parametrize("environment", ["LOOPBACK", "EXTERNAL", "EXTERNAL-boot"])
def test_portable_runner_writes_the_same_bytes_as_the_local_runner(
    environment, job_service, request, tmp_path
):
    list_path = sorted_dataset(str(tmp_path / "images"), classes=5, per_class=12)
    flags = ["--num-shards", "3", "--seed", "9"]
    run(["--input", list_path, "--output", str(tmp_path / "direct"), *flags, *IN_PROCESS])
    workers = ["--environment_type", environment.split("-")[0]]
    if environment == "EXTERNAL":
        workers += ["--environment_config", request.getfixturevalue("worker_pool")]
    elif environment == "EXTERNAL-boot":
        workers += ["--environment_config", request.getfixturevalue("booting_worker_pool")]
    result = run(
        [
            "--input",
            list_path,
            "--output",
            str(tmp_path / "portable"),
            *flags,
            "--runner",
            "PortableRunner",
            "--job_endpoint",
            job_service,
            *workers,
        ]
    )
    assert result.metadata["num_records"] == 60
    direct = {
        os.path.basename(p): open(p, "rb").read() for p in shard_files(str(tmp_path / "direct"))
    }
    portable = {
        os.path.basename(p): open(p, "rb").read() for p in shard_files(str(tmp_path / "portable"))
    }
    assert len(direct) == 3 and direct == portable
