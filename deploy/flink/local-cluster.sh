#!/usr/bin/env bash
# A real Flink session cluster on this machine: one JobManager and N TaskManagers, each its own
# JVM process, listening on loopback only.
#
#   deploy/flink/local-cluster.sh up [--taskmanagers N] [--slots S]   # prints the submit command
#   deploy/flink/local-cluster.sh status
#   deploy/flink/local-cluster.sh down
#
# The Flink distribution comes from PyPI (apache-flink + apache-flink-libraries carry all of
# it: bin/ with bash-java-utils.jar, conf/, lib/flink-dist-*.jar, opt/, plugins/), downloaded once with `pip download`
# and unpacked into $FLINK_CACHE. It is never pip-installed: PyFlink pins apache-beam<2.49.
#
# The Python side of a Beam job runs in SDK workers that each TaskManager starts itself
# (`--environment_type PROCESS`) with imgshard-sdk-worker from $PYTHON's environment: a
# TaskManager's workers are its own and die with it. (One EXTERNAL worker pool shared by the
# TaskManagers does not work: their worker ids collide in it, see pipeline/sdk_worker.py.)
#
# Each TaskManager runs under a supervisor that starts it again when it dies, as Kubernetes
# restarts a pod: a TaskManager killed mid-job comes back, and Flink's restart strategy
# reruns the failed tasks on it.
#
# Settings (environment): FLINK_VERSION (1.20.5); FLINK_CACHE (.cache/flink under the project);
#   CLUSTER_DIR (.cache/flink/cluster: configuration, logs, pid files and the address of the
#   running cluster); PYTHON (the project's .venv/bin/python: pip, the REST checks, and the
#   SDK workers, so its Beam must be the job server's version: `make flink-up
#   IMGSHARD_FLINK_JOB_SERVER_JAR=...` uses .venv-flink); JOB_SERVER_JAR (only printed in the
#   submit command); START_SECONDS (120).
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
FLINK_VERSION="${FLINK_VERSION:-1.20.5}"
FLINK_CACHE="${FLINK_CACHE:-$here/.cache/flink}"
CLUSTER_DIR="${CLUSTER_DIR:-$FLINK_CACHE/cluster}"
PYTHON="${PYTHON:-$here/.venv/bin/python}"
[[ -x "$PYTHON" ]] || PYTHON="$(command -v python3)"
START_SECONDS="${START_SECONDS:-120}"
FLINK_HOME="$FLINK_CACHE/flink-$FLINK_VERSION"

die() { echo "local-cluster.sh: $*" >&2; exit 1; }

fetch_flink() {  # -> $FLINK_HOME with bin/ conf/ lib/ opt/ plugins/
  [[ -f "$FLINK_HOME/lib/flink-dist-$FLINK_VERSION.jar" ]] && return
  local download="$FLINK_CACHE/download" unpack="$FLINK_CACHE/unpack.$$"
  mkdir -p "$download" "$unpack"
  echo "local-cluster.sh: fetching Flink $FLINK_VERSION from PyPI (~235 MB, once)" >&2
  "$PYTHON" -m pip download --quiet --no-deps --disable-pip-version-check -d "$download" \
    "apache-flink==$FLINK_VERSION" "apache-flink-libraries==$FLINK_VERSION"
  "$PYTHON" -m zipfile -e "$download"/apache_flink-"$FLINK_VERSION"-*.whl "$unpack/wheel"
  tar -xzf "$download/apache_flink_libraries-$FLINK_VERSION.tar.gz" -C "$unpack"
  local libraries="$unpack/apache_flink_libraries-$FLINK_VERSION/deps"
  mkdir -p "$unpack/home"
  mv "$unpack/wheel/pyflink/bin" "$unpack/wheel/pyflink/conf" "$unpack/home/"
  mv "$libraries/lib" "$libraries/opt" "$libraries/plugins" "$unpack/home/"
  mv "$libraries/bin/"*.jar "$unpack/home/bin/"  # bash-java-utils.jar: the scripts' config parser
  chmod +x "$unpack/home/bin/"*.sh "$unpack/home/bin/flink"
  rm -rf "$FLINK_HOME" && mv "$unpack/home" "$FLINK_HOME" && rm -rf "$unpack"
}

