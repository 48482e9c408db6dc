"""The warm worker process of a local run: imports Beam's SDK harness and imgshard's worker
code once, then forks one SDK worker per request (pipeline/warm_workers.py starts it).

A spawned SDK worker spends ~1.3 s importing before it can take work, and the same again
finalizing its interpreter at exit, one worker after the other (benchmarks/README.md). This
process imports while the driver does, on the other core, and a worker forked from it starts
in milliseconds and leaves with os._exit once its harness returns.

Protocol, per connection on the listening socket the driver passes (fd in argv[1]): the
launcher (pipeline/worker_launcher.py) sends its stdin, stdout and stderr (SCM_RIGHTS) and the
worker's environment as one length-prefixed JSON object; this process forks the worker with
them and, when it ends, answers "exit N" or "signal N".
A launcher that goes away takes its worker with it (SIGKILL). The driver ends this process by
closing its stdin; its workers are killed with it.

Forking is safe here because this process never starts a thread or a gRPC channel: it only
imports, waits in select() and forks (Python's own forkserver works the same way).
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import select
import shutil
import signal
import socket
import struct
import sys
import traceback

__all__ = ["PRELOAD", "main"]

# What an SDK worker imports before and while it runs the conversion's bundles, so a forked
# worker imports nothing (graph imports every DoFn's module; PIL's JPEG plugin loads lazily).
PRELOAD = (
    "apache_beam.runners.worker.sdk_worker_main",
    "apache_beam.runners.worker.bundle_processor",
    "apache_beam.runners.worker.operations",
    "apache_beam.transforms.combiners",
    "imgshard.pipeline.graph",
    "PIL.JpegImagePlugin",
    "PIL.PngImagePlugin",
)
_PR_SET_PDEATHSIG = 1
_SIGINT = signal.default_int_handler  # the disposition this process started with (main)
_HEADER = struct.Struct("!I")


def _die_with_parent(how: int = signal.SIGKILL) -> None:
    """Signal `how` when the process that forked this one ends (Linux prctl; elsewhere the
    launcher or the driver's closed pipe ends it)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, how)
    except (OSError, AttributeError):
        pass


def _receive_request(conn: socket.socket) -> tuple[dict, list[int]]:
    """The worker's environment, and the launcher's stdin, stdout and stderr."""
    conn.settimeout(10)
    header, fds, _, _ = socket.recv_fds(conn, _HEADER.size, 3, socket.MSG_WAITALL)
    try:
        (size,) = _HEADER.unpack(header)
        body = conn.recv(size, socket.MSG_WAITALL)
        if len(fds) != 3 or len(body) != size:
            raise ConnectionError("request cut short")
        conn.settimeout(None)
        return json.loads(body), fds
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def _run_worker(environment: dict, stdio: list[int], inherited: list[int]) -> None:
    """In the forked child: become Beam's SDK harness with the launcher's environment and
    standard streams, as if the launcher itself were the worker."""
    for fd in inherited:
        os.close(fd)
    for target, fd in enumerate(stdio):
        os.dup2(fd, target)
        os.close(fd)
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # As a spawned worker: the driver's own disposition (ignored in a background job), else
    # Python's handler, by which Beam's harness stops itself (terminate_sdk_harness).
    signal.signal(signal.SIGINT, _SIGINT)
    _die_with_parent()
    os.environ.clear()
    os.environ.update(environment)
    code = 0
    try:
        from apache_beam.runners.worker import sdk_worker_main

        sdk_worker_main.main([])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # its interpreter's finalization is what a spawned worker waits on


def _status(status: int) -> bytes:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}".encode()
    return f"exit {os.waitstatus_to_exitcode(status)}".encode()


def serve(listener: socket.socket, lifeline: int) -> None:
    """Forks a worker per connection until `lifeline` (the driver's pipe) closes."""
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake select() through the pipe
    workers: dict[int, socket.socket] = {}  # pid -> its launcher's connection
    try:
        while True:
            ready, _, _ = select.select([listener, lifeline, wake_read, *workers.values()], [], [])
            if lifeline in ready:
                return
            if wake_read in ready:
                os.read(wake_read, 4096)
            if listener in ready:
                conn, _ = listener.accept()
                try:
                    environment, stdio = _receive_request(conn)
                except (OSError, ValueError, struct.error):
                    conn.close()
                else:
                    inherited = [listener.fileno(), lifeline, wake_read, wake_write, conn.fileno()]
                    inherited += [c.fileno() for c in workers.values()]
                    pid = os.fork()
                    if pid == 0:
                        _run_worker(environment, stdio, inherited)
                    for fd in stdio:
                        os.close(fd)
                    workers[pid] = conn
            for pid, conn in list(workers.items()):
                if conn in ready:  # the launcher went away (killed): so does its worker
                    _kill(pid)
            while workers:
                pid, status = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
                conn = workers.pop(pid, None)
                if conn is not None:
                    try:
                        conn.sendall(_status(status))
                    except OSError:
                        pass
                    conn.close()
    finally:
        for pid in workers:
            _kill(pid)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def main(argv: list[str]) -> None:
    """argv: the listening socket's fd, and its folder (removed when the driver is gone)."""
    folder = argv[1]

    def driver_gone(*_):  # SIGTERM, sent by the kernel when the driver dies (even by SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)
        os._exit(1)  # its workers follow: their parent-death signal is SIGKILL

    signal.signal(signal.SIGTERM, driver_gone)
    _die_with_parent(signal.SIGTERM)
    global _SIGINT
    _SIGINT = signal.getsignal(signal.SIGINT)  # what a spawned worker would have inherited
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    listener = socket.socket(fileno=int(argv[0]))
    for name in PRELOAD:
        importlib.import_module(name)
    from PIL import Image

    Image.init()
    serve(listener, sys.stdin.fileno())
    shutil.rmtree(folder, ignore_errors=True)  # the driver's own cleanup may never run
    os._exit(0)  # finalizing the imports would keep the driver waiting ~0.3 s for nothing


if __name__ == "__main__":
    main(sys.argv[1:])
