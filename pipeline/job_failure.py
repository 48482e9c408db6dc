"""One clear message for a job that failed, instead of the runner's stack trace.

The runners report a worker's exception as text (a local worker process, Dataflow) or as the
exception itself (in-process runs); both are recognised here:

- ReadFatal / ReadUnavailable (transforms/read_faults.py), VocabularyTooLarge
  (transforms/labels.py): their own message says what to do.
- A local worker process that died (the OOM killer's SIGKILL, a crash): Beam's only report is
  "Channel closed prematurely" in the driver, plus the worker's return code on a background
  thread. `WorkerDeaths` records that code, and the message says how it died, what is safe
  on disk and the exact command that finishes the run.
- A job that failed on a remote runner (Flink, Dataflow, a portable job service), whatever
  the cause, e.g. a lost TaskManager whose slots never came back, its restarts used up: the
  runner's first line, what is safe on disk and the command with --resume, instead of a
  Java stack trace relayed through gRPC.
"""

from __future__ import annotations

import re
import shlex
import signal
import threading

from imgshard.transforms.labels import VocabularyTooLarge
from imgshard.transforms.read_faults import ReadFatal, ReadUnavailable

__all__ = ["WorkerDeaths", "explain_failure", "resume_command", "stopping_message"]

# Errors whose message is written for the user: the job stops with that message alone.
_STOPPING = (ReadFatal, ReadUnavailable, VocabularyTooLarge)
_STOPPING_TEXT = re.compile(
    r"(?:ReadFatal|ReadUnavailable|VocabularyTooLarge): (.+?)(?: \[while running|\n|$)"
)
_WORKER_EXIT = re.compile(r"Worker subprocess exited with return code (-?\d+)")
_CHANNEL_CLOSED = "Channel closed prematurely"


class WorkerDeaths:
    """While active, records the return codes of local worker processes that died.

    Beam's SubprocessSdkWorker raises RuntimeError('Worker subprocess exited with return code
    N') on its own thread; the hook records N. That traceback, and those of Beam's gRPC
    threads losing their peer, stay off the terminal unless `show` (-v): the driver's own
    error says what happened.
    """

    def __init__(self, show: bool = False):
        self.return_codes: list[int] = []
        self._show = show
        self._previous = None

    def __enter__(self) -> WorkerDeaths:
        self._previous = threading.excepthook
        threading.excepthook = self._hook
        return self

    def __exit__(self, *exc) -> None:
        threading.excepthook = self._previous

    def _hook(self, args) -> None:
        found = _WORKER_EXIT.search(str(args.exc_value))
        if found:
            self.return_codes.append(int(found.group(1)))
        if self._show or not (found or _in_beam(args.exc_traceback)):
            self._previous(args)


def _in_beam(trace) -> bool:
    """Whether a thread's traceback passes through Beam's or gRPC's code."""
    while trace is not None:
        name = trace.tb_frame.f_code.co_filename
        if "/apache_beam/" in name or "/grpc/" in name:
            return True
        trace = trace.tb_next
    return False


def resume_command(argv: list[str]) -> str:
    """The user's command again, with --resume (and without --overwrite, which excludes it)."""
    kept = [a for a in argv if a not in ("--overwrite", "--resume")]
    return shlex.join(["imgshard", "convert", *kept, "--resume"])


def _how_it_died(code: int) -> str:
    number = -code if code < 0 else code - 128 if code > 128 else None
    if number is None:
        return f"exited with code {code}"
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    if number == signal.SIGKILL:
        return f"was killed by {name} (likely out of memory: the kernel's OOM killer sends it)"
    return f"was killed by {name}"


def stopping_message(error: BaseException) -> str | None:
    """The message of an error written for the user (a denied read, a stray label...), whether
    the runner raised it as is or as the text of a worker's traceback."""
    if isinstance(error, _STOPPING):
        return str(error).split(" [while running")[0]
    found = _STOPPING_TEXT.search(str(error))
    return found.group(1) if found else None


def _first_line(error: BaseException, limit: int = 400) -> str:
    details = getattr(error, "details", None)  # a gRPC error's own text is its details()
    text = details() if callable(details) else str(error)
    line = (text or "").strip().split("\n")[0] or type(error).__name__
    return line if len(line) <= limit else line[:limit] + " ..."


def explain_failure(
    error: BaseException,
    argv: list[str],
    worker_exit_codes: list[int],
    journaled: tuple[int, int | None],
    remote_runner: str | None = None,
) -> str | None:
    """The message for a failed job, or None when it is not one we can explain.

    Args:
      argv: the flags the user gave `imgshard convert`.
      worker_exit_codes: return codes of local worker processes that died (WorkerDeaths).
      journaled: (shards complete and journaled, the run's shard count or None).
      remote_runner: the runner's name when the job ran elsewhere (None: a local run).
    """
    message = stopping_message(error)
    if message is not None:
        return message
    done, total = journaled
    shards = f"{done} of {total}" if total else f"{done}"
    safe = f"Nothing written is lost: {shards} shards are complete and journaled."
    if remote_runner:
        if not done:  # e.g. the cluster was never reached
            safe = "No shard was written."
        return (
            f"the job failed on {remote_runner}: {_first_line(error)}\n{safe} Once the cause is "
            f"mended (a lost machine back, or a parallelism its slots can run), finish the run "
            f"with the same command plus --resume:\n  {resume_command(argv)}"
        )
    if not worker_exit_codes and _CHANNEL_CLOSED not in str(error):
        return None
    how = (
        _how_it_died(worker_exit_codes[0])
        if worker_exit_codes
        else "stopped answering (its connection closed)"
    )
    return (
        f"a local worker process {how}, so the run stopped. {safe} "
        f"Finish the run with:\n  {resume_command(argv)}"
        + (
            "\n(to use less memory: fewer worker processes, e.g. --direct_num_workers=1)"
            if worker_exit_codes and worker_exit_codes[0] in (-9, 137)
            else ""
        )
    )
