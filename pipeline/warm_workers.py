"""Warm SDK workers for a local run in worker processes: started before the driver imports Beam.

Beam's local runner in `multi_processing` mode spawns each SDK worker as a fresh
`python -m apache_beam.runners.worker.sdk_worker_main` when the first stage runs: on 2 cores
the workers import for ~1.3 s while the driver waits, and at the end the runner waits for
each worker's interpreter to finalize, one after the other (~0.55 s each). Both sit on the
critical path of every run (benchmarks/README.md, "Below Beam's floor").

Here `imgshard convert` starts one warm process (pipeline/worker_zygote.py) as its first act,
so it imports on the second core while the driver imports and builds the graph; the runner
gets an SDK environment whose command (pipeline/worker_launcher.py) has a worker forked from
it. Only public Beam API is used: FnApiRunner's `default_environment` and a
SubprocessSDKEnvironment command. The runner still sees one process per worker, with its exit
code, so a killed worker fails the run as before (pipeline/job_failure.py).

Off where it cannot help or work: fewer than 2 usable cores (CPU affinity counts), outside
Linux, another runner or running mode given, or IMGSHARD_WARM_WORKERS=0 (or false, off, no).
Workers are spawned by Beam then, as before.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile

__all__ = ["WarmWorkers", "take_early", "start_early", "wanted"]

_LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker_launcher.py")
_OFF = "IMGSHARD_WARM_WORKERS"


class WarmWorkers:
    """The warm worker process and the SDK environment that forks workers from it."""

    def __init__(self) -> None:
        # A socket file in a folder only this user can enter: a process that could connect
        # would get a worker that runs whatever its control endpoint sends.
        self._folder = tempfile.mkdtemp(prefix="imgshard-workers-")
        self.address = os.path.join(self._folder, "workers.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(self.address)
            listener.listen(64)
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "imgshard.pipeline.worker_zygote",
                    str(listener.fileno()),
                    self._folder,
                ],
                stdin=subprocess.PIPE,  # its lifeline: closed by stop() or this process's end
                pass_fds=(listener.fileno(),),
            )
        except BaseException:
            shutil.rmtree(self._folder, ignore_errors=True)
            raise
        finally:
            listener.close()  # the warm process holds it now

    used = False  # environment() was asked for: workers may have been forked

    def command(self) -> str:
        """The SDK worker command line (run by /bin/sh): a launcher that has a worker forked
        for it; exec, so that the process Beam waits on and kills is the launcher itself."""
        return "exec " + shlex.join([sys.executable, "-I", "-S", _LAUNCHER, self.address])

    def environment(self):
        from apache_beam.transforms.environments import SubprocessSDKEnvironment

        self.used = True
        return SubprocessSDKEnvironment.from_command_string(self.command())

    def stop(self) -> None:
        """Ends the warm process and any worker it still has; the run's own workers have
        ended by now. One never used is killed at once: its imports need not finish."""
        if not self.used:
            self._process.kill()
        if self._process.stdin is not None and not self._process.stdin.closed:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> WarmWorkers:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


_early: WarmWorkers | None = None


def wanted(convert_argv: list[str]) -> bool:
    """Whether `imgshard convert` with these flags may run its job in local worker processes,
    judged from the flags alone (the driver decides later and stops what it does not use)."""
    if os.environ.get(_OFF, "1").lower() in ("0", "false", "off", "no"):
        return False
    if not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2:
        return False  # on one usable core it would only compete with the driver
    for i, arg in enumerate(convert_argv):
        name, equals, value = arg.partition("=")
        if not equals and i + 1 < len(convert_argv):  # `--flag value`, as argparse takes it
            value = convert_argv[i + 1]
        if name in ("-h", "--help", "--runner", "--dry_run"):
            return False
        if name == "--direct_running_mode" and value and value != "multi_processing":
            return False
        if name == "--direct_num_workers" and value == "1":  # one process, unless told otherwise
            return False
    return True


def start_early(convert_argv: list[str]) -> None:
    """Starts the warm process if these flags may use it; never fails the command."""
    global _early
    if _early is None and wanted(convert_argv):
        try:
            _early = WarmWorkers()
        except OSError:
            _early = None


def take_early() -> WarmWorkers | None:
    """The warm process started by start_early, now the caller's to stop."""
    global _early
    taken, _early = _early, None
    return taken
