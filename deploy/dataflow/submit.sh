#!/usr/bin/env bash
# Submit `imgshard convert` to Dataflow.
#
#   PROJECT=my-project BUCKET=my-bucket deploy/dataflow/submit.sh \
#     --input gs://my-bucket/ilsvrc/train.txt --output gs://my-bucket/imagenet/train
#
# Settings (environment):  PROJECT, BUCKET (required); REGION (us-central1);
#   MACHINE_TYPE (n2-standard-4); MAX_WORKERS (12: a bucket serves ~5,000 reads/s at first); JOB_NAME (imgshard-<date>);
#   CONTAINER: a worker image built from deploy/Dockerfile (default: none, the package is
#   built as an sdist from pyproject.toml and installed on each worker at start-up);
#   DRY_RUN=1: build and validate the job offline, submit nothing.
# Everything after the script name goes to `imgshard convert` (and through it to Beam).
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
: "${PROJECT:?set PROJECT to the Google Cloud project}"
: "${BUCKET:?set BUCKET to a bucket for temporary and staging files}"
REGION="${REGION:-us-central1}"
MACHINE_TYPE="${MACHINE_TYPE:-n2-standard-4}"
MAX_WORKERS="${MAX_WORKERS:-12}"
JOB_NAME="${JOB_NAME:-imgshard-$(date -u +%Y%m%d-%H%M%S)}"
IMGSHARD="${IMGSHARD:-imgshard}"

args=(
  --runner DataflowRunner
  --project "$PROJECT" --region "$REGION" --job_name "$JOB_NAME"
  --temp_location "gs://$BUCKET/imgshard/tmp" --staging_location "gs://$BUCKET/imgshard/staging"
  --machine_type "$MACHINE_TYPE" --max_num_workers "$MAX_WORKERS"
  --autoscaling_algorithm THROUGHPUT_BASED
  --experiments use_runner_v2
)
if [[ -n "${CONTAINER:-}" ]]; then
  args+=(--sdk_container_image "$CONTAINER" --sdk_location container)
else
  args+=(--setup_file "$here/pyproject.toml")
fi
if [[ "${DRY_RUN:-0}" == 1 ]]; then
  args+=(--dry_run=True)
fi
exec "$IMGSHARD" convert "$@" "${args[@]}"