free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

write_config() {  # $1 = TaskManager slots, $2 = REST port, $3 = JobManager RPC port
  mkdir -p "$CLUSTER_DIR/conf" "$CLUSTER_DIR/log" "$CLUSTER_DIR/pids"
  cp "$FLINK_HOME/conf/"log4j*.properties "$FLINK_HOME/conf/"logback*.xml "$CLUSTER_DIR/conf/"
  # Keep the distribution's JVM flags (Java 17 needs its --add-opens), replace the rest.
  sed -n '/^env:/,/^[a-z]/p' "$FLINK_HOME/conf/config.yaml" | sed '$d' >"$CLUSTER_DIR/conf/config.yaml"
  cat >>"$CLUSTER_DIR/conf/config.yaml" <<EOF
jobmanager:
  bind-host: 127.0.0.1
  rpc:
    address: 127.0.0.1
    port: $3
  memory:
    process:
      size: 1024m
  execution:
    failover-strategy: region
# Network memory: every exchange of the job (the index's shuffles, GroupByShard, the side
# inputs every writer and Finalize read) gives each consuming subtask 2 buffers per upstream
# channel plus 8 floating ones, and a slot runs a whole region of such subtasks at once. At
# parallelism 4 one region asked for 512 buffers (32 KiB each) while Flink's default, 10% of
# a 1536m TaskManager, had 389 left ("Insufficient number of network buffers"). 320 MB is
# 10,240 buffers a TaskManager: room for 2 slots x several such regions (tested at 4).
taskmanager:
  bind-host: 127.0.0.1
  host: 127.0.0.1
  numberOfTaskSlots: $1
  memory:
    process:
      size: 2048m
    network:
      min: 320mb
      max: 320mb
rest:
  address: 127.0.0.1
  bind-address: 127.0.0.1
  port: $2
# A lost TaskManager fails its tasks; the job restarts them, 3 times, once its supervisor
# has started it again. If slots never come back (a host gone for good), a slot request
# fails after 60 s instead of Flink's 5 minutes, so the job ends in a failure the driver
# explains (and --resume finishes) rather than waiting on slots that do not exist.
restart-strategy:
  type: fixed-delay
  fixed-delay:
    attempts: 3
    delay: 10 s
slot:
  request:
    timeout: 60000
heartbeat:
  timeout: 20000
EOF
}

flink_env() {
  export FLINK_CONF_DIR="$CLUSTER_DIR/conf" FLINK_LOG_DIR="$CLUSTER_DIR/log"
  export FLINK_PID_DIR="$CLUSTER_DIR/pids" FLINK_IDENT_STRING=imgshard
}

rest() {  # $1 = path; prints the JSON answer of the running cluster
  "$PYTHON" - "$(cat "$CLUSTER_DIR/address")" "$1" <<'EOF'
import sys, urllib.request
print(urllib.request.urlopen(f"http://{sys.argv[1]}{sys.argv[2]}", timeout=5).read().decode())
EOF
}

wait_for_taskmanagers() {  # $1 = how many must have registered
  local deadline=$((SECONDS + START_SECONDS)) seen=""
  while ((SECONDS < deadline)); do
    seen=$(rest /overview 2>/dev/null | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["taskmanagers"])' 2>/dev/null || true)
    [[ "$seen" == "$1" ]] && return
    sleep 1
  done
  die "only ${seen:-no} of $1 TaskManagers registered within ${START_SECONDS} s; logs: $CLUSTER_DIR/log"
}

