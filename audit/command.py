"""`imgshard audit`: prove that shards are complete and well mixed, or show where they are not.

The command line: its flags, the checks of its output files before the scan, and the scan by
a Beam job when Beam options are given."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

from imgshard.audit.errors import AuditError
from imgshard.audit.run import audit
from imgshard.audit.verdict import default_readers, webdataset_readers
from imgshard.pipeline.unknown_flags import check_unknown_flags

__all__ = ["add_audit_arguments", "main"]


def add_audit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target", help="shard folder (with or without dataset.json) or glob; local or gs://"
    )
    parser.add_argument(
        "--label-key",
        default="image/class/label",
        help="feature holding the label (int64 or bytes)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=256,
        help="window of records judged together (default 256; smaller for small data)",
    )
    parser.add_argument(
        "--decode", action="store_true", help="decode every image and check its recorded size"
    )
    parser.add_argument(
        "--list",
        dest="list_file",
        default=None,
        help="the original input list: check every input is found exactly once",
    )
    parser.add_argument(
        "--no-reader-order",
        action="store_true",
        help="skip the reader views",
    )
    parser.add_argument(
        "--reader-records",
        type=int,
        default=100_000,
        help="records replayed per reader view (default 100,000)",
    )
    parser.add_argument(
        "--cycle-length", type=int, default=16, help="trainer view: files interleaved (default 16)"
    )
    parser.add_argument(
        "--shuffle-buffer",
        type=int,
        default=10_000,
        help="trainer view: record shuffle buffer (default 10,000)",
    )
    parser.add_argument(
        "--sequential-buffer",
        type=int,
        default=0,
        help="sequential-reader view: shuffle buffer (default: 0.1%% of the "
        "records, at least one window)",
    )
    parser.add_argument(
        "--wds-buffer",
        type=int,
        default=0,
        help="WebDataset reader view: sample shuffle buffer (default: 0.1%% of the records, "
        "at least one window)",
    )
    parser.add_argument(
        "--wds-shard-buffer",
        type=int,
        default=100,
        help="WebDataset reader view: shard-name shuffle buffer (default 100, what "
        "shardshuffle=True means)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated readers")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--plot",
        default=None,
        help="write a PNG: shard x label heatmap and distinct labels per window",
    )
    parser.add_argument(
        "--sheet",
        default=None,
        help="write a PNG contact sheet of records sampled evenly across the shards, each "
        "with its class name and size (and boxes)",
    )
    parser.add_argument(
        "--sheet-records",
        type=int,
        default=None,
        help="records on the contact sheet (default 48; needs --sheet)",
    )


def image_format(path: str, flag: str) -> str:
    """The Pillow format the file's extension names (`sheet.jpg` -> JPEG); AuditError for an
    extension Pillow cannot write."""
    from PIL import Image

    extension = os.path.splitext(path)[1].lower()
    fmt = Image.registered_extensions().get(extension)
    if fmt is None or fmt not in Image.SAVE:
        raise AuditError(f"{flag} {path}: name a .png or .jpg file (cannot write {extension!r})")
    return fmt


def check_plot_format(path: str) -> None:
    """AuditError unless matplotlib can write the format the extension names."""
    from matplotlib.backend_bases import FigureCanvasBase

    extension = os.path.splitext(path)[1].lower().lstrip(".")
    if extension not in FigureCanvasBase.get_supported_filetypes():
        raise AuditError(
            f"--plot {path}: name a .png, .svg or .pdf file (cannot write {extension!r})"
        )


def prepare_output_file(path: str, flag: str) -> None:
    """Creates the folder `path` will be written in; AuditError when it cannot be."""
    if "://" in path:
        raise AuditError(f"{flag} {path}: give a local file")
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise AuditError(f"{flag} {path}: cannot create its folder {folder}: {e}") from None
    if not os.access(folder, os.W_OK):
        raise AuditError(f"{flag} {path}: the folder {folder} is not writable")


def _beam_scan(beam_args: list[str]):
    """(PipelineOptions, work folder, whether it is a local folder made here) for a scan by a
    Beam job when any Beam option is given; (None, None, False) otherwise."""
    if not beam_args:
        return None, None, False
    import tempfile

    from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

    options = PipelineOptions(beam_args)
    work_folder = options.view_as(GoogleCloudOptions).temp_location
    if work_folder:
        return options, work_folder, False
    runner = str(options.get_all_options().get("runner") or "DirectRunner")
    if not runner.endswith(("DirectRunner", "FnApiRunner", "PrismRunner")):
        raise AuditError(f"--temp_location is needed with {runner} (for the shard summaries)")
    return options, tempfile.mkdtemp(prefix="imgshard-audit-"), True


def main(argv: list[str]) -> int:
    from imgshard.audit.report import format_report, plot_report

    parser = argparse.ArgumentParser(
        prog="imgshard audit", description=__doc__.split("\n")[0], allow_abbrev=False
    )
    add_audit_arguments(parser)
    args, beam_args = parser.parse_known_args(argv)
    try:  # the rest are Beam's options: a typo would silently audit with the defaults
        check_unknown_flags(beam_args, parser, passable=False)
    except ValueError as e:
        parser.error(str(e))
    if args.sheet_records is not None and not args.sheet:
        parser.error("--sheet-records needs --sheet FILE")
    if args.sheet_records is None:
        args.sheet_records = 48
    if args.wds_shard_buffer < 1 or args.wds_buffer < 0:
        parser.error("--wds-shard-buffer must be at least 1 and --wds-buffer at least 0")
    if args.sheet and args.sheet_records < 1:
        parser.error(f"--sheet-records must be at least 1, got {args.sheet_records}")
    try:  # before the scan, which may take long: a bad path fails now, not after it
        if args.sheet:
            args.sheet_format = image_format(args.sheet, "--sheet")
            prepare_output_file(args.sheet, "--sheet")
        if args.plot:
            check_plot_format(args.plot)
            prepare_output_file(args.plot, "--plot")
    except AuditError as e:
        print(f"imgshard audit: error: {e}", file=sys.stderr)
        return 2
    readers = (
        []
        if args.no_reader_order
        else default_readers(args.cycle_length, args.shuffle_buffer, args.sequential_buffer)
        + webdataset_readers(args.wds_buffer, args.wds_shard_buffer)
    )
    work_folder, owned = None, False
    try:
        options, work_folder, owned = _beam_scan(beam_args)
        result = audit(
            args.target,
            label_key=args.label_key,
            batch_size=args.batch_size,
            decode=args.decode,
            list_file=args.list_file,
            readers=readers,
            reader_records=args.reader_records,
            seed=args.seed,
            pipeline_options=options,
            work_folder=work_folder,
        )
    except AuditError as e:
        print(f"imgshard audit: error: {e}", file=sys.stderr)
        return 2
    finally:
        if owned:
            shutil.rmtree(work_folder, ignore_errors=True)
    if args.plot:
        plot_report(result, args.plot)
        print(f"imgshard audit: plot written to {args.plot}", file=sys.stderr)
    if args.sheet and result.report["records"]:
        from imgshard.audit.contact_sheet import draw_contact_sheet

        cells = draw_contact_sheet(
            result.shards, args.sheet, args.sheet_records, args.label_key, args.sheet_format
        )
        print(
            f"imgshard audit: contact sheet of {len(cells)} records written to {args.sheet}",
            file=sys.stderr,
        )
    print(json.dumps(result.report, indent=1) if args.json else format_report(result.report))
    return 0 if result.passed else 1
