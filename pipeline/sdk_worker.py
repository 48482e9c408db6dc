"""`imgshard-sdk-worker`: the boot command of Beam's PROCESS environment on a host with imgshard.

A Flink TaskManager given `--environment_type PROCESS` starts every SDK worker it needs as
`COMMAND --id=ID --provision_endpoint=HOST:PORT [--semi_persist_dir=DIR]`. Beam ships that
command only inside its container images (`boot`, a Go program). This is the part of it a
host with imgshard installed needs: ask the TaskManager's provision service for the pipeline
options and the endpoints, then become Beam's own SDK harness (`sdk_worker_main`) with them.
Staged artifacts are not fetched: the job's code is imgshard, installed here.

    --environment_type PROCESS \
      --environment_config '{"command": "/path/to/venv/bin/imgshard-sdk-worker"}'

Why not one EXTERNAL worker pool for the machine: each TaskManager numbers its workers from
the same ids ("1-1", "3-1", ...), and Beam's pool keeps its worker processes by id, so a
second TaskManager's StartWorker replaces the first one's entry and a StopWorker from either
kills the other's worker (worker_pool_main.BeamFnExternalWorkerPoolServicer). Workers that a
TaskManager starts itself are its own, and die with it.
"""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["harness_environment", "main"]


def harness_environment(provision_endpoint: str, worker_id: str, semi_persist_dir: str) -> dict:
    """The environment `sdk_worker_main` reads, from the TaskManager's provision service."""
    import grpc
    from apache_beam.portability.api import beam_provision_api_pb2, beam_provision_api_pb2_grpc
    from google.protobuf import json_format, text_format

    with grpc.insecure_channel(provision_endpoint) as channel:
        info = (
            beam_provision_api_pb2_grpc.ProvisionServiceStub(channel)
            .GetProvisionInfo(
                beam_provision_api_pb2.GetProvisionInfoRequest(),
                metadata=[("worker_id", worker_id)],  # runners serve each worker by its id
                timeout=60,
            )
            .info
        )
    found = {
        "WORKER_ID": worker_id,
        "PIPELINE_OPTIONS": json_format.MessageToJson(info.pipeline_options),
        "CONTROL_API_SERVICE_DESCRIPTOR": text_format.MessageToString(info.control_endpoint),
        "LOGGING_API_SERVICE_DESCRIPTOR": text_format.MessageToString(info.logging_endpoint),
        "SEMI_PERSISTENT_DIRECTORY": semi_persist_dir,
        "RUNNER_CAPABILITIES": " ".join(info.runner_capabilities),
    }
    if info.HasField("status_endpoint"):
        found["STATUS_API_SERVICE_DESCRIPTOR"] = text_format.MessageToString(info.status_endpoint)
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="imgshard-sdk-worker", description=__doc__.split("\n")[0])
    parser.add_argument("--id", required=True, help="the worker id the runner gave")
    parser.add_argument("--provision_endpoint", required=True, help="host:port")
    parser.add_argument("--semi_persist_dir", default="/tmp")
    # Flags a newer runner may add (the container boot's) are not needed here.
    args, _ = parser.parse_known_args(argv)
    environment = harness_environment(args.provision_endpoint, args.id, args.semi_persist_dir)
    # exec, not a child: the runner stops the worker by the process it started.
    python = sys.executable
    os.execve(
        python,
        [python, "-m", "apache_beam.runners.worker.sdk_worker_main"],
        {**os.environ, **environment},
    )


if __name__ == "__main__":
    main()
