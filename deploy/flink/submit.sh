#!/usr/bin/env bash
# Submit `imgshard convert` to a Flink session cluster through Beam's FlinkRunner.
#
#   FLINK_MASTER=127.0.0.1:8081 ENVIRONMENT=PROCESS \
#     ENVIRONMENT_CONFIG='{"command": "/path/to/venv/bin/imgshard-sdk-worker"}' \
#     deploy/flink/submit.sh --input gs://bucket/train.txt --output gs://bucket/imagenet/train
#
# (`make flink-up` prints this command for its cluster, with its settings filled in.)
#
# Settings (environment):
#   FLINK_MASTER (required): host:port of the JobManager's REST API.
#   FLINK_VERSION: the cluster's, read from its REST API (/config), as major.minor. Beam's own
#     default is its newest supported Flink, whatever the cluster runs.
#   PARALLELISM: the cluster's total slots (REST /overview); Flink's default would be 1.
#   ENVIRONMENT: where the Python SDK workers run, each with imgshard installed:
#     DOCKER (default): the image built from deploy/Dockerfile, ENVIRONMENT_CONFIG=IMAGE
#       (required: Beam's stock image has no imgshard);
#     PROCESS: each TaskManager starts its own, ENVIRONMENT_CONFIG='{"command":
#       "/path/to/venv/bin/imgshard-sdk-worker"}' (make flink-up's cluster; bare hosts);
#     EXTERNAL: a Beam worker pool beside EACH TaskManager, ENVIRONMENT_CONFIG=host:port (a
#       sidecar per TaskManager pod; one pool shared by several TaskManagers hangs the job).
#   IMGSHARD: the imgshard command that submits (default: the project's .venv, else PATH's);
#     its Beam version must be the job server's.
#   JOB_SERVER_JAR: a local beam-runners-flink-<FLINK_VERSION>-job-server-<beam>.jar of that
#     Beam version; without it Beam downloads that jar from Maven Central.
#   PRINT_ONLY=1: print the command instead of running it.
# Everything after the script name goes to `imgshard convert` (and through it to Beam).
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
IMGSHARD="${IMGSHARD:-$here/.venv/bin/imgshard}"
[[ -x "$IMGSHARD" ]] || IMGSHARD="$(command -v imgshard || echo imgshard)"
PYTHON="${PYTHON:-$here/.venv/bin/python}"
[[ -x "$PYTHON" ]] || PYTHON="$(command -v python3)"
die() { echo "submit.sh: $*" >&2; exit 1; }
: "${FLINK_MASTER:?set FLINK_MASTER to host:port of the JobManager REST API}"

rest() {  # $1 = path, $2 = a Python expression over the JSON answer `j`
  "$PYTHON" - "$FLINK_MASTER" "$1" "$2" 2>/dev/null <<'PY' || die "no Flink REST API answers at http://$FLINK_MASTER$1"
import json, sys, urllib.request
j = json.load(urllib.request.urlopen(f"http://{sys.argv[1]}{sys.argv[2]}", timeout=10))
print(eval(sys.argv[3]))
PY
}

FLINK_VERSION="${FLINK_VERSION:-$(rest /config '".".join(j["flink-version"].split(".")[:2])')}"
PARALLELISM="${PARALLELISM:-$(rest /overview 'j["slots-total"]')}"
ENVIRONMENT="${ENVIRONMENT:-DOCKER}"
if [[ -z "${ENVIRONMENT_CONFIG:-}" && "$ENVIRONMENT" != LOOPBACK ]]; then
  case "$ENVIRONMENT" in
    DOCKER) die "ENVIRONMENT=DOCKER needs ENVIRONMENT_CONFIG=IMAGE, an image built from deploy/Dockerfile: Beam's stock SDK image has no imgshard" ;;
    EXTERNAL) die "ENVIRONMENT=EXTERNAL needs ENVIRONMENT_CONFIG=host:port of a Beam worker pool with imgshard installed" ;;
    *) die "ENVIRONMENT=$ENVIRONMENT needs ENVIRONMENT_CONFIG" ;;
  esac
fi

args=(
  --runner FlinkRunner --flink_master "$FLINK_MASTER" --flink_version "$FLINK_VERSION"
  --parallelism "$PARALLELISM" --environment_type "$ENVIRONMENT"
)
[[ -n "${ENVIRONMENT_CONFIG:-}" ]] && args+=(--environment_config "$ENVIRONMENT_CONFIG")
[[ -n "${JOB_SERVER_JAR:-}" ]] && args+=(--flink_job_server_jar "$JOB_SERVER_JAR")
if [[ "${PRINT_ONLY:-0}" == 1 ]]; then
  echo "$IMGSHARD convert $* ${args[*]}"
  exit 0
fi
exec "$IMGSHARD" convert "$@" "${args[@]}"
