#!/usr/bin/env bash
# Submit `imgshard convert` to a Flink session cluster through Beam's portable runner.
#
#   FLINK_MASTER=flink-jobmanager:8081 deploy/flink/submit.sh \
#     --input gs://bucket/train.txt --output gs://bucket/imagenet/train
#
# Settings (environment): FLINK_MASTER (required, host:port of the JobManager REST API);
#   ENVIRONMENT: DOCKER (default; workers run the image from deploy/Dockerfile, needs Docker on
#   the TaskManagers), EXTERNAL (workers are a Beam worker pool beside each TaskManager, see
#   deploy/flink/README.md) or PROCESS;
#   ENVIRONMENT_CONFIG: the image (DOCKER), host:port of the pool (EXTERNAL), or the boot command
#   (PROCESS); PARALLELISM (default: the cluster's);
#   JOB_SERVER_JAR: a local beam-runners-flink-<version>-job-server jar (otherwise Beam downloads
#   the one matching the Flink version from Maven Central on first use).
set -euo pipefail
: "${FLINK_MASTER:?set FLINK_MASTER to the JobManager's host:port}"
ENVIRONMENT="${ENVIRONMENT:-DOCKER}"
IMGSHARD="${IMGSHARD:-imgshard}"
args=(--runner FlinkRunner --flink_master "$FLINK_MASTER" --environment_type "$ENVIRONMENT")
[[ -n "${ENVIRONMENT_CONFIG:-}" ]] && args+=(--environment_config "$ENVIRONMENT_CONFIG")
[[ -n "${PARALLELISM:-}" ]] && args+=(--parallelism "$PARALLELISM")
[[ -n "${JOB_SERVER_JAR:-}" ]] && args+=(--flink_job_server_jar "$JOB_SERVER_JAR")
exec "$IMGSHARD" convert "$@" "${args[@]}"