up() {
  local taskmanagers=2 slots
  slots="$(nproc)"
  while (($#)); do
    case "$1" in
      --taskmanagers) taskmanagers="$2"; shift 2 ;;
      --slots) slots="$2"; shift 2 ;;
      *) die "unknown flag $1 (up takes --taskmanagers N and --slots S)" ;;
    esac
  done
  [[ -f "$CLUSTER_DIR/address" ]] && die "a cluster is already up at $(cat "$CLUSTER_DIR/address"); stop it first (make flink-down)"
  command -v java >/dev/null || die "java not found: Flink needs a JDK 11 or 17"
  fetch_flink
  local rest_port rpc_port
  rest_port="$(free_port)"
  rpc_port="$(free_port)"
  write_config "$slots" "$rest_port" "$rpc_port"
  rm -f "$CLUSTER_DIR/stopping"
  flink_env
  echo "127.0.0.1:$rest_port" >"$CLUSTER_DIR/address"
  "$FLINK_HOME/bin/jobmanager.sh" start >/dev/null
  local i
  for i in $(seq "$taskmanagers"); do
    supervise_taskmanager "$i"
  done
  wait_for_taskmanagers "$taskmanagers"
  "$PYTHON" -c "import imgshard.pipeline" 2>/dev/null ||
    echo "local-cluster.sh: warning: $PYTHON has no imgshard: its SDK workers cannot run a job" >&2
  local worker
  worker="$(dirname "$PYTHON")/imgshard-sdk-worker"
  echo "{\"command\": \"$worker\"}" >"$CLUSTER_DIR/environment"
  echo "Flink $FLINK_VERSION session cluster: 1 JobManager + $taskmanagers TaskManagers x $slots slots"
  echo "web UI and REST: http://127.0.0.1:$rest_port"
  local jar="${JOB_SERVER_JAR:+ JOB_SERVER_JAR=$JOB_SERVER_JAR}"
  echo "submit with: FLINK_MASTER=127.0.0.1:$rest_port ENVIRONMENT=PROCESS" \
    "ENVIRONMENT_CONFIG='$(cat "$CLUSTER_DIR/environment")'" \
    "IMGSHARD=$(dirname "$PYTHON")/imgshard$jar deploy/flink/submit.sh --input ... --output ..."
}

# One TaskManager in the foreground under a loop that starts it again when it dies, in a
# session (process group) of its own: `down` ends the loop, the JVM and the SDK workers the
# JVM started, even those a killed JVM left behind. taskmanager-N.pid holds the running JVM.
supervise_taskmanager() {  # $1 = the TaskManager's number
  local tm_pid="$CLUSTER_DIR/pids/taskmanager-$1.pid"
  PATH="$(dirname "$PYTHON"):$PATH" setsid bash -c '
    while [[ ! -f "$0/stopping" ]]; do
      "$1/bin/taskmanager.sh" start-foreground >>"$0/log/taskmanager-$2.out" 2>&1 &
      echo $! >"$3"
      wait $!
      [[ -f "$0/stopping" ]] || { echo "$(date -Is) TaskManager $2 exited; starting it again" >>"$0/log/supervisor.log"; sleep 2; }
    done' "$CLUSTER_DIR" "$FLINK_HOME" "$1" "$tm_pid" </dev/null >/dev/null 2>&1 &
  echo $! >"$CLUSTER_DIR/pids/supervisor-$1.pid"
}

down() {
  [[ -d "$CLUSTER_DIR/pids" ]] || return 0
  flink_env
  touch "$CLUSTER_DIR/stopping"
  local pidfile pid
  # Supervisors first (each with its process group: its TaskManager and SDK workers), then
  # whatever else a pid file names (the JobManager, Flink's own TaskManager pid files).
  for pidfile in "$CLUSTER_DIR/pids"/supervisor-*.pid; do
    [[ -f "$pidfile" ]] || continue
    pid="$(cat "$pidfile")"
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$pidfile"
  done
  for pidfile in "$CLUSTER_DIR/pids"/*.pid; do
    [[ -f "$pidfile" ]] || continue
    while read -r pid; do
      [[ -n "$pid" ]] || continue
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -9 "$pid" 2>/dev/null || true
    done <"$pidfile"
    rm -f "$pidfile"
  done
  rm -f "$CLUSTER_DIR/address" "$CLUSTER_DIR/environment" "$CLUSTER_DIR/stopping"
  echo "Flink cluster stopped"
}

status() {
  [[ -f "$CLUSTER_DIR/address" ]] || die "no cluster is up (CLUSTER_DIR=$CLUSTER_DIR)"
  echo "REST http://$(cat "$CLUSTER_DIR/address")"
  rest /overview
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) down ;;
  status) status ;;
  *) die "usage: local-cluster.sh up [--taskmanagers N] [--slots S] | status | down" ;;
esac
