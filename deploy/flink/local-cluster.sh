#!/usr/bin/env bash
# A real Flink session cluster on this machine: one JobManager and N TaskManagers, each its own
# JVM process, listening on loopback only.
#
#   deploy/flink/local-cluster.sh up [--taskmanagers N] [--slots S]   # prints the REST address
#   deploy/flink/local-cluster.sh status
#   deploy/flink/local-cluster.sh down
#
# The Flink distribution comes from PyPI (apache-flink + apache-flink-libraries carry all of
# it: bin/ with bash-java-utils.jar, conf/, lib/flink-dist-*.jar, opt/, plugins/), downloaded once with `pip download`
# and unpacked into $FLINK_CACHE. It is never pip-installed: PyFlink pins apache-beam<2.49.
#
# Beside the TaskManagers it starts a Beam worker pool (the SDK workers of `--environment_type
# EXTERNAL`) with $PYTHON, which must have imgshard installed: the Python side of a Beam job.
#
# Settings (environment): FLINK_VERSION (1.20.5); FLINK_CACHE (.cache/flink under the project);
#   CLUSTER_DIR (.cache/flink/cluster: configuration, logs, pid files and the address of the
#   running cluster); PYTHON (the project's .venv/bin/python: pip, the REST checks and the
#   worker pool); START_SECONDS (120).
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
taskmanager:
  bind-host: 127.0.0.1
  host: 127.0.0.1
  numberOfTaskSlots: $1
  memory:
    process:
      size: 1536m
rest:
  address: 127.0.0.1
  bind-address: 127.0.0.1
  port: $2
# A lost TaskManager fails its tasks; the job restarts them from its last state, 3 times.
restart-strategy:
  type: fixed-delay
  fixed-delay:
    attempts: 3
    delay: 5 s
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
  [[ -f "$CLUSTER_DIR/address" ]] && die "a cluster is already up at $(cat "$CLUSTER_DIR/address"); run down first"
  command -v java >/dev/null || die "java not found: Flink needs a JDK 11 or 17"
  fetch_flink
  local rest_port rpc_port
  rest_port="$(free_port)"
  rpc_port="$(free_port)"
  write_config "$slots" "$rest_port" "$rpc_port"
  flink_env
  echo "127.0.0.1:$rest_port" >"$CLUSTER_DIR/address"
  "$FLINK_HOME/bin/jobmanager.sh" start >/dev/null
  for _ in $(seq "$taskmanagers"); do
    "$FLINK_HOME/bin/taskmanager.sh" start >/dev/null
  done
  wait_for_taskmanagers "$taskmanagers"
  start_worker_pool
  echo "Flink $FLINK_VERSION session cluster: 1 JobManager + $taskmanagers TaskManagers x $slots slots"
  echo "web UI and REST: http://127.0.0.1:$rest_port"
  echo "submit with: FLINK_MASTER=127.0.0.1:$rest_port ENVIRONMENT=EXTERNAL" \
    "ENVIRONMENT_CONFIG=$(cat "$CLUSTER_DIR/worker-pool") deploy/flink/submit.sh ..."
}

start_worker_pool() {
  "$PYTHON" -c "import imgshard.pipeline" 2>/dev/null ||
    die "$PYTHON has no imgshard: the worker pool would not run the job (set PYTHON to the project's venv)"
  local port
  port="$(free_port)"
  # Workers started by the pool run the `python` on PATH: this one's.
  PATH="$(dirname "$PYTHON"):$PATH" nohup "$PYTHON" -m apache_beam.runners.worker.worker_pool_main \
    --service_port="$port" >"$CLUSTER_DIR/log/worker-pool.log" 2>&1 &
  echo $! >"$CLUSTER_DIR/pids/worker-pool.pid"
  echo "127.0.0.1:$port" >"$CLUSTER_DIR/worker-pool"
}

down() {
  [[ -d "$CLUSTER_DIR/pids" ]] || return 0
  flink_env
  local pidfile pid
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
  rm -f "$CLUSTER_DIR/address" "$CLUSTER_DIR/worker-pool"
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
