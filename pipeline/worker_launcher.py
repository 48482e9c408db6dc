"""The command Beam's local runner starts for each SDK worker when warm workers are on
(pipeline/warm_workers.py): hands the worker's environment to the warm worker process and
ends as its worker ends, with the same exit code or signal, so the runner sees a worker
process like its own.

Runs as `python -I -S worker_launcher.py SOCKET`: standard library only, ~10 ms to start.
If the warm worker process cannot be reached, it becomes a spawned worker instead (Beam's
own command), so a run never depends on the warm process being there.
"""

import json
import os
import signal
import socket
import struct
import sys

_BEAM_WORKER = ("-m", "apache_beam.runners.worker.sdk_worker_main")


def _spawned_worker() -> None:
    os.execv(sys.executable, [sys.executable, *_BEAM_WORKER])


def main(argv: list) -> None:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(argv[0])
        body = json.dumps(dict(os.environ)).encode()
        socket.send_fds(conn, [struct.pack("!I", len(body))], [0, 1, 2])
        conn.sendall(body)
    except OSError:
        conn.close()
        _spawned_worker()
    answer = b""
    while True:
        chunk = conn.recv(64)
        if not chunk:
            break
        answer += chunk
    kind, _, number = answer.decode().partition(" ")
    if kind == "signal":  # die the same way, so the runner reports the same cause
        if int(number) != signal.SIGKILL:  # whose handler cannot be set, nor needs to be
            signal.signal(int(number), signal.SIG_DFL)
        os.kill(os.getpid(), int(number))
    if kind == "exit":
        sys.exit(int(number))
    print("imgshard: the warm worker process ended before its worker did", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
