"""The `imgshard` command: `imgshard convert ...`, `imgshard audit ...`, `imgshard val-list ...`,
`imgshard demo-data ...`."""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import threading

__all__ = ["entry", "main"]

_USAGE = """imgshard <command> [flags]

commands:
  convert     image list / CSV / class folders -> shuffled, resized shards (Beam): TFRecord,
              ArrayRecord or WebDataset
  audit       check shards (ours or any tool's): complete, intact and well mixed -> PASS/FAIL
  val-list    the ILSVRC2012 validation folder + its labels as downloaded -> a list for convert
  demo-data   write the embedded demo dataset (scikit-learn digits) as image files + train.txt

'imgshard <command> --help' for a command's flags.
"""


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.WARNING,
        format="%(levelname).1s %(asctime)s %(name)s] %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    logging.getLogger("imgshard").setLevel(logging.DEBUG if verbose else logging.INFO)
    if verbose:
        logging.getLogger("apache_beam").setLevel(logging.INFO)
    else:
        # Beam's own logs are for -v: a failed job is reported by the driver in one message
        # (pipeline/job_failure.py), and a lost local worker makes Beam log a traceback from
        # each of its gRPC threads.
        logging.getLogger("apache_beam").setLevel(logging.CRITICAL)


def _convert(argv: list[str]) -> int:
    from imgshard.pipeline import warm_workers

    # First, before Beam is imported: the warm workers import on the other core meanwhile.
    warm_workers.start_early(argv)
    try:
        return _run_convert(argv)
    finally:
        unused = warm_workers.take_early()  # the run did not take it (an error, another mode)
        if unused is not None:
            unused.stop()


def _run_convert(argv: list[str]) -> int:
    from imgshard.pipeline.convert import ConversionError, run
    from imgshard.pipeline.summary import box_warnings, format_summary

    try:
        result = run(argv)
    except ConversionError as e:
        if e.result is not None:
            print(
                format_summary(
                    e.result.output, e.result.metadata, e.result.seconds, e.result.counters
                )
            )
        print(f"imgshard convert: error: {e}", file=sys.stderr)
        return 1
    except ValueError as e:
        print(f"imgshard convert: error: {e}", file=sys.stderr)
        return 2
    if result.plan is not None:
        from imgshard.pipeline.plan import format_plan

        print(format_plan(result.plan, result.seconds))
        return 0
    if result.job is not None:
        print(
            f"imgshard convert: dry run: the job graph and options were validated in "
            f"{result.seconds:.1f} s; nothing was submitted or written"
        )
        return 0
    print(format_summary(result.output, result.metadata, result.seconds, result.counters))
    for warning in box_warnings(result.metadata, result.counters):
        print(f"imgshard convert: warning: {warning}", file=sys.stderr)
    return 0


def _demo_data(argv: list[str]) -> int:
    from imgshard.pipeline.demo_data import main as demo_main

    return demo_main(argv)


def _audit(argv: list[str]) -> int:
    from imgshard.audit import main as audit_main

    return audit_main(argv)


def _val_list(argv: list[str]) -> int:
    from imgshard.pipeline.val_list import main as val_list_main

    return val_list_main(argv)


COMMANDS = {"convert": _convert, "audit": _audit, "val-list": _val_list, "demo-data": _demo_data}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(_USAGE, file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    verbose = "-v" in argv[1:] or "--verbose" in argv[1:]
    _configure_logging(verbose)
    rest = [a for a in argv[1:] if a not in ("-v", "--verbose")]
    return COMMANDS[argv[0]](rest)


def entry() -> None:
    """The `imgshard` console command: main(), then an exit that skips the interpreter's
    teardown when nothing is left running.

    Finalizing the modules Beam brings (gRPC, pandas, protobuf; ~190k objects) took 0.3-1.9 s
    after every run on this machine, up to a third of a small run (benchmarks/README.md).
    When main() returns, every output is closed and renamed into place and the job's workers
    are stopped; of the exit handlers registered by then only logging's flush matters here.
    With a child process or a non-daemon thread still alive, the normal exit waits for it (or
    its exit handler stops it).
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    if _child_processes_alive() or any(
        t.is_alive() and not t.daemon
        for t in threading.enumerate()
        if t is not threading.main_thread()
    ):
        sys.exit(code)  # its exit handlers stop them, e.g. Beam's for a job server JVM
    logging.shutdown()
    os._exit(code)


def _child_processes_alive() -> bool:
    """Any child process still there, not only multiprocessing's: FlinkRunner's job server is
    a JVM that subprocess started and only an exit handler of Beam's stops (os._exit left one
    running after every submit). Where /proc cannot tell, the answer is yes."""
    if multiprocessing.active_children():
        return True
    try:
        threads = os.listdir("/proc/self/task")
        for thread in threads:
            with open(f"/proc/self/task/{thread}/children") as f:
                if f.read().strip():
                    return True
    except OSError:
        return True
    return False


if __name__ == "__main__":
    entry()
